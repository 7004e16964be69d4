"""A model's own metadata (preset, mean/std/scale, order, layout, labels): used where valid, and
where not, an error naming the key and the model, before any picture reaches numpy."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

import onnxviz
from onnxviz.data.metadata import labels_of, preprocessing_of, preset_of
from onnxviz.errors import InvalidModelError
from tests.cli_helpers import invoke
from tests.helpers import DEMO

PRESETS = ("imagenet", "caffe", "tf", "raw")


def _with_metadata(tmp_path, **values: str):
    model = onnx.load(str(DEMO))
    props = {p.key: p.value for p in model.metadata_props} | {f"onnxviz.{k}": v for k, v in values.items()}
    onnx.helper.set_model_props(model, props)
    path = tmp_path / "tagged.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("mean", "0.5,0.5", "1 or 3 finite numbers"),
        ("mean", "[0.1, null, 0.3]", "1 or 3 finite numbers"),
        ("std", "0.2,0,0.2", "other than 0"),
        ("std", "nan", "1 or 3 finite numbers"),
        ("scale", "1/255", "one finite number other than 0"),
        ("scale", "0", "one finite number other than 0"),
        ("order", "gbr", "one of rgb, bgr"),
        ("layout", "chw", "one of auto, nchw, nhwc"),
    ],
)
def test_a_preprocessing_value_that_cannot_be_used_names_its_key_and_the_model(key, value, needle) -> None:
    with pytest.raises(InvalidModelError) as caught:
        preprocessing_of({f"onnxviz.{key}": value}, "exported/net.onnx", {})
    assert f"'onnxviz.{key}'" in caught.value.message and "net.onnx" in caught.value.message
    assert needle in caught.value.message and f"--{key}" in caught.value.hint


def test_valid_values_are_read_and_the_callers_own_ones_win() -> None:
    metadata = {"onnxviz.mean": "[0.5, 0.4, 0.3]", "onnxviz.std": "0.25", "onnxviz.scale": "0.5"}
    metadata["onnxviz.order"] = "BGR"
    expected = {"mean": (0.5, 0.4, 0.3), "std": (0.25,), "scale": 0.5, "order": "bgr"}
    assert preprocessing_of(metadata, None, {}) == expected
    assert preprocessing_of(metadata | {"onnxviz.mean": "bad"}, None, {"mean": (1.0,)})["std"] == (0.25,)


def test_the_preset_and_the_labels_are_checked() -> None:
    assert preset_of({"onnxviz.preset": "caffe"}, None, PRESETS) == "caffe"
    assert preset_of({}, None, PRESETS) is None
    with pytest.raises(InvalidModelError, match=r"'onnxviz\.preset' of m\.onnx is 'torch'"):
        preset_of({"onnxviz.preset": "torch"}, "m.onnx", PRESETS)
    assert labels_of({"onnxviz.labels": '["cat", 7]'}, None) == ["cat", "7"]
    for bad in ("[", '{"0": "cat"}', '"cat"', '[["nested"]]', "null"):
        with pytest.raises(InvalidModelError, match=r"'onnxviz\.labels'.*a JSON list of class names"):
            labels_of({"onnxviz.labels": bad}, "m.onnx")


def test_a_model_carries_its_own_normalisation(tmp_path) -> None:
    path = _with_metadata(tmp_path, mean="0.5", std="0.5", scale=str(1 / 255))
    picture = np.full((64, 64, 3), 255, np.uint8)
    assert onnxviz.load(path, device="cpu").prepare(picture)[0].max() == pytest.approx(1.0)
    assert onnxviz.load(path, device="cpu", std=(1.0,)).prepare(picture)[0].max() == pytest.approx(0.5)
    caffe = onnxviz.load(path, device="cpu", preset="caffe").prepare(picture)[0]  # a named preset: metadata aside
    np.testing.assert_allclose(caffe[0, :, 0, 0], [255 - 103.939, 255 - 116.779, 255 - 123.68], rtol=1e-5)


def test_the_fuzzed_hole_wrong_length_mean_metadata_is_a_usage_error_naming_key_and_model(capsys, tmp_path) -> None:
    """The issue's hole: metadata mean of 2 values reached numpy in `project` as an internal error."""
    path = _with_metadata(tmp_path, mean="0.5,0.5")
    code, _, err = invoke(capsys, "project", path, DEMO.parent / "images" / "chelsea.png", "--node", "conv2")
    assert code == 2 and "internal error" not in err
    assert "'onnxviz.mean' of tagged.onnx" in err and "1 or 3 finite numbers" in err
    picture = DEMO.parent / "images" / "chelsea.png"
    code, _, err = invoke(
        capsys, "project", path, picture, "--node", "conv2", "--mean", "0.4", "--out", tmp_path / "p.png"
    )
    assert code == 0, err


def test_labels_metadata_that_is_not_a_list_is_an_error_where_labels_are_read(capsys, tmp_path) -> None:
    path = _with_metadata(tmp_path, labels=json.dumps({"0": "circle"}))
    code, _, err = invoke(capsys, "occlude", path, DEMO.parent / "images" / "chelsea.png", "--patch", "16", "--json")
    assert code == 2 and "'onnxviz.labels' of tagged.onnx" in err and "internal error" not in err
