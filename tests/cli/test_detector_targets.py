"""Detector and segmenter targets on the command line: the resolved target and the decoded
detections in ``--json``, and every target that does not fit the model refused with exit 2 and one
paragraph naming the output's shape."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from onnx import helper

from tests.cli_helpers import run_cli
from tests.helpers import DEMO, FIXTURES, make_model

REFERENCES = FIXTURES.parent / "detectors"
YOLO = FIXTURES / "yolov8n_tiny.onnx"
SEGMENTER = FIXTURES / "seg_deeplab_ts.onnx"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    found = {}
    for name in ("yolov8n_tiny", "seg_deeplab"):
        found[name] = folder / f"{name}.npy"
        np.save(found[name], np.load(REFERENCES / f"{name}.npz")["x"])
    return found


def refused(capsys, *args: object) -> str:
    code, out, err = run_cli(capsys, *args)
    assert code == 2, (code, out, err)
    paragraph = err.split("error:", 1)[1].strip()
    assert paragraph and "\n\n" not in paragraph
    return " ".join(paragraph.split())


def test_cam_json_lists_the_resolved_detection_and_the_decoding(capsys, inputs) -> None:
    code, out, err = run_cli(capsys, "cam", YOLO, inputs["yolov8n_tiny"], "--target", "detection:1", "--json")
    assert code == 0, err
    (image,) = json.loads(out)["images"].values()
    target = image["target"]
    assert target["kind"] == "detection" and len(target["box"]) == 4
    second = target["detections"][1]
    assert (target["class"], target["box"], target["score"]) == (second["class"], second["box"], second["score"])


def test_a_box_target_on_a_segmenter_names_its_shape(capsys, inputs) -> None:
    err = refused(capsys, "cam", SEGMENTER, inputs["seg_deeplab"], "--target", "box:1,2,30,40")
    assert "[1, 4, 64, 64]" in err and "segmenter" in err and "mask:predicted" in err


def test_a_box_target_on_a_classifier_names_its_shape(capsys, picture) -> None:
    err = refused(capsys, "attribute", DEMO, picture, "--method", "saliency", "--target", "detection:0")
    assert "classifier" in err and "[1, " in err and "--target K" in err


def test_a_class_target_on_a_detector_says_which_targets_fit(capsys, inputs) -> None:
    err = refused(capsys, "cam", YOLO, inputs["yolov8n_tiny"])
    assert "[1, 7, 336]" in err and "detection:0" in err


def test_a_mask_of_another_aspect_ratio_names_the_output_shape(capsys, inputs, tmp_path) -> None:
    cv2.imwrite(str(tmp_path / "wide.png"), np.full((20, 80), 255, np.uint8))
    err = refused(capsys, "cam", SEGMENTER, inputs["seg_deeplab"], "--target", f"mask:{tmp_path / 'wide.png'}:0")
    assert "80x20" in err and "[1, 4, 64, 64]" in err


def test_a_mask_target_on_a_detector_names_its_shape(capsys, inputs) -> None:
    err = refused(capsys, "occlude", YOLO, inputs["yolov8n_tiny"], "--target", "mask:predicted:0")
    assert "[1, 7, 336]" in err and "detection:N" in err


@pytest.mark.parametrize(
    ("model", "target", "needles"),
    [
        ("yolov8n_tiny", "box:10,10,60,60:7", ["Class 7 does not exist", "[1, 7, 336]", "0…2"]),
        ("seg_deeplab", "mask:predicted:9", ["Class 9 does not exist", "[1, 4, 64, 64]", "0…3"]),
    ],
)
def test_a_class_out_of_range_names_the_output_shape(capsys, inputs, model, target, needles) -> None:
    path = YOLO if model == "yolov8n_tiny" else SEGMENTER
    err = refused(capsys, "attribute", path, inputs[model], "--method", "saliency", "--target", target)
    assert all(needle in err for needle in needles), err


def test_a_detection_beyond_the_decoded_ones_names_how_many_there_are(capsys, inputs) -> None:
    err = refused(capsys, "occlude", YOLO, inputs["yolov8n_tiny"], "--target", "detection:99")
    assert "detection:99 does not exist" in err and "[1, 7, 336]" in err and "--json lists them" in err


def test_an_output_layout_not_recognised_says_what_to_give_instead(capsys, tmp_path) -> None:
    """A (1, 4, 36) output (four numbers per position, no class) is neither (1, 4+nc, N) nor (1, N, 5+nc)."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], strides=[2, 2], name="conv"),
        helper.make_node("Reshape", ["c", "shape"], ["y"], name="to_predictions"),
    ]
    weights = {"w": np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32)}
    weights["shape"] = np.array([1, 4, 36], np.int64)
    model = make_model(nodes, (1, 3, 12, 12), "y", weights)
    path = tmp_path / "odd_detector.onnx"
    path.write_bytes(model.SerializeToString())
    np.save(tmp_path / "x.npy", np.ones((1, 3, 12, 12), np.float32))
    err = refused(capsys, "cam", path, tmp_path / "x.npy", "--target", "box:0,0,5,5", "--layer", "conv")
    assert (
        "[1, 4, 36]" in err and "(1, 4+nc, N)" in err and "(1, N, 5+nc)" in err and "--boxes NAME --scores NAME" in err
    )


def test_another_detectors_pre_nms_tensors_are_named_in_the_hint(capsys, tmp_path) -> None:
    """Outputs (1, 36, 3) class scores beside (1, 36, 4) boxes: the hint names both and the
    flags that read them as one detector."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], strides=[2, 2], name="conv"),
        helper.make_node("Reshape", ["c", "shape"], ["flat"], name="flatten"),
        helper.make_node("Transpose", ["flat"], ["rows"], perm=[0, 2, 1], name="to_rows"),
        helper.make_node("Split", ["rows", "parts"], ["boxes", "logits"], axis=2, name="split"),
        helper.make_node("Sigmoid", ["logits"], ["scores"], name="sigmoid"),
    ]
    weights = {
        "w": np.random.default_rng(0).standard_normal((7, 3, 2, 2)).astype(np.float32),
        "shape": np.array([1, 7, 36], np.int64),
        "parts": np.array([4, 3], np.int64),
    }
    path = tmp_path / "pre_nms.onnx"
    path.write_bytes(make_model(nodes, (1, 3, 12, 12), "scores", weights).SerializeToString())
    np.save(tmp_path / "x.npy", np.ones((1, 3, 12, 12), np.float32))
    err = refused(capsys, "attribute", path, tmp_path / "x.npy", "--method", "saliency", "--target", "detection:0")
    assert "[1, 36, 3]" in err and "'boxes' [1, 36, 4]" in err and "--boxes boxes --scores scores" in err


PRE_NMS = FIXTURES / "pre_nms_ts.onnx"  # outputs boxes (1, 512, 4) and scores (1, 512, 3)


@pytest.fixture(scope="module")
def pre_nms_input(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pre_nms") / "x.npy"
    np.save(path, np.load(REFERENCES / "pre_nms.npz")["x"])
    return path


def test_boxes_and_scores_read_another_detectors_two_tensors(capsys, pre_nms_input) -> None:
    found = np.load(REFERENCES / "pre_nms.npz")
    box = "box:" + ",".join(f"{v:.4f}" for v in found["box"])
    args = ("attribute", PRE_NMS, pre_nms_input, "--method", "saliency", "--target", box, "--json")
    code, out, err = run_cli(capsys, *args, "--boxes", "boxes", "--scores", "scores")
    assert code == 0, err
    (image,) = json.loads(out)["images"].values()
    target = image["target"]
    assert (target["kind"], target["class"]) == ("box", int(found["class"]))
    assert target["index"] == [0, 4 + int(found["class"]), int(found["matched"])]
    assert target["detections"] and target["detections"][0]["score"] >= target["detections"][-1]["score"]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("--boxes", "boxes"), ["--boxes was given without --scores", "--boxes NAME --scores NAME"]),
        (("--scores", "scores"), ["--scores was given without --boxes"]),
        (("--boxes", "bxes", "--scores", "scores"), ["'bxes'", "does not have", "boxes, scores"]),
        (("--boxes", "scores", "--scores", "boxes"), ["[1, 512, 3]", "[1, 512, 4]", "(1, N, 4)", "(1, N, nc)"]),
    ],
)
def test_boxes_and_scores_that_do_not_fit_are_refused_naming_them(capsys, pre_nms_input, flags, expected) -> None:
    err = refused(capsys, "cam", PRE_NMS, pre_nms_input, "--target", "detection:0", *flags)
    assert all(part in err for part in expected), err
