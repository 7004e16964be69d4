"""Detectors and segmenters: a box target and a mask target explained as torch autograd and
pytorch-grad-cam explain them, and occluded as plain onnxruntime runs score them.

The fixtures are ultralytics' YOLOv8n and YOLO11n at a small width, exported by ultralytics'
exporter, and torchvision's DeepLabV3-MobileNetV3, LR-ASPP and FCN, width-reduced, each exported
by both torch exporters; ``scripts/detector_fixtures.py`` builds them and stores the references
(``tests/fixtures/detectors/MODEL.npz``); torch is not needed here.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import onnxruntime as ort
import pytest

import onnxviz
from onnxviz.render.detections import CHOSEN
from onnxviz.targets.tensors import ChannelTarget
from tests.helpers import FIXTURES

REFERENCES = FIXTURES.parent / "detectors"
DETECTORS = ["yolov8n_tiny", "yolo11n_tiny", "yolov5_like"]
SEGMENTERS = [
    f"{name}_{exporter}" for name in ("seg_deeplab", "seg_lraspp", "seg_fcn") for exporter in ("ts", "dynamo")
]
TOLERANCE = 2e-3  # of the reference's largest value (references stored as float16)


def close(found: np.ndarray, expected: np.ndarray) -> None:
    expected = expected.astype(np.float32)
    assert found.shape == expected.shape
    assert np.abs(found - expected).max() <= TOLERANCE * np.abs(expected).max()


def reference(model: str) -> dict[str, np.ndarray]:
    base = model.rsplit("_", 1)[0] if model.startswith("seg_") else model
    return dict(np.load(REFERENCES / f"{base}.npz"))


def layer_of(model: str, found: dict[str, np.ndarray]) -> str:
    return str(found[f"layer_{model.rsplit('_', 1)[1]}"] if model.startswith("seg_") else found["layer"])


@pytest.fixture(scope="module")
def loaded():
    """``loaded(name)``: the fixture ``name``.onnx, loaded once for this module."""
    return functools.cache(lambda name: onnxviz.load(FIXTURES / f"{name}.onnx", device="cpu"))


def box_spelling(found: dict[str, np.ndarray]) -> str:
    return "box:" + ",".join(f"{v:.4f}" for v in found["box"])


def element_spelling(model: onnxviz.Model, found: dict[str, np.ndarray]) -> str:
    return f"{model.graph.output_names[0]}[{','.join(map(str, found['element']))}]"


@pytest.mark.parametrize("name", DETECTORS)
def test_a_box_target_matches_the_prediction_torch_matched(loaded, name) -> None:
    found = reference(name)
    result = loaded(name).attribute(found["x"], method="saliency", target=box_spelling(found))
    (target,) = result.targets
    assert target.kind == "box" and target.class_index == int(found["class"])
    matched, klass = int(found["matched"]), int(found["class"])
    assert target.index == ((0, matched, 5 + klass) if name == "yolov5_like" else (0, 4 + klass, matched))


@pytest.mark.parametrize("name", DETECTORS + SEGMENTERS)
def test_saliency_of_an_output_element_equals_torch_autograd(loaded, name) -> None:
    model, found = loaded(name), reference(name)
    result = model.attribute(found["x"], method="saliency", target=element_spelling(model, found))
    close(result.raw(), found["saliency_element"])


@pytest.mark.parametrize("name", DETECTORS)
def test_saliency_of_a_box_target_equals_torch_autograd(loaded, name) -> None:
    found = reference(name)
    result = loaded(name).attribute(found["x"], method="saliency", target=box_spelling(found))
    close(result.raw(), found["saliency"])


@pytest.mark.parametrize("name", DETECTORS)
def test_gradcam_of_a_box_target_equals_pytorch_grad_cam(loaded, name) -> None:
    found = reference(name)
    result = loaded(name).cam(found["x"], method="gradcam", layer=[layer_of(name, found)], target=box_spelling(found))
    close(result.raw(), found["gradcam"])
    (layer_map,) = result.maps.values()
    close(layer_map, found["gradcam_layer"])


@pytest.mark.parametrize("name", DETECTORS)
def test_scorecam_of_a_box_matches_again_on_every_masked_copy_as_pytorch_grad_cam_does(loaded, name) -> None:
    """The reference is pytorch-grad-cam's ScoreCAM with a FasterRCNNBoxScoreTarget-like target
    on the YOLO output: each masked copy scores the best-overlapping prediction, or 0."""
    found = reference(name)
    result = loaded(name).cam(found["x"], method="scorecam", layer=[layer_of(name, found)], target=box_spelling(found))
    close(result.raw(), found["scorecam"])


@pytest.mark.parametrize("name", ["yolov8n_tiny", "yolo11n_tiny"])
def test_the_default_cam_layer_of_a_detector_is_the_neck_map_every_scale_comes_from(loaded, name) -> None:
    model, found = loaded(name), reference(name)
    chosen = model.cam(found["x"], target=box_spelling(found))
    assert model.resolve(chosen.layers[0]).tensor == layer_of(name, found)


@pytest.mark.parametrize("name", SEGMENTERS)
def test_saliency_of_a_predicted_mask_equals_torch_autograd(loaded, name) -> None:
    found = reference(name)
    result = loaded(name).attribute(found["x"], method="saliency", target=f"mask:predicted:{int(found['class'])}")
    (target,) = result.targets
    assert target.summary()["pixels"] == int(found["mask"].sum())
    close(result.raw(), found["saliency"])


@pytest.mark.parametrize("name", SEGMENTERS)
def test_gradcam_of_a_mask_target_equals_pytorch_grad_cams_segmentation_target(loaded, name) -> None:
    found = reference(name)
    target = f"mask:predicted:{int(found['class'])}"
    result = loaded(name).cam(found["x"], method="gradcam", layer=[layer_of(name, found)], target=target)
    close(result.raw(), found["gradcam"])
    close(next(iter(result.maps.values())), found["gradcam_layer"])


def test_a_mask_png_at_the_input_size_is_read_as_its_pixels_above_zero(loaded, tmp_path) -> None:
    found = reference("seg_deeplab_ts")
    big = cv2.resize((found["mask"] * 200).astype(np.uint8), (256, 256), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(tmp_path / "mask.png"), big)
    model = loaded("seg_deeplab_ts")
    from_png = model.attribute(
        found["x"], method="saliency", target=f"mask:{tmp_path / 'mask.png'}:{int(found['class'])}"
    )
    close(from_png.raw(), found["saliency"])


def predictions(value: np.ndarray, yolov5: bool) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (x1, y1, x2, y2) and class scores of one image's output, from the layouts' definitions."""
    rows = value[0].T if not yolov5 else value[0]
    cx, cy, w, h = rows[:, :4].T
    scores = rows[:, 4:5] * rows[:, 5:] if yolov5 else rows[:, 4:]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1), scores


def rematched(value: np.ndarray, box: np.ndarray, klass: int, yolov5: bool) -> float:
    """pytorch-grad-cam's FasterRCNNBoxScoreTarget on a detector output, from its definition."""
    boxes, scores = predictions(value, yolov5)
    inter = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None) * np.clip(
        np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None
    )
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    overlap = inter / union
    best = int(overlap.argmax())
    return float(scores[best, klass]) if overlap[best] >= 0.5 and int(scores[best].argmax()) == klass else 0.0


def occluded_copies(x: np.ndarray, patch: int, stride: int) -> list[np.ndarray]:
    rows = (x.shape[2] - patch) // stride + 1
    cols = (x.shape[3] - patch) // stride + 1
    copies = []
    for r in range(rows):
        for c in range(cols):
            copy = x.copy()
            copy[:, :, r * stride : r * stride + patch, c * stride : c * stride + patch] = 0
            copies.append(copy)
    return copies


@pytest.mark.parametrize("name", DETECTORS)
def test_occluding_a_box_target_rematches_the_box_on_every_copy_as_plain_onnxruntime_does(loaded, name) -> None:
    found = reference(name)
    result = loaded(name).occlude(found["x"], target=box_spelling(found), patch=32, stride=16)
    session = ort.InferenceSession(str(FIXTURES / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    matched = np.asarray(result.resolved.box, np.float64)
    klass, yolov5 = int(found["class"]), name == "yolov5_like"
    expected = [
        rematched(session.run(None, {"images": copy})[0].astype(np.float64), matched, klass, yolov5)
        for copy in occluded_copies(found["x"], 32, 16)
    ]
    np.testing.assert_allclose(result.scores.ravel(), expected, rtol=1e-4, atol=1e-6)
    assert 0 < np.count_nonzero(result.scores) < result.scores.size  # some copies lose the box, some keep it


@pytest.mark.parametrize("name", ["seg_lraspp_ts", "seg_fcn_dynamo"])
def test_occluding_a_mask_target_scores_the_fixed_mask_as_plain_onnxruntime_does(loaded, name) -> None:
    found = reference(name)
    klass, mask = int(found["class"]), found["mask"]
    result = loaded(name).occlude(found["x"], target=f"mask:predicted:{klass}", patch=16, stride=16)
    session = ort.InferenceSession(str(FIXTURES / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    expected = [
        float((session.run(None, {"input": c})[0][0, klass].astype(np.float64) * mask).sum())
        for c in occluded_copies(found["x"], 16, 16)
    ]
    np.testing.assert_allclose(result.scores.ravel(), expected, rtol=1e-4, atol=1e-3)


def test_detection_n_follows_the_decoding_strongest_first(loaded) -> None:
    found = reference("yolov8n_tiny")
    model = loaded("yolov8n_tiny")
    first = model.attribute(found["x"], method="saliency", target="detection:0").targets[0]
    detections = first.summary()["detections"]
    assert len(detections) >= 2
    scores = [d["score"] for d in detections]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.25
    second = model.attribute(found["x"], method="saliency", target="detection:1").targets[0]
    assert (second.class_index, list(second.box)) == (detections[1]["class"], detections[1]["box"])
    session = ort.InferenceSession(str(FIXTURES / "yolov8n_tiny.onnx"), providers=["CPUExecutionProvider"])
    value = session.run(None, {"images": found["x"]})[0][0]
    assert second.score == pytest.approx(float(value[4 + second.class_index, second.index[2]]))


def test_every_picture_of_a_detection_outlines_the_explained_box(loaded) -> None:
    found = reference("yolov8n_tiny")
    model = loaded("yolov8n_tiny")
    box = box_spelling(found)
    results = [
        model.cam(found["x"], target=box),
        model.attribute(found["x"], method="saliency", target=box),
        model.occlude(found["x"], target=box, patch=32, stride=32),
        model.explain(found["x"], methods=["gradcam"], target=box),
    ]
    for result in results:
        figure = result.figure()
        assert (figure == np.array(CHOSEN, np.uint8)).all(axis=-1).sum() > 100, type(result).__name__


def test_the_picture_of_a_mask_target_overlays_the_classes(loaded) -> None:
    found = reference("seg_fcn_ts")
    result = loaded("seg_fcn_ts").cam(found["x"], target=f"mask:predicted:{int(found['class'])}")
    target = result.targets[0]
    seen = target.drawn(result.pictures[0], None, (64, 64))
    assert seen.shape == result.pictures[0].shape and not np.array_equal(seen, result.pictures[0])
    assert (seen == 255).all(axis=-1).any()  # the mask's outline
    assert result.figure().shape[1] > 2 * seen.shape[1]  # the overlay beside the map


def layer_value(name: str, tensor: str, x: np.ndarray) -> np.ndarray:
    """A layer's value from a plain onnxruntime session of the file with the layer as an output."""
    import onnx

    proto = onnx.load(str(FIXTURES / f"{name}.onnx"))
    proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([tensor], {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("name", ["yolo11n_tiny", "seg_lraspp_dynamo"])
def test_the_layer_analyses_read_any_layer_of_a_detector_or_a_segmenter(loaded, name, tmp_path) -> None:
    model, found = loaded(name), reference(name)
    layer = layer_of(name, found)
    grid = model.activations(found["x"], node=layer)
    np.testing.assert_allclose(grid.maps, layer_value(name, layer, found["x"])[0], rtol=1e-5, atol=1e-5)
    projection = model.project(found["x"], node=layer, top=2)
    assert projection.projections.shape == (2, *found["x"].shape[1:]) and np.isfinite(projection.projections).all()
    for k, picture in enumerate((found["x"], found["x"][:, :, ::-1].copy())):
        np.save(tmp_path / f"{k}.npy", picture)
    top = model.topk(tmp_path, node=layer, channels=[0], k=2)
    strongest = max(float(layer_value(name, layer, np.load(p))[0, 0].max()) for p in sorted(tmp_path.glob("*.npy")))
    assert top.summary()["channels"]["0"][0]["activation"] == pytest.approx(strongest, rel=1e-5)
    step = 1e-3 * np.sign(model.attribute(found["x"], method="saliency", target=ChannelTarget(layer, 0)).raw())
    total = lambda z: float(layer_value(name, layer, z.astype(np.float32))[0, 0].sum())  # noqa: E731
    assert total(found["x"] + step) > total(found["x"]) > total(found["x"] - step)  # the layer's own gradient


@pytest.mark.parametrize("name", ["yolov8n_tiny", "yolov5_like"])
def test_integrated_gradients_of_a_box_are_complete_for_the_matched_prediction(loaded, name) -> None:
    """ig integrates the held prediction's gradient, so its delta compares it with that
    prediction's own gain, not with a box matched again at the baseline."""
    found = reference(name)
    result = loaded(name).attribute(found["x"], method="ig", steps=32, target=box_spelling(found))
    assert abs(result.delta[0]) < 2e-2 * abs(result.targets[0].score)  # MaxPool (SPPF) kinks slow the quadrature


def test_class_names_come_from_the_names_ultralytics_writes(loaded, tmp_path) -> None:
    import onnx

    proto = onnx.load(str(FIXTURES / "yolov8n_tiny.onnx"))
    names = next(p for p in proto.metadata_props if p.key == "names")
    assert names.value == "{0: '0', 1: '1', 2: '2'}"  # the exporter's dict literal, class by class
    names.value = "{0: 'person', 1: 'bicycle', 2: 'car'}"
    onnx.save(proto, str(tmp_path / "named.onnx"))
    assert onnxviz.load(tmp_path / "named.onnx", device="cpu").labels() == ["person", "bicycle", "car"]
    assert loaded("seg_fcn_ts").labels() is None
