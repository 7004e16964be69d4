"""``onnxviz attribute``: several images per call, the contract's JSON and ``--raw``, a picture,
and bad input refused with exit 2 and one paragraph."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.cli_helpers import run_cli
from tests.helpers import FIXTURES, ROOT

MODEL = FIXTURES / "attr_vgg.onnx"
REFERENCES = np.load(ROOT / "tests" / "fixtures" / "attribute_references.npz")


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    """The two reference inputs as .npy files (preprocessed tensors, used as is)."""
    paths = [tmp_path / "chelsea.npy", tmp_path / "astronaut.npy"]
    for path, tensor in zip(paths, REFERENCES["inputs"], strict=True):
        np.save(path, tensor)
    return paths


def test_ig_on_two_images_writes_the_contracts_json_and_raw(capsys, images, tmp_path) -> None:
    raw = tmp_path / "ig.npy"
    arguments = ("attribute", MODEL, *images, "--method", "ig", "--steps", REFERENCES["steps"], "--target", "3")
    code, out, err = run_cli(capsys, *arguments, "--json", "--raw", raw, "--device", "cpu")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["method"] == "ig" and list(summary["images"]) == [str(path) for path in images]
    for row, entry in enumerate(summary["images"].values()):
        assert entry["target"]["kind"] == "class" and entry["target"]["class"] == 3
        assert entry["delta"] == pytest.approx(float(REFERENCES["vgg/ig_delta"][row]), rel=1e-3, abs=1e-4)
    attribution = np.load(raw)
    assert attribution.dtype == np.float32 and attribution.shape == (2, 3, 64, 64)
    expected = REFERENCES["vgg/ig"].astype(np.float32) * REFERENCES["vgg/ig/scale"]
    assert np.abs(attribution - expected).max() <= 1e-3 * np.abs(expected).max()


def test_a_method_without_delta_leaves_it_out_and_draws_a_picture(capsys, images, tmp_path) -> None:
    picture = tmp_path / "guided.png"
    code, out, err = run_cli(capsys, "attribute", MODEL, *images, "--method", "guided", "--out", picture, "--json")
    assert code == 0, err
    assert all("delta" not in entry for entry in json.loads(out)["images"].values())
    drawn = cv2.imread(str(picture))
    assert drawn is not None and drawn.shape[0] > drawn.shape[1]  # one row per image


def test_guided_gradcam_reads_the_layer_given_on_the_command_line(capsys, images, tmp_path) -> None:
    raw = tmp_path / "guided_gradcam.npy"
    arguments = ("attribute", MODEL, *images, "--method", "guided-gradcam", "--target", "3", "--raw", raw)
    code, _, err = run_cli(capsys, *arguments, "--layer", "pool3", "--device", "cpu")
    assert code == 0, err
    expected = REFERENCES["vgg/guided-gradcam"].astype(np.float32) * REFERENCES["vgg/guided-gradcam/scale"]
    assert np.abs(np.load(raw) - expected).max() <= 1e-3 * np.abs(expected).max()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--method", "gradient-shap"), "Unknown --method 'gradient-shap'"),
        (("--method", "saliency", "--target", "10"), "Class 10 does not exist"),
        (("--method", "ig", "--steps", "0"), "--steps must be a positive number"),
        (("--method", "smoothgrad", "--samples", "0"), "--samples must be a positive number"),
        (("--method", "rise", "--masks", "-3"), "--masks must be a positive number"),
        (("--method", "ig", "--baseline", "nothing.npy"), "--baseline 'nothing.npy' is not zero"),
        (("--method", "guided-gradcam", "--layer", "fc1"), "needs a 4-D layer"),
    ],
)
def test_bad_input_exits_2_with_one_paragraph(capsys, images, arguments, message) -> None:
    code, out, err = run_cli(capsys, "attribute", MODEL, images[0], *arguments, "--device", "cpu")
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err
