"""A detector whose boxes and class scores are two tensors, read with ``--boxes/--scores``.

The fixture is a seeded RetinaNet-style detector with outputs ``boxes`` (1, 512, 4) as x1, y1, x2,
y2 and ``scores`` (1, 512, 3), exported by both torch exporters; ``scripts/pre_nms_fixtures.py``
builds it and stores torch autograd's saliency and pytorch-grad-cam's GradCAM of the class score
of the prediction a box matches (``tests/fixtures/detectors/pre_nms.npz``).
"""

from __future__ import annotations

import functools

import numpy as np
import onnxruntime as ort
import pytest

import onnxviz
from onnxviz.graph.detector_join import JOINED
from tests.analyses.test_detectors import close, occluded_copies
from tests.helpers import FIXTURES

EXPORTS = ["pre_nms_ts", "pre_nms_dynamo"]
FOUND = dict(np.load(FIXTURES.parent / "detectors" / "pre_nms.npz"))
BOX = "box:" + ",".join(f"{v:.4f}" for v in FOUND["box"])


@pytest.fixture(scope="module")
def loaded():
    """``loaded(name)``: the export ``name``.onnx loaded with its two tensors named, once."""
    return functools.cache(
        lambda name: onnxviz.load(FIXTURES / f"{name}.onnx", device="cpu", boxes="boxes", scores="scores")
    )


def plain_run(name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One image's boxes (N, 4) and scores (N, nc) from a plain onnxruntime session of the file."""
    session = ort.InferenceSession(str(FIXTURES / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    boxes, scores = session.run(["boxes", "scores"], {"input": x})
    return boxes[0].astype(np.float64), scores[0].astype(np.float64)


@pytest.mark.parametrize("name", EXPORTS)
def test_the_two_tensors_become_one_first_output_in_ultralytics_layout(loaded, name) -> None:
    model = loaded(name)
    assert model.graph.output_names == [JOINED, "boxes", "scores"]
    boxes, scores = plain_run(name, FOUND["x"])
    first = model.attribute(FOUND["x"], method="saliency", target="detection:0").targets[0]
    strongest = int(scores.max(axis=1).argmax())
    assert first.summary()["detections"][0]["prediction"] == strongest
    np.testing.assert_allclose(first.box, boxes[strongest], rtol=1e-5, atol=1e-4)
    assert first.score == pytest.approx(scores[strongest].max(), rel=1e-6)
    assert first.index == (0, 4 + int(scores[strongest].argmax()), strongest)


@pytest.mark.parametrize("name", EXPORTS)
def test_a_box_target_matches_the_prediction_torch_matched(loaded, name) -> None:
    (target,) = loaded(name).attribute(FOUND["x"], method="saliency", target=BOX).targets
    assert (target.kind, target.class_index) == ("box", int(FOUND["class"]))
    assert target.index == (0, 4 + int(FOUND["class"]), int(FOUND["matched"]))


@pytest.mark.parametrize("name", EXPORTS)
def test_saliency_of_a_box_target_equals_torch_autograd(loaded, name) -> None:
    close(loaded(name).attribute(FOUND["x"], method="saliency", target=BOX).raw(), FOUND["saliency"])


@pytest.mark.parametrize("name", EXPORTS)
def test_gradcam_of_a_box_target_equals_pytorch_grad_cam(loaded, name) -> None:
    layer = str(FOUND[f"layer_{name.rsplit('_', 1)[1]}"])
    result = loaded(name).cam(FOUND["x"], method="gradcam", layer=[layer], target=BOX)
    close(result.raw(), FOUND["gradcam"])
    close(next(iter(result.maps.values())), FOUND["gradcam_layer"])


def test_occluding_a_box_target_rematches_it_on_plain_onnxruntime_runs_of_the_two_outputs(loaded) -> None:
    result = loaded("pre_nms_ts").occlude(FOUND["x"], target=BOX, patch=32, stride=16)
    matched, klass = np.asarray(result.resolved.box, np.float64), int(FOUND["class"])
    expected = []
    for copy in occluded_copies(FOUND["x"], 32, 16):
        boxes, scores = plain_run("pre_nms_ts", copy)
        inter = np.prod(
            np.clip(np.minimum(matched[2:], boxes[:, 2:]) - np.maximum(matched[:2], boxes[:, :2]), 0, None), axis=1
        )
        union = np.prod(matched[2:] - matched[:2]) + np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) - inter
        best = int((inter / union).argmax())
        kept = inter[best] / union[best] >= 0.5 and int(scores[best].argmax()) == klass
        expected.append(scores[best, klass] if kept else 0.0)
    np.testing.assert_allclose(result.scores.ravel(), expected, rtol=1e-4, atol=1e-6)
    assert 0 < np.count_nonzero(result.scores) < result.scores.size


def test_without_the_flags_the_model_is_read_as_it_is(loaded) -> None:
    plain = onnxviz.load(FIXTURES / "pre_nms_ts.onnx", device="cpu")
    assert plain.graph.output_names == ["boxes", "scores"]
    with pytest.raises(onnxviz.UsageError, match="--boxes boxes --scores scores"):
        plain.attribute(FOUND["x"], method="saliency", target=BOX)


def test_one_of_the_two_names_alone_is_refused_in_python_too() -> None:
    with pytest.raises(onnxviz.UsageError, match="--scores was given without --boxes"):
        onnxviz.load(FIXTURES / "pre_nms_ts.onnx", device="cpu", scores="scores")


def test_a_repeat_load_from_the_cache_joins_the_same_output(loaded) -> None:
    """The second load reads the graph's skeleton from the cache; the join is made on it again and
    its gradients are keyed apart from the plain model's."""
    again = onnxviz.load(FIXTURES / "pre_nms_ts.onnx", device="cpu", boxes="boxes", scores="scores")
    assert again.graph.output_names == [JOINED, "boxes", "scores"]
    assert again.graph.digest != onnxviz.load(FIXTURES / "pre_nms_ts.onnx", device="cpu").graph.digest
    close(again.attribute(FOUND["x"], method="saliency", target=BOX).raw(), FOUND["saliency"])


def test_the_exported_explainer_of_a_box_gives_torch_autograds_saliency(loaded, tmp_path) -> None:
    """``export`` builds on the joined graph: its box inputs match the prediction as onnxviz does."""
    loaded("pre_nms_ts").export(method="saliency", out=tmp_path / "explainer.onnx", target="box")
    session = ort.InferenceSession(str(tmp_path / "explainer.onnx"), providers=["CPUExecutionProvider"])
    feeds = {"input": FOUND["x"], "box": FOUND["box"][None].astype(np.float32), "box_class": np.array([-1])}
    (attribution,) = session.run(["attribution"], feeds)
    close(attribution, FOUND["saliency"])


def test_faithfulness_scores_a_box_target_of_the_joined_output(loaded) -> None:
    result = loaded("pre_nms_ts").faithfulness(FOUND["x"], method="saliency", target=BOX, steps=8)
    (target,) = result.targets
    assert target.index == (0, 4 + int(FOUND["class"]), int(FOUND["matched"]))
