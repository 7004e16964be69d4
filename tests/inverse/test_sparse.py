"""The channel-sparse head gives the same projections as the dense inverse, with less work."""

from __future__ import annotations

import numpy as np
import pytest

from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import InverseSpec, build_inverse
from onnxviz.runtime.projector import make_seeds
from tests.helpers import FIXTURES, session


def _run(inverse, feeds: dict, values: dict) -> np.ndarray:
    feeds = feeds | {t: values[t] for t in inverse.forward_tensors}
    return session(inverse.model).run(None, feeds)[0]


@pytest.mark.parametrize(
    "fixture",
    ["vgg_like_torchscript.onnx", "resnet_like.onnx", "edge_cases.onnx", "tf2onnx_nhwc.onnx", "mobilenet_like.onnx"],
)
@pytest.mark.parametrize("mode", ["deconvnet", "guided", "saliency"])
@pytest.mark.parametrize("form", ["cpu", "portable"])
def test_sparse_head_equals_the_dense_inverse(fixture: str, mode: str, form: str) -> None:
    from tests.helpers import Linearisation

    graph = ModelGraph.load(FIXTURES / fixture)
    shape = graph.concrete_input_shape()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    checked = 0
    for layer in (la for la in graph.layers if la.alias.startswith("conv")):
        sparse = build_inverse(graph, InverseSpec(layer.tensor, shape, rule=mode, form=form, sparse=True))
        if not sparse.sparse:
            continue
        dense = Linearisation(graph.model, layer.tensor, x, mode, form)
        activation = dense.values[layer.tensor]
        channels = np.array([activation.shape[1] - 1, 0, 1], np.int64)
        expected = dense.vjp(make_seeds(activation, channels))
        values = dense.run_forward(x)
        got = _run(sparse, {"seed": activation[0, channels][:, None], "channels": channels}, values)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
        checked += 1
    assert checked, "no conv layer took the sparse head"


def test_sparse_head_applies_to_conv_layers_and_not_to_grouped_ones() -> None:
    graph = ModelGraph.load(FIXTURES / "mobilenet_like.onnx")
    shape = graph.concrete_input_shape()
    verdicts = {}
    for layer in (la for la in graph.layers if la.alias.startswith("conv")):
        group = next(a.i for a in graph.node_by_name(layer.node).attribute if a.name == "group")
        verdicts[layer.alias] = (group, build_inverse(graph, InverseSpec(layer.tensor, shape, sparse=True)).sparse)
    assert all(sparse == (group == 1) for group, sparse in verdicts.values()), verdicts
    assert any(sparse for _, sparse in verdicts.values())
