"""Conv's inverse (a transposed convolution, or a convolution with the flipped kernel where the
geometry allows) is the exact adjoint for every attribute combination hypothesis draws; pads given
by ``auto_pad`` follow the spec where onnxruntime itself gets them wrong."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from onnx import helper

from tests.helpers import Linearisation, adjoint_gaps, make_model, separated_input
from tests.inverse.adjoint import SETTINGS, TOLERANCE, assert_adjoint

conv_cases = st.fixed_dictionaries(
    {
        "kernel": st.tuples(st.integers(1, 3), st.integers(1, 3)),
        "strides": st.tuples(st.integers(1, 3), st.integers(1, 3)),
        "dilations": st.tuples(st.integers(1, 2), st.integers(1, 2)),
        "pads": st.tuples(*[st.integers(0, 2)] * 4),
        "group": st.sampled_from([1, 2]),
        "auto_pad": st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]),
        "size": st.tuples(st.integers(7, 12), st.integers(7, 12)),
        "seed": st.integers(0, 10_000),
    }
)


@SETTINGS
@given(conv_cases)
def test_conv_saliency_is_the_adjoint(case: dict) -> None:
    rng = np.random.default_rng(case["seed"])
    group = case["group"]
    cin, cout = 2 * group, 3 * group
    kernel, dilations = case["kernel"], case["dilations"]
    attrs = {
        "kernel_shape": list(kernel),
        "strides": list(case["strides"]),
        "dilations": list(dilations),
        "group": group,
    }
    if case["auto_pad"] == "NOTSET":
        attrs["pads"] = list(case["pads"])
        pads = case["pads"]
    else:
        attrs["auto_pad"] = case["auto_pad"]
        pads = (0, 0, 0, 0)
    for axis in range(2):
        effective = (kernel[axis] - 1) * dilations[axis] + 1
        assume(case["size"][axis] + pads[axis] + pads[axis + 2] >= effective)
    weights = rng.standard_normal((cout, cin // group, *kernel)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    model = make_model(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", **attrs)],
        (1, cin, *case["size"]),
        "y",
        {"w": weights, "b": bias},
    )
    assert_adjoint(model, "y", rng.standard_normal((1, cin, *case["size"])).astype(np.float32), case["seed"])


@pytest.mark.parametrize(
    ("op", "attrs"),
    [
        ("Conv", {"auto_pad": "SAME_UPPER", "dilations": [2, 2], "kernel_shape": [3, 3]}),
        ("Conv", {"auto_pad": "SAME_LOWER", "dilations": [2, 1], "strides": [2, 1], "kernel_shape": [3, 3]}),
        ("MaxPool", {"auto_pad": "SAME_UPPER", "dilations": [2, 2], "kernel_shape": [3, 3]}),
        ("MaxPool", {"auto_pad": "VALID", "ceil_mode": 1, "kernel_shape": [3, 3], "strides": [2, 2]}),
        ("AveragePool", {"auto_pad": "VALID", "ceil_mode": 1, "kernel_shape": [3, 3], "strides": [2, 2]}),
    ],
)
def test_auto_pad_combinations_onnxruntime_gets_wrong_follow_the_spec(op: str, attrs: dict) -> None:
    """onnxruntime refuses or mis-sizes these; onnxviz makes the pads explicit, exactly."""
    from onnxviz.graph.model import ModelGraph
    from tests import reference

    rng = np.random.default_rng(15)
    inputs, inits = ["x"], {}
    if op == "Conv":
        inputs.append("w")
        inits["w"] = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    model = make_model([helper.make_node(op, inputs, ["y"], name="node", **attrs)], (1, 2, 7, 8), "y", inits)
    x = separated_input((1, 2, 7, 8), rng)
    expected = reference.forward(model, x.astype(np.float64))["y"]
    graph_model = ModelGraph.from_proto(model).model
    assert not [a for n in graph_model.graph.node for a in n.attribute if a.name == "auto_pad"]
    lin = Linearisation(model, "y", x, "saliency")
    np.testing.assert_allclose(lin.values["y"], expected, rtol=1e-5, atol=1e-5)
    assert max(adjoint_gaps(lin, rng)) < TOLERANCE
