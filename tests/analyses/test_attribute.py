"""``attribute`` equals its independent references: captum's attributions of two torch-exported
models (``scripts/reference_attributions.py``, stored so no torch is needed) for every gradient
method, and a numpy computation of the contract's RISE on a plain onnxruntime session."""

from __future__ import annotations

import math

import cv2
import numpy as np
import onnxruntime as ort
import pytest

import onnxviz
from onnxviz.analyses.attribute.analysis import METHODS
from onnxviz.analyses.attribute.options import METHODS as METHOD_NAMES
from onnxviz.errors import OptionError, UsageError
from tests.helpers import FIXTURES, ROOT

REFERENCES = np.load(ROOT / "tests" / "fixtures" / "attribute_references.npz")
INPUTS = REFERENCES["inputs"]
SETTINGS = {
    "target": int(REFERENCES["target"]),
    "steps": int(REFERENCES["steps"]),
    "samples": int(REFERENCES["samples"]),
    "noise": float(REFERENCES["noise"]),
    "seed": int(REFERENCES["seed"]),
}
GRADIENT_METHODS = [
    "saliency",
    "inputxgrad",
    "ig",
    "smoothgrad",
    "smoothgrad-sq",
    "vargrad",
    "deconvnet",
    "guided",
    "guided-gradcam",
]


def reference(model: str, method: str) -> np.ndarray:
    """captum's result, stored as float16 in units of its largest magnitude."""
    key = f"{model}/{method}"
    return REFERENCES[key].astype(np.float32) * REFERENCES[f"{key}/scale"]


def assert_close_to_max(found: np.ndarray, expected: np.ndarray, rel: float = 1e-3) -> None:
    """Equal to within ``rel`` of the expected map's largest magnitude, image by image."""
    assert found.shape == expected.shape
    for row in range(len(expected)):
        scale = np.abs(expected[row]).max()
        assert scale > 0
        assert np.abs(found[row] - expected[row]).max() <= rel * scale


@pytest.fixture(scope="module", params=["vgg", "resnet"])
def fixture(request) -> tuple[str, onnxviz.Model]:
    return request.param, onnxviz.load(FIXTURES / f"attr_{request.param}.onnx", device="cpu")


def test_the_method_table_holds_every_method_the_options_offer() -> None:
    assert set(METHODS) == set(METHOD_NAMES)


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_every_gradient_method_equals_captum_on_both_images_at_once(fixture, method: str) -> None:
    name, model = fixture
    result = model.attribute([INPUTS[0], INPUTS[1]], method=method, **SETTINGS)
    assert result.attribution.dtype == np.float32
    assert_close_to_max(result.attribution, reference(name, method))
    assert [t.class_index for t in result.targets] == [SETTINGS["target"]] * 2


def test_guided_gradcam_is_guided_backprop_times_cams_gradcam_map_of_the_named_layer(fixture) -> None:
    _, model = fixture
    layer = model.cam(INPUTS[:1]).layers
    earlier = [next(a.alias for a in model.graph.layers if a.op_type == "Relu")]
    found = model.attribute(INPUTS[0], method="guided-gradcam", target=3, layer=earlier)
    assert earlier != layer
    guided = model.attribute(INPUTS[0], method="guided", target=3).attribution
    heatmap = model.cam(INPUTS[0], method="gradcam", target=3, layer=earlier).raw()
    np.testing.assert_allclose(found.attribution, guided * heatmap[:, None], rtol=1e-5, atol=1e-7)
    assert not np.allclose(found.attribution, model.attribute(INPUTS[0], method="guided-gradcam", target=3).attribution)


def test_ig_reports_captums_convergence_delta(fixture) -> None:
    name, model = fixture
    result = model.attribute([INPUTS[0], INPUTS[1]], method="ig", **SETTINGS)
    np.testing.assert_allclose(result.delta, REFERENCES[f"{name}/ig_delta"], rtol=1e-3, atol=1e-4)
    summary = result.summary()
    assert summary["method"] == "ig"
    assert [entry["delta"] for entry in summary["images"].values()] == result.delta
    assert "delta" not in model.attribute(INPUTS[0], method="saliency").summary()["images"]["image0"]


def test_ig_delta_is_the_attributions_sum_less_the_score_gain_and_shrinks_with_steps(fixture) -> None:
    name, model = fixture
    coarse = model.attribute(INPUTS[0], method="ig", steps=2, target=3)
    fine = model.attribute(INPUTS[0], method="ig", steps=64, target=3)
    assert abs(fine.delta[0]) < abs(coarse.delta[0])
    shifted = model.attribute(INPUTS[0], method="ig", steps=8, target=3, baseline=0.5)
    assert not np.allclose(shifted.attribution, fine.attribution, atol=1e-6)
    session = ort.InferenceSession(str(FIXTURES / f"attr_{name}.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": np.stack([INPUTS[0], np.full_like(INPUTS[0], 0.5)])})[0]
    gain = float(logits[0, 3]) - float(logits[1, 3])
    expected = float(shifted.attribution.astype(np.float64).sum()) - gain
    assert shifted.delta[0] == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_a_baseline_file_is_read_and_a_wrong_shape_refused(fixture, tmp_path) -> None:
    _, model = fixture
    path = tmp_path / "baseline.npy"
    np.save(path, np.full(INPUTS.shape[1:], 0.5, np.float32))
    from_file = model.attribute(INPUTS[0], method="ig", steps=8, target=3, baseline=str(path))
    from_number = model.attribute(INPUTS[0], method="ig", steps=8, target=3, baseline=0.5)
    np.testing.assert_allclose(from_file.attribution, from_number.attribution, rtol=1e-5, atol=1e-7)
    np.save(path, np.zeros((3, 8, 8), np.float32))
    with pytest.raises(OptionError, match="baseline"):
        model.attribute(INPUTS[0], method="ig", baseline=str(path))


def test_any_batch_size_gives_the_same_numbers_and_counts_the_points(fixture) -> None:
    _, model = fixture
    whole = model.attribute([INPUTS[0], INPUTS[1]], method="smoothgrad", samples=4, target=3)
    counted: list[tuple[int, int]] = []
    single = model.attribute(
        [INPUTS[0], INPUTS[1]],
        method="smoothgrad",
        samples=4,
        target=3,
        batch_size=3,
        progress=lambda *c: counted.append(c),
    )
    np.testing.assert_allclose(single.attribution, whole.attribution, rtol=1e-4, atol=1e-7)
    assert counted == [(3, 8), (6, 8), (8, 8)]


def rise_by_hand(path, inputs: np.ndarray, target: int, count: int, cells: int, keep: float, seed: int) -> np.ndarray:
    """The contract's RISE in plain numpy and onnxruntime, mask by mask."""
    height, width = inputs.shape[2:]
    rng = np.random.default_rng(seed)
    grids = rng.random((count, cells, cells)) < keep
    ch, cw = math.ceil(height / cells), math.ceil(width / cells)
    shifts = [(rng.integers(0, ch), rng.integers(0, cw)) for _ in range(count)]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    maps = np.zeros((len(inputs), height, width))
    for grid, (dy, dx) in zip(grids, shifts, strict=True):
        mask = cv2.resize(grid.astype(np.float32), ((cells + 1) * cw, (cells + 1) * ch))[
            dy : dy + height, dx : dx + width
        ]
        logits = session.run(None, {"input": (inputs * mask).astype(np.float32)})[0]
        maps += logits[:, target, None, None] * mask
    maps /= count * keep
    return np.repeat(maps[:, None], inputs.shape[1], axis=1).astype(np.float32)


def test_rise_equals_the_contracts_computation(fixture) -> None:
    name, model = fixture
    options = {"target": 3, "count": 48, "cells": 5, "keep": 0.4, "seed": 7}
    expected = rise_by_hand(FIXTURES / f"attr_{name}.onnx", INPUTS, **options)
    found = model.attribute(
        [INPUTS[0], INPUTS[1]], method="rise", target=3, masks=48, cells=5, keep=0.4, seed=7, batch_size=10
    )
    assert_close_to_max(found.attribution, expected, rel=1e-4)


def test_each_image_gets_its_own_top1_by_default(fixture) -> None:
    name, model = fixture
    result = model.attribute([INPUTS[0], INPUTS[1]], method="saliency")
    session = ort.InferenceSession(str(FIXTURES / f"attr_{name}.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": INPUTS})[0]
    assert [t.class_index for t in result.targets] == [int(c) for c in logits.argmax(axis=1)]
    for row, target in enumerate(result.targets):
        alone = model.attribute(INPUTS[row], method="saliency")
        assert alone.targets[0].class_index == target.class_index
        np.testing.assert_allclose(result.attribution[row], alone.attribution[0], rtol=1e-5, atol=1e-8)
    assert result.figure().ndim == 3


def test_bad_options_and_targets_are_refused_naming_them(fixture) -> None:
    _, model = fixture
    with pytest.raises(OptionError, match="method"):
        model.attribute(INPUTS[0], method="gradient-shap")
    for name in ("steps", "samples", "masks"):
        with pytest.raises(OptionError, match=name):
            model.attribute(INPUTS[0], method="ig", **{name: 0})
    with pytest.raises(UsageError, match="Class 10 does not exist"):
        model.attribute(INPUTS[0], method="saliency", target=10)


def test_an_nhwc_model_gets_attributions_in_its_own_layout() -> None:
    model = onnxviz.load(FIXTURES / "tf2onnx_nhwc.onnx", device="cpu")
    x = np.random.default_rng(0).standard_normal((32, 32, 3)).astype(np.float32)
    saliency = model.attribute(x, method="saliency", target=4)
    logits = saliency.targets[0].tensor
    projected = model.project(x, node=logits, channels=[4], rule="saliency").projections
    assert saliency.attribution.shape == projected.shape == (1, 32, 32, 3)
    np.testing.assert_allclose(saliency.attribution, projected, rtol=1e-4, atol=1e-6 * np.abs(projected).max())
    rise = model.attribute(x, method="rise", target=4, masks=16, cells=4).attribution
    assert rise.shape == (1, 32, 32, 3) and np.ptp(rise[0, :, :, 0]) > 0
    assert np.array_equal(rise[..., 0], rise[..., 2])
