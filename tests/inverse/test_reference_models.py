"""deconvnet, guided and saliency projections equal an independent float64 numpy reference.

``tests/reference.py`` interprets the ONNX graph itself (no onnxruntime, no onnxviz code) and
backpropagates with the three ReLU rules. Every committed fixture, through the public API, in
both emitted forms, with K=2 channels projected in one batched run.
"""

from __future__ import annotations

import numpy as np
import pytest

import onnxviz
from onnxviz.runtime.projector import make_seeds
from tests import reference
from tests.helpers import FIXTURE_MODELS, FIXTURES, load_fixture


def _deepest(model: onnxviz.Model, prefix: str) -> str | None:
    names = [la.alias for la in model.graph.layers if la.alias.startswith(prefix)]
    return names[-1] if names else None


@pytest.mark.parametrize("fixture", FIXTURE_MODELS)
@pytest.mark.parametrize("rule", ["deconvnet", "guided", "saliency"])
def test_projection_matches_the_numpy_reference(fixture: str, rule: str, fixture_model, fixture_proto) -> None:
    model, proto = fixture_model(fixture), fixture_proto(fixture)
    x = np.random.default_rng(1).standard_normal(model.input_shape()).astype(np.float32)
    for node in filter(None, (_deepest(model, "conv"), _deepest(model, "fc"))):
        projection = model.project(x, node=node, top=2, rule=rule)
        forward = reference.forward(proto, x.astype(np.float64))
        activation = forward[projection.tensor]
        seeds = make_seeds(activation, projection.channels)
        expected = reference.backward(proto, x.astype(np.float64), projection.tensor, seeds, rule)
        scale = np.abs(expected).max()
        assert scale > 0, "the reference projection is all zero: the test would prove nothing"
        error = np.abs(projection.projections - expected).max() / scale
        assert error < 1e-4, f"{fixture} {node} {rule}: relative error {error:.2e}"


@pytest.mark.parametrize("rule", ["deconvnet", "guided"])
def test_portable_form_matches_the_reference_too(rule: str) -> None:
    """The CUDA-safe emission (ScatterElements unpooling, cropped ConvTranspose) on the CPU."""
    from tests.helpers import Linearisation

    proto = load_fixture("edge_cases.onnx")
    graph = onnxviz.load(FIXTURES / "edge_cases.onnx", device="cpu").graph
    x = np.random.default_rng(2).standard_normal(graph.concrete_input_shape()).astype(np.float32)
    target = [la for la in graph.layers if la.alias.startswith("conv")][-1].tensor
    lin = Linearisation(graph.model, target, x, rule, "portable")
    seeds = np.random.default_rng(3).standard_normal((3, *lin.values[target].shape[1:]))
    expected = reference.backward(proto, x.astype(np.float64), target, seeds, rule)
    got = lin.vjp(seeds)
    assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-4
