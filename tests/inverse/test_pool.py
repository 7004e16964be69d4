"""Maxima without forward switches: GlobalMaxPool, ReduceMax/ReduceMin and MaxPool with
column-major switches route ȳ to the argmax computed inside the inverse graph.

Besides the adjoint test, the recomputed switches must send the signal exactly where
onnxruntime's own Indices output does, ties included (first maximum in row-major order)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from onnx import helper

from onnxviz.errors import UnsupportedOpError
from tests.helpers import Linearisation, make_model, separated_input
from tests.inverse.adjoint import SETTINGS, assert_adjoint, pool_cases, pool_fits

SHAPE = (1, 3, 4, 5)


def _max_pool(case: dict, storage_order: int):
    attrs = {
        "kernel_shape": list(case["kernel"]),
        "strides": list(case["strides"]),
        "pads": list(case["pads"]),
        "ceil_mode": case["ceil_mode"],
        "dilations": list(case["dilations"]),
        "storage_order": storage_order,
    }
    node = helper.make_node("MaxPool", ["x"], ["y"], name="pool", **attrs)
    return make_model([node], (1, 2, *case["size"]), "y")


@settings(SETTINGS, max_examples=8)
@given(pool_cases)
def test_recomputed_switches_are_the_adjoint_and_match_onnxruntimes(case: dict) -> None:
    assume(pool_fits(case))
    rng = np.random.default_rng(case["seed"])
    x = separated_input((1, 2, *case["size"]), rng)
    recomputed = _max_pool(case, storage_order=1)
    assert_adjoint(recomputed, "y", x, case["seed"])
    ours = Linearisation(recomputed, "y", x, form="cpu")
    theirs = Linearisation(_max_pool(case, storage_order=0), "y", x, form="portable")
    seeds = rng.standard_normal((2, *ours.values["y"].shape[1:]))
    np.testing.assert_array_equal(ours.vjp(seeds), theirs.vjp(seeds))


def test_ties_go_where_onnxruntimes_switches_send_them() -> None:
    """Integer-valued inputs tie in most windows; both routes must still agree exactly."""
    case = {"kernel": (3, 2), "strides": (1, 2), "pads": (1, 0, 1, 1), "ceil_mode": 1, "dilations": (1, 1)}
    case["size"] = (7, 8)
    x = np.random.default_rng(1).integers(0, 3, (1, 2, 7, 8)).astype(np.float32)
    ours = Linearisation(_max_pool(case, 1), "y", x)
    theirs = Linearisation(_max_pool(case, 0), "y", x)
    seeds = np.random.default_rng(2).standard_normal((3, *ours.values["y"].shape[1:])).astype(np.float32)
    np.testing.assert_array_equal(ours.vjp(seeds), theirs.vjp(seeds))


@pytest.mark.parametrize("dilations", [(1, 1), (2, 1)])
def test_the_standard_form_sends_ties_where_the_switches_do_with_no_scatter(dilations) -> None:
    """Overlapping windows, padding and ceil mode, with ties in most windows: the one-hot taps
    through a ConvTranspose give the scatter's signal, and no scatter is emitted."""
    case = {"kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 0), "ceil_mode": 1, "dilations": dilations}
    case["size"] = (9, 8)
    x = np.random.default_rng(5).integers(0, 3, (1, 2, 9, 8)).astype(np.float32)
    standard = Linearisation(_max_pool(case, 0), "y", x, form="standard")
    portable = Linearisation(_max_pool(case, 0), "y", x, form="portable")
    seeds = np.random.default_rng(6).standard_normal((3, *standard.values["y"].shape[1:])).astype(np.float32)
    # Where two windows pick one input the two forms add in another order: equal to float rounding.
    np.testing.assert_allclose(standard.vjp(seeds), portable.vjp(seeds), rtol=1e-6, atol=1e-6)
    emitted = {node.op_type for node in standard.inverse.model.graph.node}
    assert "ConvTranspose" in emitted and not emitted & {"ScatterElements", "ScatterND", "MaxUnpool"}


@pytest.mark.parametrize(
    ("op", "attrs", "axes_input", "opset"),
    [
        ("GlobalMaxPool", {}, None, 17),
        ("ReduceMax", {"axes": [2, 3], "keepdims": 1}, None, 17),
        ("ReduceMax", {"axes": [1, -1], "keepdims": 0}, None, 13),
        ("ReduceMin", {"keepdims": 0}, [3], 18),
        ("ReduceMax", {"keepdims": 1}, [1, 2], 18),
    ],
)
def test_reduced_maxima_route_the_signal_to_the_argmax(op: str, attrs: dict, axes_input, opset: int) -> None:
    inputs, inits = ["x"], {}
    if axes_input is not None:
        inputs.append("axes")
        inits["axes"] = np.array(axes_input, np.int64)
    model = make_model([helper.make_node(op, inputs, ["y"], name="reduce", **attrs)], SHAPE, "y", inits, opset=opset)
    x = separated_input(SHAPE, np.random.default_rng(3))
    assert_adjoint(model, "y", x, 4)


def test_reduce_max_ties_go_to_the_first_maximum_in_row_major_order() -> None:
    model = make_model([helper.make_node("ReduceMax", ["x"], ["y"], axes=[2, 3], name="max")], (1, 1, 2, 3), "y")
    x = np.array([[[[0, 5, 1], [5, 2, 5]]]], np.float32)
    lin = Linearisation(model, "y", x)
    routed = lin.vjp(np.array([[[[2.0]]]], np.float32))
    np.testing.assert_array_equal(routed, [[[[0, 2, 0], [0, 0, 0]]]])


def test_reducing_the_batch_axis_is_refused() -> None:
    model = make_model([helper.make_node("ReduceMax", ["x"], ["y"], axes=[0], name="max")], SHAPE, "y")
    with pytest.raises(UnsupportedOpError, match="batch axis"):
        Linearisation(model, "y", separated_input(SHAPE, np.random.default_rng(5)))


@SETTINGS
@given(pool_cases)
def test_maxpool_saliency_is_the_adjoint(case: dict) -> None:
    assume(pool_fits(case))
    rng = np.random.default_rng(case["seed"])
    model = _max_pool(case, storage_order=0)
    x = separated_input((1, 2, *case["size"]), rng)
    assert_adjoint(model, "y", x, case["seed"], eps=1e-3)


@SETTINGS
@given(pool_cases, st.sampled_from([0, 1]))
def test_average_pool_saliency_is_the_adjoint(case: dict, count_include_pad: int) -> None:
    assume(pool_fits(case) and case["dilations"] == (1, 1))
    rng = np.random.default_rng(case["seed"])
    attrs = {
        "kernel_shape": list(case["kernel"]),
        "strides": list(case["strides"]),
        "pads": list(case["pads"]),
        "ceil_mode": case["ceil_mode"],
        "count_include_pad": count_include_pad,
    }
    model = make_model([helper.make_node("AveragePool", ["x"], ["y"], name="avg", **attrs)], (1, 2, *case["size"]), "y")
    assert_adjoint(model, "y", rng.standard_normal((1, 2, *case["size"])).astype(np.float32), case["seed"])
