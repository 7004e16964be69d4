"""``explain`` puts the maps of ``cam`` and ``attribute`` side by side: each panel is exactly what
the method's own analysis gives for the same image, target and layer."""

from __future__ import annotations

import json

import numpy as np
import pytest

import onnxviz
from onnxviz.analyses.explain.analysis import DEFAULT_METHODS
from onnxviz.errors import OptionError
from tests.cli_helpers import run_cli
from tests.helpers import DEMO, FIXTURES

CHELSEA = DEMO.parent / "images" / "chelsea.png"


def reduced(attribution: np.ndarray) -> np.ndarray:
    """An NCHW attribution (C, H, W) as one map: Σ over channels of |·|, minus its min, ÷ (1e-7 + max)."""
    plane = np.abs(attribution).sum(axis=0).astype(np.float32)
    plane = plane - plane.min()
    return plane / (1e-7 + plane.max())


def test_each_map_is_the_separate_cam_or_attribute_result_for_the_same_image(demo_model) -> None:
    methods = ["gradcam", "layercam", "guided", "ig", "smoothgrad"]
    explained = demo_model.explain(CHELSEA, methods=methods, target=3, layer="conv2")
    raw = explained.raw()
    assert raw.shape == (5, 64, 64) and raw.dtype == np.float32
    for row, method in enumerate(methods[:2]):
        alone = demo_model.cam([CHELSEA], method=method, target=3, layer=["conv2"])
        np.testing.assert_array_equal(raw[row], alone.heatmaps[0])
        assert explained.panels[row].target == alone.targets[0]
    for row, method in enumerate(methods[2:], start=2):
        alone = demo_model.attribute([CHELSEA], method=method, target=3)
        np.testing.assert_array_equal(raw[row], reduced(alone.attribution[0]))
        assert explained.panels[row].target == alone.targets[0]
    assert [panel.target.class_index for panel in explained.panels] == [3] * 5


def test_guided_gradcam_reads_the_layer_the_cams_read(demo_model) -> None:
    explained = demo_model.explain(CHELSEA, methods=["guided-gradcam"], target=3, layer="conv2")
    alone = demo_model.attribute([CHELSEA], method="guided-gradcam", target=3, layer=["conv2"])
    np.testing.assert_array_equal(explained.raw()[0], reduced(alone.attribution[0]))
    default = demo_model.attribute([CHELSEA], method="guided-gradcam", target=3)
    assert not np.array_equal(explained.raw()[0], reduced(default.attribution[0]))


def test_the_default_methods_explain_each_images_top1_and_the_summary_gives_their_peaks(demo_model) -> None:
    explained = demo_model.explain(CHELSEA)
    top = demo_model.cam([CHELSEA]).targets[0]
    summary = explained.summary()
    assert list(summary["methods"]) == list(DEFAULT_METHODS)
    for panel, (method, entry) in zip(explained.panels, summary["methods"].items(), strict=True):
        assert entry["target"] == top.summary()
        y, x = entry["peak"]
        assert panel.map[y, x] == panel.map.max() == pytest.approx(1, abs=1e-6), method
    assert summary["image"] == str(CHELSEA)


def test_the_figure_is_one_row_of_the_picture_and_a_panel_per_method(demo_model) -> None:
    explained = demo_model.explain(CHELSEA, methods=["gradcam", "saliency"])
    figure = explained.figure()
    picture = explained.drawn(explained.panels[0])
    assert figure.dtype == np.uint8 and figure.shape[1] > 3 * figure.shape[0] // 2
    assert picture.shape == explained.picture.shape
    assert not np.array_equal(explained.drawn(explained.panels[1]), explained.picture)


def test_an_unknown_method_is_refused_naming_the_choices(demo_model) -> None:
    with pytest.raises(OptionError, match="gradcam"):
        demo_model.explain(CHELSEA, methods=["gradcam", "magic"])


def test_the_command_writes_the_stacked_maps_and_prints_the_summary(tmp_path, capsys, demo_model) -> None:
    raw = tmp_path / "maps.npy"
    code, out, err = run_cli(
        capsys, "explain", DEMO, CHELSEA, "--methods", "gradcam,ig", "--target", "3", "--raw", raw, "--json"
    )
    assert code == 0, err
    expected = demo_model.explain(CHELSEA, methods=["gradcam", "ig"], target=3)
    np.testing.assert_array_equal(np.load(raw), expected.raw())
    assert json.loads(out)["methods"] == expected.summary()["methods"]
    code, _, err = run_cli(capsys, "explain", DEMO, CHELSEA, "--methods", "gradcam,magic")
    assert code == 2 and "--methods" in err and "magic" in err


def test_an_nhwc_models_attribution_is_reduced_over_its_last_axis() -> None:
    model = onnxviz.load(FIXTURES / "tf2onnx_nhwc.onnx", device="cpu")
    x = np.random.default_rng(0).standard_normal((32, 32, 3)).astype(np.float32)
    explained = model.explain(x, methods=["gradcam", "saliency"], target=4)
    assert explained.raw().shape == (2, 32, 32) and explained.image == "image0"
    np.testing.assert_array_equal(explained.raw()[0], model.cam(x, target=4).heatmaps[0])
    saliency = model.attribute(x, method="saliency", target=4).attribution[0]
    np.testing.assert_array_equal(explained.raw()[1], reduced(saliency.transpose(2, 0, 1)))
    assert explained.figure().shape[2] == 3
