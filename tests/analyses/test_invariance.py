"""Invariance curves equal a plain onnxruntime run of the original model on inputs warped here."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest
from onnx import helper

import onnxviz
from onnxviz.analyses.invariance import default_amounts
from onnxviz.data.preprocess import Preprocessing
from onnxviz.errors import UsageError
from onnxviz.graph.model import ModelGraph
from onnxviz.runtime.sessions import choose_device
from onnxviz.runtime.warps import warp, warp_matrix
from tests.helpers import DEMO, FIXTURES, make_model, session

IMAGES = DEMO.parent / "images"
PICTURES = [IMAGES / "triangle.png", IMAGES / "stripes.png"]
# The demo's first conv layer (conv1, after its ReLU) and its code layer (the input of the last Gemm).
DEMO_LAYERS = {"conv1": "/features/relu1/Relu_output_0", "relu4": "/classifier/relu4/Relu_output_0"}


def _plain_session(path, tensors: list[str]):
    """The original model file with ``tensors`` added as outputs, in a plain onnxruntime session."""
    model = onnx.load(str(path))
    for tensor in tensors:
        model.graph.output.append(helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    return session(model)


def _warped(x: np.ndarray, transform: str, amount: float, channels_last: bool) -> np.ndarray:
    """``x`` (1, …) warped channel by channel, written out from the definition."""
    planes = x[0] if channels_last else x[0].transpose(1, 2, 0)
    height, width = planes.shape[:2]
    centre = ((width - 1) / 2, (height - 1) / 2)
    matrix = {
        "translate": np.float64([[1, 0, 0], [0, 1, amount]]),
        "rotate": cv2.getRotationMatrix2D(centre, amount, 1),
        "scale": cv2.getRotationMatrix2D(centre, 0, amount),
    }[transform]
    out = np.stack(
        [
            cv2.warpAffine(planes[:, :, c].copy(), matrix, (width, height), borderMode=cv2.BORDER_CONSTANT)
            for c in range(planes.shape[2])
        ],
        axis=2,
    )
    return (out if channels_last else out.transpose(2, 0, 1))[None].astype(np.float32)


def _reference(
    path, inputs, tensors, logits, transform, amounts, channels_last=False, target=None, ends_in_softmax=False
):
    """(distance (layers, images, amounts), probability, top class (images, amounts)) by brute force;
    a model that ends in Softmax gives its probabilities itself."""
    plain = _plain_session(path, tensors)
    names = [plain.get_outputs()[0].name, *tensors]
    name = plain.get_inputs()[0].name
    distance = np.zeros((len(tensors), len(inputs), len(amounts)))
    probability = np.zeros((len(inputs), len(amounts)))
    top = np.zeros((len(inputs), len(amounts)), int)
    for i, x in enumerate(inputs):
        base = dict(zip(names, plain.run(names, {name: x}), strict=True))
        wanted = int(base[logits].argmax()) if target is None else target
        for a, amount in enumerate(amounts):
            moved = dict(
                zip(names, plain.run(names, {name: _warped(x, transform, amount, channels_last)}), strict=True)
            )
            for k, tensor in enumerate(tensors):
                distance[k, i, a] = np.linalg.norm(moved[tensor].astype(np.float64) - base[tensor])
            z = moved[logits].reshape(-1).astype(np.float64)
            p = z if ends_in_softmax else np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            probability[i, a], top[i, a] = p[wanted], p.argmax()
    return distance, probability, top


@pytest.mark.parametrize(
    ("transform", "amounts"),
    [("translate", [-9, -2.5, 0, 4, 16]), ("rotate", [0, 15, 90, 200.5]), ("scale", [0.5, 0.9, 1, 1.35])],
)
def test_curves_equal_a_plain_onnxruntime_run_on_warped_inputs(demo_model, transform, amounts, monkeypatch) -> None:
    monkeypatch.setattr("onnxviz.runtime.batching.DEFAULT_BATCH_LIMIT", 3)  # batches straddle the images
    result = demo_model.invariance(PICTURES, transform=transform, amounts=amounts)
    inputs = [demo_model.prepare(p)[0] for p in PICTURES]
    tensors = list(DEMO_LAYERS.values())
    distance, probability, top = _reference(DEMO, inputs, tensors, "logits", transform, amounts)
    assert result.layers == list(DEMO_LAYERS) and result.amounts == [float(a) for a in amounts]
    np.testing.assert_allclose(result.distance, distance, rtol=1e-4, atol=1e-4)
    norms = np.array(
        [[np.linalg.norm(_plain_session(DEMO, [t]).run([t], {"input": x})[0]) for x in inputs] for t in tensors]
    )
    np.testing.assert_allclose(result.relative, distance / norms[:, :, None], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result.probability, probability, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(result.top_class, top)
    assert result.distance[:, :, 0].min() > 0 or amounts[0] == 0  # a real move moves the features


def test_amount_zero_gives_distance_zero_and_the_plain_probability(demo_model) -> None:
    inputs = [demo_model.prepare(p)[0] for p in PICTURES]
    plain = session(onnx.load(str(DEMO)))
    for transform, identity in (("translate", 0), ("rotate", 0), ("scale", 1)):
        result = demo_model.invariance(PICTURES, transform=transform, amounts=[identity, identity])
        assert np.all(result.distance == 0) and np.all(result.relative == 0)
        for i, x in enumerate(inputs):
            z = plain.run(None, {"input": x})[0][0].astype(np.float64)
            p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            assert result.target_class[i] == int(p.argmax())
            np.testing.assert_allclose(result.probability[i], p[p.argmax()], rtol=1e-5)
            np.testing.assert_array_equal(result.top_class[i], [p.argmax()] * 2)


def test_nhwc_model_is_warped_on_its_spatial_axes(fixture_model) -> None:
    model = fixture_model("tf2onnx_nhwc.onnx")
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((1, 32, 32, 3)).astype(np.float32) for _ in range(2)]
    result = model.invariance(inputs, transform="rotate", amounts=[0, 30, 90], layers=["conv1"], target_class=1)
    tensor, logits = model.resolve("conv1").tensor, model.graph.output_names[0]
    path = FIXTURES / "tf2onnx_nhwc.onnx"
    assert model.graph.producer[logits].op_type == "Softmax"
    distance, probability, top = _reference(path, inputs, [tensor], logits, "rotate", [0, 30, 90], True, 1, True)
    assert result.images == ["image0", "image1"] and result.target_class == [1, 1]
    np.testing.assert_allclose(result.distance, distance, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(result.probability, probability, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(result.top_class, top)
    assert result.thumbnails.shape == (2, 3, 32, 32, 3)


def test_defaults_follow_the_contract(demo_model) -> None:
    assert default_amounts("translate", 64) == [-16, -13, -11, -8, -5, -3, 0, 3, 5, 8, 11, 13, 16]
    assert default_amounts("rotate", 64) == list(range(0, 360, 10))
    assert default_amounts("scale", 64) == [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8]
    result = demo_model.invariance(PICTURES[:1], transform="translate")
    assert result.amounts == default_amounts("translate", 64) and result.layers == ["conv1", "relu4"]
    summary = result.summary()
    assert list(summary) == ["transform", "amounts", "layers", "target_class", "images"]
    entry = summary["images"][str(PICTURES[0])]
    assert list(entry) == ["distance", "relative", "probability", "top_class"]
    assert summary["target_class"] == {str(PICTURES[0]): 2} and entry["top_class"][6] == 2  # the triangle
    assert [len(v) for v in entry["distance"].values()] == [13, 13] and entry["distance"]["conv1"][6] == 0


def _feature_extractor(tmp_path):
    """conv → relu: its output is a feature map, not a class vector."""
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    path = tmp_path / "features.onnx"
    onnx.save(make_model(nodes, (1, 3, 16, 16), "y", {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32)}), path)
    return path


def test_a_model_without_a_class_vector_gives_distances_only(tmp_path) -> None:
    path = _feature_extractor(tmp_path)
    model = onnxviz.load(path, device="cpu")
    x = np.random.default_rng(2).standard_normal((1, 3, 16, 16)).astype(np.float32)
    result = model.invariance([x], transform="translate", amounts=[-3, 0, 2], layers=["conv1"])
    distance, _, _ = _reference(path, [x], ["y"], "y", "translate", [-3, 0, 2])
    np.testing.assert_allclose(result.distance, distance, rtol=1e-4, atol=1e-5)
    assert result.probability is None and result.summary()["target_class"] is None
    with pytest.raises(UsageError, match="class vector"):
        model.invariance([x], transform="translate", amounts=[1], layers=["conv1"], target_class=0)


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_warps_move_down_turn_counter_clockwise_and_zoom_about_the_centre(layout) -> None:
    """A lone pixel right of the centre of a 5×5 image: where each transform takes it."""
    plane = np.zeros((5, 5), np.float32)
    plane[2, 4] = 1.0
    x = np.stack([plane, 2 * plane], axis=-1 if layout == "nhwc" else 0)[None]

    def moved(transform: str, amount: float) -> tuple[int, int]:
        out = warp(x, layout, warp_matrix(transform, amount, 5, 5))
        first = out[0, :, :, 0] if layout == "nhwc" else out[0, 0]
        second = out[0, :, :, 1] if layout == "nhwc" else out[0, 1]
        np.testing.assert_allclose(second, 2 * first)  # every channel warped alike
        row, col = np.unravel_index(first.argmax(), first.shape)
        return int(row), int(col)

    assert moved("translate", 2) == (4, 4) and moved("translate", -1) == (1, 4)
    assert moved("rotate", 90) == (0, 2)  # counter-clockwise: from the right of the centre to above it
    assert moved("scale", 0.5) == (2, 3)


def test_a_model_that_cannot_batch_runs_one_input_at_a_time_with_the_same_curves() -> None:
    """flatten → dense → a Reshape hard-coding batch 1: the code layer is the flattened input itself,
    so its distance is ‖T x − x‖ and the probability the softmax of (T x)·W, in numpy alone."""
    rng = np.random.default_rng(3)
    weights = rng.standard_normal((3 * 8 * 8, 5)).astype(np.float32)
    nodes = [
        helper.make_node("Reshape", ["x", "flat"], ["f"], name="flatten_all"),
        helper.make_node("MatMul", ["f", "w"], ["m"], name="dense"),
        helper.make_node("Reshape", ["m", "row"], ["y"], name="as_row"),
    ]
    inits = {"flat": np.array([-1], np.int64), "w": weights, "row": np.array([1, 5], np.int64)}
    proto = make_model(nodes, (1, 3, 8, 8), "y", inits)
    model = onnxviz.Model(ModelGraph.from_proto(proto), choose_device("cpu"), Preprocessing())
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    amounts = [-2, 0, 3]
    result = model.invariance([x], transform="translate", amounts=amounts)
    assert "batch 1" in result.note and result.layers == ["flatten_all"]
    moved = [_warped(x, "translate", a, channels_last=False).reshape(-1).astype(np.float64) for a in amounts]
    np.testing.assert_allclose(result.distance[0, 0], [np.linalg.norm(m - x.reshape(-1)) for m in moved], rtol=1e-5)
    z = np.stack(moved) @ weights.astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    target = int((x.reshape(-1).astype(np.float64) @ weights).argmax())
    assert result.target_class == [target]
    np.testing.assert_allclose(result.probability[0], p[:, target], rtol=1e-4)
