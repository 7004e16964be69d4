"""``onnxviz invariance``: the JSON contract, the picture's layout, and every bad input exits 2."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import pytest
from onnx import helper

from onnxviz.render.curves import DPI, PANEL_INCHES, THUMB_INCHES
from tests.cli_helpers import run_cli
from tests.helpers import DEMO, make_model

IMAGES = DEMO.parent / "images"
TRIANGLE, STRIPES = IMAGES / "triangle.png", IMAGES / "stripes.png"
FRAMES = {"first": (0x1F, 0x77, 0xB4), "second": (0xFF, 0x7F, 0x0E)}  # matplotlib's C0 and C1


def test_json_follows_the_contract(capsys, demo_model) -> None:
    code, out, err = run_cli(
        capsys, "invariance", DEMO, TRIANGLE, STRIPES, "--transform", "scale", "--amounts", "0.5,1,1.5", "--json"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert list(summary) == ["transform", "amounts", "layers", "target_class", "images"]
    assert summary["transform"] == "scale" and summary["amounts"] == [0.5, 1.0, 1.5]
    assert summary["layers"] == ["conv1", "relu4"] and list(summary["images"]) == [str(TRIANGLE), str(STRIPES)]
    assert summary["target_class"] == {str(TRIANGLE): 2, str(STRIPES): 4}  # each image's own top-1
    expected = demo_model.invariance([TRIANGLE, STRIPES], transform="scale", amounts=[0.5, 1, 1.5]).summary()
    assert summary == json.loads(json.dumps(expected))
    for entry in summary["images"].values():
        assert list(entry) == ["distance", "relative", "probability", "top_class"]
        assert entry["distance"]["conv1"][1] == 0 and len(entry["probability"]) == len(entry["top_class"]) == 3


def _figure(capsys, tmp_path, *options: str) -> np.ndarray:
    path = tmp_path / "curves.png"
    code, out, err = run_cli(capsys, "invariance", DEMO, TRIANGLE, STRIPES, "--out", path, *options)
    assert code == 0, err
    assert f"picture: {path}" in out and "relative feature distance" in out
    picture = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None
    return cv2.cvtColor(picture, cv2.COLOR_BGR2RGB)


def _rows_of(picture: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.nonzero(np.all(np.abs(picture.astype(int) - colour) <= 2, axis=2))[0]


def test_picture_has_thumbnails_beside_one_panel_per_layer_and_the_probability(capsys, tmp_path) -> None:
    picture = _figure(capsys, tmp_path, "--transform", "rotate")
    thumbs = THUMB_INCHES * 5 + 0.3  # five amounts shown
    assert picture.shape[1] == round((thumbs + PANEL_INCHES * 3) * DPI)  # conv1, relu4, probability
    left, right = picture[:, : round(thumbs * DPI)], picture[:, round(thumbs * DPI) :]
    # The thumbnails: one row per image, each framed in its colour, the first above the second.
    first, second = _rows_of(left, FRAMES["first"]), _rows_of(left, FRAMES["second"])
    assert len(first) > 100 and len(second) > 100 and first.max() < second.min()
    # The panels: both images' curves in the same colours.
    assert len(_rows_of(right, FRAMES["first"])) > 100 and len(_rows_of(right, FRAMES["second"])) > 100
    fewer = _figure(capsys, tmp_path, "--transform", "translate", "--layers", "conv2", "--amounts", "-4,0,4")
    assert fewer.shape[1] == round((THUMB_INCHES * 3 + 0.3 + PANEL_INCHES * 2) * DPI)  # conv2, probability


@pytest.fixture(scope="module")
def feature_extractor(tmp_path_factory):
    """conv → relu: its output is a feature map, not a class vector."""
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    path = tmp_path_factory.mktemp("models") / "features.onnx"
    weights = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32)}
    onnx.save(make_model(nodes, (1, 3, 16, 16), "y", weights), path)
    return path


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--transform", "shear"], "translate, rotate, scale"),
        (["--transform", "rotate", "--amounts", "10,x"], "--amounts must be"),
        (["--transform", "rotate", "--amounts", "nan"], "finite"),
        (["--transform", "scale", "--amounts", "0,1"], "positive zoom"),
        (["--transform", "rotate", "--layers", "conv9"], "conv9"),
        (["--transform", "rotate", "--target-class", "8"], "classes 0…7"),
    ],
)
def test_bad_options_exit_2(capsys, options, message) -> None:
    code, out, err = run_cli(capsys, "invariance", DEMO, TRIANGLE, "--json", *options)
    assert code == 2 and out == "" and message in err, err


def test_target_class_without_a_class_vector_exits_2(capsys, feature_extractor) -> None:
    command = ["invariance", feature_extractor, TRIANGLE, "--transform", "rotate", "--layers", "conv1"]
    code, _, err = run_cli(capsys, *command, "--target-class", "0")
    assert code == 2 and "class vector" in err and "Leave out --target-class" in err
    code, out, err = run_cli(capsys, *command, "--json")
    assert code == 0 and json.loads(out)["target_class"] is None, err


def test_missing_or_repeated_images_exit_2(capsys, tmp_path) -> None:
    code, _, err = run_cli(capsys, "invariance", DEMO, IMAGES / "missing.png", "--transform", "rotate")
    assert code == 2 and "missing.png" in err
    code, _, err = run_cli(capsys, "invariance", DEMO, TRIANGLE, TRIANGLE, "--transform", "rotate", "--json")
    assert code == 2 and "more than once" in err
