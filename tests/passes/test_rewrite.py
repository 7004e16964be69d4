"""Forward surgery: switches, outputs, pruning, dynamic batch — and switches that are right."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import helper

from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import InverseSpec, build_inverse
from onnxviz.passes.dynamic_batch import dynamic_batch
from onnxviz.passes.rewrite import forward_model
from tests import reference
from tests.helpers import FIXTURES, fixed_batch_classifier, make_model, session


def _forward_for(graph: ModelGraph, alias: str) -> tuple[onnx.ModelProto, list[str]]:
    tensor = graph.resolve(alias).tensor
    shape = graph.concrete_input_shape()
    inverse = build_inverse(graph, InverseSpec(tensor, shape))
    outputs = [tensor, *(t for t in inverse.forward_tensors if t != tensor)]
    return forward_model(graph, outputs, inverse.switches, graph.shapes(shape), inverse.masks), outputs


def test_forward_stops_at_the_chosen_layer_and_emits_switches() -> None:
    graph = ModelGraph.load(FIXTURES / "vgg_like_torchscript.onnx")
    forward, outputs = _forward_for(graph, "conv3")
    ops = [n.op_type for n in forward.graph.node]
    assert "Gemm" not in ops and ops.count("Conv") == 3
    pools = [n for n in forward.graph.node if n.op_type == "MaxPool"]
    assert len(pools) == 1 and len(pools[0].output) == 2
    assert [o.name for o in forward.graph.output] == outputs
    onnx.checker.check_model(forward)


def test_forward_batch_is_dynamic_even_with_a_hard_coded_reshape() -> None:
    rng = np.random.default_rng(0)
    model = fixed_batch_classifier(5, [1, -1])
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    assert dynamic_batch(rewritten, "x").modified
    x = rng.standard_normal((3, 3, 5, 5)).astype(np.float32)
    batched = session(rewritten).run(None, {"x": x})[0]
    singles = np.concatenate([session(model).run(None, {"x": x[i : i + 1]})[0] for i in range(3)])
    np.testing.assert_allclose(batched, singles, rtol=1e-5, atol=1e-5)


pool_cases = st.fixed_dictionaries(
    {
        "kernel": st.integers(2, 3),
        "stride": st.integers(1, 3),
        "pad": st.integers(0, 1),
        "ceil_mode": st.sampled_from([0, 1]),
        "dilation": st.sampled_from([1, 2]),
        "size": st.integers(5, 10),
        "seed": st.integers(0, 1000),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pool_cases)
def test_onnxruntime_switches_are_the_first_maximum_of_each_window(case: dict) -> None:
    """Catches onnxruntime pooling bugs (ceil_mode with pads, dilation with pads) if they bite."""
    k, s, p, d, n = case["kernel"], case["stride"], case["pad"], case["dilation"], case["size"]
    assume(p < k and n + 2 * p >= (k - 1) * d + 1)
    span = n + 2 * p - ((k - 1) * d + 1)
    out = (-(-span // s) if case["ceil_mode"] else span // s) + 1
    assume((out - 1) * s < n + p)
    attrs = {
        "kernel_shape": [k, k],
        "strides": [s, s],
        "pads": [p] * 4,
        "ceil_mode": case["ceil_mode"],
        "dilations": [d, d],
    }
    pool = helper.make_node("MaxPool", ["x"], ["y", "idx"], name="pool", **attrs)
    model = make_model([pool], (1, 2, n, n), "y")
    model.graph.output.append(helper.make_tensor_value_info("idx", onnx.TensorProto.INT64, None))
    rng = np.random.default_rng(case["seed"])
    x = rng.integers(0, 4, (1, 2, n, n)).astype(np.float32)  # small integers: many ties
    values, indices = session(model).run(None, {"x": x})
    expected = reference.forward(model, x.astype(np.float64))
    np.testing.assert_array_equal(values, expected["y"])
    np.testing.assert_array_equal(indices, expected["idx"])


def test_dynamic_batch_leaves_models_with_symbolic_batch_alone() -> None:
    model = onnx.load(str(FIXTURES / "vgg_like_torchscript.onnx"))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param, "the fixture has a symbolic batch"
    before = model.SerializeToString(deterministic=True)
    assert not dynamic_batch(model, "input").modified
    assert model.SerializeToString(deterministic=True) == before


@pytest.mark.parametrize("fixture", ["tf2onnx_nhwc.onnx", "opset9_zoo.onnx", "squeezenet_like.onnx"])
def test_rewritten_forward_runs_a_batch_and_matches_the_original(fixture: str) -> None:
    graph = ModelGraph.load(FIXTURES / fixture)
    forward, outputs = _forward_for(graph, [la.alias for la in graph.layers if la.alias.startswith("conv")][-1])
    shape = graph.concrete_input_shape()
    x = np.random.default_rng(0).standard_normal((2, *shape[1:])).astype(np.float32)
    original = graph.model
    probe = onnx.ModelProto()
    probe.CopyFrom(original)
    del probe.graph.output[:]
    probe.graph.output.append(helper.make_tensor_value_info(outputs[0], onnx.TensorProto.FLOAT, None))
    dynamic_batch(probe, graph.input_name)
    got = session(forward).run([outputs[0]], {graph.input_name: x})[0]
    for i in range(2):
        single = session(probe).run(None, {graph.input_name: x[i : i + 1]})[0]
        np.testing.assert_allclose(got[i : i + 1], single, rtol=1e-4, atol=1e-5)
