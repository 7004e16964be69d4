"""The dynamo exporter's ``as_strided`` (flatten everything, Gather every element in order) is read
as the Reshape it is, so the inverse can follow the batch through it."""

from __future__ import annotations

import numpy as np
from onnx import helper

from onnxviz.api import Model
from onnxviz.data.preprocess import Preprocessing
from onnxviz.graph.model import ModelGraph
from onnxviz.runtime.sessions import choose_device
from tests.helpers import make_model, session

CHANNELS = 4


def head(indices: np.ndarray, as_reshape: bool = False):
    """conv → global mean (keepdims) → flatten everything → Gather(indices) or Reshape → Gemm."""
    rng = np.random.default_rng(7)
    pick = (
        helper.make_node("Reshape", ["flat", "pooled_shape"], ["picked"])
        if as_reshape
        else helper.make_node("Gather", ["flat", "indices"], ["picked"], axis=0)
    )
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("ReduceMean", ["r", "axes"], ["mean"], keepdims=1),
        helper.make_node("Reshape", ["mean", "everything"], ["flat"]),
        pick,
        helper.make_node("Flatten", ["picked"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
    ]
    inits = {
        "w": rng.standard_normal((CHANNELS, 3, 3, 3)).astype(np.float32),
        "axes": np.array([2, 3], np.int64),
        "everything": np.array([-1], np.int64),
        "indices": indices,
        "pooled_shape": np.array([1, CHANNELS, 1, 1], np.int64),
        "fc": rng.standard_normal((5, CHANNELS)).astype(np.float32),
    }
    return make_model(nodes, (1, 3, 6, 6), "y", inits, opset=18)


def saliency(model, x: np.ndarray) -> np.ndarray:
    loaded = Model(ModelGraph.from_proto(model), choose_device("cpu"), Preprocessing())
    return loaded.project(x, node="y", channels=[2], rule="saliency").projections


def test_in_order_gather_of_the_whole_flat_tensor_projects_as_the_reshape_it_is() -> None:
    indices = np.arange(CHANNELS).reshape(1, CHANNELS, 1, 1)
    gathered, reshaped = head(indices), head(indices, as_reshape=True)
    x = np.random.default_rng(1).standard_normal((1, 3, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(session(gathered).run(None, {"x": x})[0], session(reshaped).run(None, {"x": x})[0])
    graph = ModelGraph.from_proto(gathered)
    assert not any(n.op_type == "Gather" for n in graph.nodes)
    expected = saliency(reshaped, x)
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(saliency(gathered, x), expected, rtol=1e-6, atol=1e-7)


def test_a_gather_that_reorders_elements_is_left_alone() -> None:
    for order in ([1, 0, 2, 3], [3, 2, 1, 0]):
        indices = np.array(order).reshape(1, CHANNELS, 1, 1)
        graph = ModelGraph.from_proto(head(indices))
        assert any(n.op_type == "Gather" for n in graph.nodes)
