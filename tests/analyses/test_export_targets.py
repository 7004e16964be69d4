"""``export --target box`` and ``--target mask``: the explainer of a detector or a segmenter, fed a
box or a mask per image, equals onnxviz's own ``cam --raw`` / ``attribute --raw`` with
``--target box:X1,Y1,X2,Y2[:K]`` / ``mask:PNG:K`` for batches of 1 and 3 (another box, class or
mask per image), in a fresh onnxruntime session and in OpenVINO; a box target given to a
classifier or a segmenter, and a mask target given to a detector, are refused.

The fixtures are those of ``test_detectors.py`` (ultralytics' YOLOv8n and YOLO11n, a YOLOv5-layout
detector, torchvision's segmenters through the TorchScript exporter); onnxviz's own results are
themselves checked there against torch autograd and pytorch-grad-cam.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import skimage.data

import onnxviz
from onnxviz.analyses.export.analysis import CAMS
from onnxviz.errors import UsageError
from tests.helpers import FIXTURES

REFERENCES = FIXTURES.parent / "detectors"
DETECTORS = ["yolov8n_tiny", "yolo11n_tiny", "yolov5_like"]
SEGMENTERS = ["seg_deeplab_ts", "seg_lraspp_ts", "seg_fcn_ts"]
METHODS = ["gradcam", "gradcam++", "hirescam", "saliency", "inputxgrad", "ig", "guided"]
STEPS = 8
TOLERANCE = 1e-4  # relative to the largest magnitude of onnxviz's own map


@functools.cache
def load(name: str) -> onnxviz.Model:
    return onnxviz.load(FIXTURES / f"{name}.onnx", device="cpu")


@functools.cache
def reference(name: str) -> dict[str, np.ndarray]:
    base = name.rsplit("_", 1)[0] if name.startswith("seg_") else name
    return dict(np.load(REFERENCES / f"{base}.npz"))


def layer_of(name: str) -> str:
    found = reference(name)
    return str(found[f"layer_{name.rsplit('_', 1)[1]}"] if name.startswith("seg_") else found["layer"])


@functools.cache
def images(name: str) -> np.ndarray:
    """The fixture's own test image, then two photos (astronaut, coffee), prepared by the model."""
    model = load(name)
    photos = [model.prepare(photo)[0] for photo in (skimage.data.astronaut(), skimage.data.coffee())]
    return np.concatenate([reference(name)["x"], *photos])


def own(model: onnxviz.Model, name: str, x: np.ndarray, method: str, target: str) -> np.ndarray:
    """onnxviz's own map of one image (batch axis of 1) at ``target``."""
    if method in CAMS:
        return model.cam(x, method=method, layer=[layer_of(name)], target=target).raw()
    return model.attribute(x, method=method, target=target, steps=STEPS).raw()


def run(path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))


def assert_equal_to_own(found: dict[str, np.ndarray], expected: list[np.ndarray], scores: list[float]) -> None:
    expected_maps = np.concatenate(expected)
    scale = np.abs(expected_maps).max()
    assert scale > 0, "onnxviz's own map is zero: the comparison would say nothing"
    assert found["attribution"].shape == expected_maps.shape
    assert np.abs(found["attribution"] - expected_maps).max() <= TOLERANCE * scale
    np.testing.assert_allclose(found["target_score"], scores, rtol=1e-5, atol=1e-6)


def boxes_of(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Three boxes and classes, one per image of ``images``: the reference's matched box with its
    class; the strongest detection's box moved by a few pixels, its best class (−1); a box drawn
    by hand with class 1."""
    model, found = load(name), reference(name)
    strongest = model.attribute(images(name)[1:2], method="saliency", target="detection:0").targets[0].box
    boxes = np.array([found["box"], np.add(strongest, (3, -2, 2, 4)), [20, 30, 90, 110]], np.float32)
    return boxes, np.array([int(found["class"]), -1, 1], np.int64)


def box_spelling(box: np.ndarray, klass: int) -> str:
    spelled = "box:" + ",".join(repr(float(v)) for v in box)  # float32 values written exactly
    return spelled if klass < 0 else f"{spelled}:{klass}"


def mask_png(tmp_path, mask: np.ndarray, n: int) -> str:
    path = tmp_path / f"mask{n}.png"
    cv2.imwrite(str(path), (mask * 255).astype(np.uint8))
    return str(path)


def masks_of(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Three masks and classes: the reference's predicted mask and class; the pixels the second
    image's output gives its most frequent class; a rectangle drawn by hand with class 0."""
    found = reference(name)
    value = ort.InferenceSession(str(FIXTURES / f"{name}.onnx")).run(None, {"input": images(name)[1:2]})[0]
    predicted = value[0].argmax(axis=0)
    common = int(np.bincount(predicted.ravel()).argmax())
    drawn = np.zeros_like(found["mask"], np.float32)
    drawn[12:44, 8:56] = 1
    masks = np.stack([found["mask"], predicted == common, drawn]).astype(np.float32)
    return masks, np.array([int(found["class"]), common, 0], np.int64)


def target_inputs(name: str, target: str, tmp_path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The explainer's target inputs for the three images of ``images``, and onnxviz's own
    spelling of each image's target (a mask as a PNG in ``tmp_path``)."""
    if target == "box":
        boxes, classes = boxes_of(name)
        return {"box": boxes, "box_class": classes}, [box_spelling(b, k) for b, k in zip(boxes, classes, strict=True)]
    masks, classes = masks_of(name)
    spellings = [f"mask:{mask_png(tmp_path, masks[n], n)}:{classes[n]}" for n in range(len(masks))]
    return {"mask": masks, "mask_class": classes}, spellings


def exported(name: str, method: str, target: str, tmp_path):
    """The explainer of ``method`` (a cam at the reference's layer) with ``target``, written in ``tmp_path``."""
    layer = layer_of(name) if method in CAMS else None
    return load(name).export(out=tmp_path / "e.onnx", method=method, layer=layer, target=target, steps=STEPS)


CASES = [(name, "box") for name in DETECTORS] + [(name, "mask") for name in SEGMENTERS]


@pytest.mark.parametrize(("name", "target"), CASES)
@pytest.mark.parametrize("method", METHODS)
def test_the_explainer_equals_onnxvizs_own_box_or_mask_target_for_batches_of_1_and_3(
    tmp_path, name, target, method
) -> None:
    model, x = load(name), images(name)
    explainer = exported(name, method, target, tmp_path)
    inputs, spellings = target_inputs(name, target, tmp_path)
    assert explainer.inputs == [model.graph.input_name, *inputs]
    expected = [own(model, name, x[n : n + 1], method, spellings[n]) for n in range(3)]
    scores = [model.attribute(x[n : n + 1], method="saliency", target=spellings[n]).targets[0].score for n in range(3)]
    for count in (1, 3):
        feeds = {model.graph.input_name: x[:count], **{key: value[:count] for key, value in inputs.items()}}
        assert_equal_to_own(run(explainer.path, feeds), expected[:count], scores[:count])


@pytest.mark.parametrize(("name", "target"), [("yolov5_like", "box"), ("seg_deeplab_ts", "mask")])
def test_box_and_mask_explainers_are_standard_models(tmp_path, name, target) -> None:
    path = load(name).export(out=tmp_path / "e.onnx", method="ig", target=target, steps=STEPS).path
    explainer = onnx.load(str(path))
    onnx.checker.check_model(explainer, full_check=True)
    assert {node.domain for node in explainer.graph.node} <= {""}
    batch = explainer.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    for value in (*explainer.graph.input, *explainer.graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param == batch, value.name
    # OpenVINO 2026.4 gets a ConvTranspose wrong that reads the very weights its forward Conv
    # reads (export/weights.py): none does, and the inverse of every such Conv reads twice them.
    initializers = {i.name for i in explainer.graph.initializer}
    conv_weights = {n.input[1] for n in explainer.graph.node if n.op_type == "Conv"} & initializers
    transposed = [n for n in explainer.graph.node if n.op_type == "ConvTranspose"]
    assert transposed and not {n.input[1] for n in transposed} & conv_weights


OPENVINO_CASES = [
    ("yolov8n_tiny", "box", "gradcam"),
    ("yolov8n_tiny", "box", "ig"),
    ("yolo11n_tiny", "box", "guided"),
    ("yolov5_like", "box", "saliency"),
    ("yolov5_like", "box", "gradcam"),
    ("seg_lraspp_ts", "mask", "gradcam"),
    ("seg_lraspp_ts", "mask", "ig"),
    ("seg_deeplab_ts", "mask", "guided"),
]


@pytest.mark.parametrize(("name", "target", "method"), OPENVINO_CASES)
def test_openvino_runs_box_and_mask_explainers_with_onnxruntimes_result(tmp_path, name, target, method) -> None:
    ov = pytest.importorskip("openvino", reason="OpenVINO is in the test extra: pip install '.[test]'")
    path = exported(name, method, target, tmp_path).path
    inputs, _ = target_inputs(name, target, tmp_path)
    feeds = {load(name).graph.input_name: images(name), **inputs}
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    found = compiled(feeds)
    for output, value in run(path, feeds).items():
        assert np.abs(found[compiled.output(output)] - value).max() <= 1e-3 * np.abs(value).max(), output


@pytest.mark.parametrize(
    ("name", "target", "says"),
    [
        ("cam_vgg", "box", "a classifier's"),
        ("seg_deeplab_ts", "box", "a segmenter's"),
        ("yolov8n_tiny", "mask", "a detector's"),
        ("cam_resnet", "mask", "a classifier's"),
    ],
)
def test_a_target_the_models_output_does_not_have_is_refused(tmp_path, name, target, says) -> None:
    with pytest.raises(UsageError, match=says) as refused:
        load(name).export(out=tmp_path / "e.onnx", method="saliency", target=target)
    assert "--target" in refused.value.hint
    assert not (tmp_path / "e.onnx").exists()
