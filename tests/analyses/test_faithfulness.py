"""``faithfulness`` equals its independent references: deletion and insertion curves built from
scratch with numpy and scored by a plain onnxruntime session, on maps from torch autograd,
pytorch-grad-cam and the contract's random draws (``scripts/reference_trust.py``), and on the
NHWC and tensor-element cases computed here the same way."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import onnxruntime as ort
import pytest

import onnxviz
from onnxviz.analyses.faithfulness.curves import area, changed_counts
from onnxviz.runtime.forward import ForwardRunner
from tests.cli_helpers import run_cli
from tests.helpers import FIXTURES, ROOT

REFERENCES = np.load(ROOT / "tests" / "fixtures" / "trust_references.npz")
INPUTS = REFERENCES["inputs"]
STEPS = int(REFERENCES["steps"])
SEED = int(REFERENCES["seed"])
MODEL = FIXTURES / "attr_vgg.onnx"
METHODS = ["saliency", "gradcam", "random"]


@pytest.fixture(scope="module")
def model():
    return onnxviz.load(MODEL)


@pytest.mark.parametrize("metric", ["deletion", "insertion"])
def test_curves_and_areas_equal_the_onnxruntime_reference(model, metric):
    found = model.faithfulness(list(INPUTS), method=METHODS, metric=metric, steps=STEPS, seed=SEED)
    for method in METHODS:
        curve = REFERENCES[f"faithfulness/{metric}/{method}/curve"]
        assert found.curves[method].shape == curve.shape == (len(INPUTS), STEPS + 1)
        np.testing.assert_allclose(found.curves[method], curve, atol=1e-3, err_msg=f"{metric} {method}")
        np.testing.assert_allclose(found.aucs[method], REFERENCES[f"faithfulness/{metric}/{method}/auc"], atol=1e-4)
    assert [t.class_index for t in found.targets] == REFERENCES["targets"].tolist()


def test_every_step_of_every_image_and_method_runs_in_batches(model, monkeypatch):
    runs = []
    original = ForwardRunner.run

    def counted(self, batch, *args, **kwargs):
        runs.append(len(batch))
        return original(self, batch, *args, **kwargs)

    monkeypatch.setattr(ForwardRunner, "run", counted)
    found = model.faithfulness(list(INPUTS), method=["random"], steps=STEPS, seed=SEED, batch_size=10)
    inputs = len(INPUTS) * (STEPS + 1)
    assert runs == [len(INPUTS)] + [10] * (inputs // 10) + [inputs % 10]  # the targets, then the steps
    np.testing.assert_allclose(found.curves["random"], REFERENCES["faithfulness/deletion/random/curve"], atol=1e-3)


def test_step_t_changes_the_ceiling_of_t_pixels_per_step_and_the_area_is_the_trapezoid():
    assert changed_counts(4096, 7).tolist() == [math.ceil(t * 4096 / 7) for t in range(8)]
    curve = np.random.default_rng(0).random(12)
    assert area(curve) == pytest.approx(np.trapezoid(curve, dx=1 / 11))


def _plain_curves(path, planes, steps, score, start, end, nhwc=False):
    """Each step's input made from scratch and scored by a plain onnxruntime session (``score(logits, image)``)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    curves = []
    for row, (plane, s, e) in enumerate(zip(planes, start, end, strict=True)):
        order = np.argsort(-plane.ravel(), kind="stable")
        made = []
        for t in range(steps + 1):
            changed = np.zeros(plane.size, bool)
            changed[order[: math.ceil(t * plane.size / steps)]] = True
            mask = changed.reshape(plane.shape)
            made.append(np.where(mask[..., None] if nhwc else mask[None], e, s))
        outputs = [session.run(None, {name: step[None].astype(np.float32)})[0] for step in made]  # batch 1 models too
        curves.append(score(np.concatenate(outputs), row))
    return np.array(curves)


def test_an_nhwc_model_inserts_into_its_blurred_image(tmp_path):
    path = FIXTURES / "cam_nhwc.onnx"
    model = onnxviz.load(path)
    rng = np.random.default_rng(5)
    shape = model.input_shape()
    x = rng.standard_normal((2, *shape[1:])).astype(np.float32)
    found = model.faithfulness(list(x), method=["random"], metric="insertion", steps=8, seed=5)
    draws = np.random.default_rng(5)
    planes = [draws.random(shape[1:3]) for _ in x]
    blurred = [np.dstack([cv2.GaussianBlur(image[..., c], (11, 11), 5) for c in range(shape[3])]) for image in x]
    classes = [t.class_index for t in found.targets]

    def probability(logits, row):
        e = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True))[:, classes[row]]

    expected = _plain_curves(path, planes, 8, probability, blurred, x, nhwc=True)
    np.testing.assert_allclose(found.curves["random"], expected, atol=1e-3)


def test_a_tensor_element_target_reads_the_score_itself(model):
    found = model.faithfulness(list(INPUTS), method=["random"], steps=8, seed=1, target="logits[0,3]", baseline=-0.5)
    draws = np.random.default_rng(1)
    planes = [draws.random((64, 64)) for _ in INPUTS]
    ends = [np.full_like(x, -0.5) for x in INPUTS]
    expected = _plain_curves(MODEL, planes, 8, lambda logits, row: logits[:, 3], INPUTS, ends)
    assert found.measure == "score"
    np.testing.assert_allclose(found.curves["random"], expected, atol=1e-3)


def test_the_command_prints_the_contract_json(capsys, tmp_path):
    image = tmp_path / "x.npy"
    np.save(image, INPUTS[0])
    out = tmp_path / "curves.png"
    code, stdout, _ = run_cli(
        capsys, "faithfulness", MODEL, image, "--method", "gradcam,random", "--steps", "4", "--json", "--out", out
    )
    assert code == 0
    summary = json.loads(stdout)
    assert summary["metric"] == "deletion"
    assert list(summary["methods"]) == ["gradcam", "random"]
    assert len(summary["methods"]["gradcam"]["curve"][0]) == 5
    assert len(summary["methods"]["random"]["auc"]) == 1
    assert out.stat().st_size > 0


def test_a_box_target_is_scored_itself_matched_again_on_every_step():
    """A detection's score, not a softmax: each step's raw onnxruntime output read by the box
    target (which matches the box again on every perturbed copy, as occlusion and scorecam do)."""
    path = FIXTURES / "yolov8n_tiny.onnx"
    found_box = np.load(FIXTURES.parent / "detectors" / "yolov8n_tiny.npz")
    x = found_box["x"].astype(np.float32).reshape(1, *found_box["x"].shape[-3:])
    box = "box:" + ",".join(f"{v:.4f}" for v in found_box["box"])
    found = onnxviz.load(path, device="cpu").faithfulness(list(x), method=["random"], steps=4, seed=2, target=box)
    assert found.measure == "score" and found.targets[0].kind != "class"
    draws = np.random.default_rng(2)
    planes = [draws.random(x.shape[2:])]
    target = found.targets[0]
    expected = _plain_curves(path, planes, 4, lambda out, row: target.scores(out), x, [np.zeros_like(x[0])])
    np.testing.assert_allclose(found.curves["random"], expected, atol=1e-3)
    assert found.curves["random"][0, 0] == pytest.approx(target.score, abs=1e-4)
