"""``onnxviz export --target box|mask``: a detector's and a segmenter's explainer written and
checked against onnxviz's own box/mask target on a picture, and a target the model's output does
not have refused with exit code 2 and one paragraph."""

from __future__ import annotations

import json

import cv2
import pytest
import skimage.data

from tests.cli_helpers import run_cli
from tests.helpers import FIXTURES


@pytest.mark.parametrize(
    ("name", "target", "method", "inputs"),
    [
        ("yolov5_like", "box", "saliency", ["images", "box", "box_class"]),
        ("yolo11n_tiny", "box", "gradcam++", ["images", "box", "box_class"]),
        ("seg_deeplab_ts", "mask", "gradcam", ["input", "mask", "mask_class"]),
        ("seg_fcn_ts", "mask", "inputxgrad", ["input", "mask", "mask_class"]),
    ],
)
def test_export_checks_a_box_or_mask_explainer_on_a_picture(capsys, tmp_path, picture, name, target, method, inputs):
    out = tmp_path / "e.onnx"
    if name.startswith("yolo11"):  # fed RGB/255 (ultralytics' own preset), it finds nothing in chelsea
        picture = tmp_path / "astronaut.png"
        cv2.imwrite(str(picture), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    args = ["--method", method, "--target", target, "--out", out, "--check", picture, "--json"]
    code, printed, err = run_cli(capsys, "export", FIXTURES / f"{name}.onnx", *args)
    assert code == 0, err
    summary = json.loads(printed)
    assert summary["inputs"] == inputs and summary["target"] == target
    assert summary["check"]["ok"] and summary["check"]["attribution_rel"] <= 1e-4
    assert summary["check"]["score_rel"] <= 1e-4


@pytest.mark.parametrize(
    ("name", "target", "message"),
    [
        ("cam_vgg", "box", "A box target reads a detector's output, but 'logits' has shape [1, 10]"),
        ("seg_lraspp_ts", "box", "A box target reads a detector's output, but 'out' has shape"),
        ("yolov8n_tiny", "mask", "A mask target reads a segmentation output (1, C, h, w), but 'output0' has shape"),
        ("cam_resnet", "mask", "(a classifier's). hint: Export a detector with --target box"),
    ],
)
def test_export_refuses_a_target_the_output_does_not_have_with_exit_2(capsys, tmp_path, name, target, message):
    out = tmp_path / "e.onnx"
    args = ["--method", "saliency", "--target", target, "--out", out]
    code, printed, err = run_cli(capsys, "export", FIXTURES / f"{name}.onnx", *args)
    assert code == 2
    assert printed == ""
    assert message in " ".join(err.split())
    assert not out.exists()
