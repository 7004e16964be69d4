"""Element-wise maths: exact vector-Jacobian products, the same in every mode."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from onnxviz.errors import UnsupportedOpError
from tests.helpers import Linearisation, make_model
from tests.inverse.adjoint import assert_adjoint

SHAPE = (1, 2, 3, 4)


def _positive(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.5, 2.0, SHAPE).astype(np.float32)


def _spread(seed: int) -> np.ndarray:
    """Magnitudes in [0.5, 2] with random signs: away from the kinks and poles at 0."""
    rng = np.random.default_rng(seed)
    return (_positive(seed) * rng.choice([-1.0, 1.0], SHAPE)).astype(np.float32)


@pytest.mark.parametrize(
    ("op", "x"),
    [
        ("Exp", _spread(1)),
        ("Log", _positive(2)),
        ("Sqrt", _positive(3)),
        ("Reciprocal", _spread(4)),
        ("Neg", _spread(5)),
        ("Abs", _spread(6)),
        ("Erf", _spread(7)),
    ],
)
def test_unary_maths_saliency_is_the_adjoint(op: str, x: np.ndarray) -> None:
    assert_adjoint(make_model([helper.make_node(op, ["x"], ["y"], name="op")], SHAPE, "y"), "y", x, 8, eps=1e-3)


@pytest.mark.parametrize("mode", ["deconvnet", "guided"])
def test_maths_ops_are_not_rectified_outside_saliency(mode: str) -> None:
    """Neg is no activation: deconvnet and guided hand back −ȳ, negative values included."""
    model = make_model([helper.make_node("Neg", ["x"], ["y"], name="neg")], SHAPE, "y")
    seeds = np.random.default_rng(9).standard_normal((2, *SHAPE[1:])).astype(np.float32)
    np.testing.assert_array_equal(Linearisation(model, "y", _spread(9), mode).vjp(seeds), -seeds)


@pytest.mark.parametrize("exponent", [np.float32(2.0), np.float32(3.0), np.float32(0.5), np.int64(2), np.float32(-1.5)])
def test_pow_with_a_constant_exponent_is_the_adjoint(exponent) -> None:
    model = make_model(
        [helper.make_node("Pow", ["x", "p"], ["y"], name="pow")], SHAPE, "y", {"p": np.asarray(exponent)}
    )
    assert_adjoint(model, "y", _positive(10), 11, eps=1e-3)


def test_pow_with_the_exponent_on_the_image_path_is_the_adjoint() -> None:
    """2ˣ and x^(x/2): the exponent's derivative y·ln(a) joins the base's."""
    nodes = [
        helper.make_node("Pow", ["two", "x"], ["e"], name="exp2"),
        helper.make_node("Mul", ["x", "half"], ["h"], name="half"),
        helper.make_node("Pow", ["x", "h"], ["p"], name="self_pow"),
        helper.make_node("Add", ["e", "p"], ["y"], name="sum"),
    ]
    inits = {"two": np.array(2.0, np.float32), "half": np.array(0.5, np.float32)}
    assert_adjoint(make_model(nodes, SHAPE, "y", inits), "y", _positive(12), 13, eps=1e-3)


@pytest.mark.parametrize("op", ["Max", "Min"])
def test_max_min_of_two_signals_routes_to_the_chosen_operand(op: str) -> None:
    rng = np.random.default_rng(14)
    w = rng.standard_normal((2, 2, 1, 1)).astype(np.float32)
    bias = rng.standard_normal((1, 2, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], name="conv"),
        helper.make_node(op, ["x", "a", "bias"], ["y"], name="extremum"),
    ]
    x = _spread(15)
    operands = np.stack([x, np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x), np.broadcast_to(bias, x.shape)])
    assert np.min(np.diff(np.sort(operands, axis=0), axis=0)) > 1e-3  # no tie switches within ±eps
    assert_adjoint(make_model(nodes, SHAPE, "y", {"w": w, "bias": bias}), "y", x, 16, eps=1e-4)


@pytest.mark.parametrize("op", ["Max", "Min"])
def test_max_min_ties_split_the_signal_evenly(op: str) -> None:
    """Max(x, x): each copy gets ȳ/2 (torch's maximum backward), so x gets ȳ exactly."""
    nodes = [
        helper.make_node("Identity", ["x"], ["x2"], name="copy"),
        helper.make_node(op, ["x", "x2"], ["y"], name="ext"),
    ]
    seeds = np.random.default_rng(17).standard_normal((2, *SHAPE[1:])).astype(np.float32)
    got = Linearisation(make_model(nodes, SHAPE, "y"), "y", _spread(17), "saliency").vjp(seeds)
    np.testing.assert_allclose(got, seeds, rtol=1e-6)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("deconvnet", lambda s, x: np.maximum(s, 0)),
        ("guided", lambda s, x: np.maximum(s, 0) * (x > 0)),
        ("saliency", lambda s, x: s * (x > 0)),
    ],
)
def test_max_with_zero_is_a_relu(mode: str, expected) -> None:
    nodes = [helper.make_node("Max", ["x", "zero"], ["y"], name="relu_as_max")]
    model = make_model(nodes, SHAPE, "y", {"zero": np.array(0.0, np.float32)})
    x = _spread(18)
    seeds = np.random.default_rng(19).standard_normal((2, *SHAPE[1:])).astype(np.float32)
    np.testing.assert_allclose(Linearisation(model, "y", x, mode).vjp(seeds), expected(seeds, x[0]), atol=1e-7)


def test_relu6_as_min_of_max_is_the_adjoint() -> None:
    nodes = [
        helper.make_node("Max", ["x", "zero"], ["r"], name="max"),
        helper.make_node("Min", ["r", "six"], ["y"], name="min"),
    ]
    inits = {"zero": np.array(0.0, np.float32), "six": np.array(1.0, np.float32)}
    assert_adjoint(make_model(nodes, SHAPE, "y", inits), "y", _spread(20), 21, eps=1e-3)


def test_where_with_a_constant_condition_is_the_adjoint() -> None:
    rng = np.random.default_rng(22)
    nodes = [
        helper.make_node("Exp", ["x"], ["e"], name="exp"),
        helper.make_node("Where", ["mask", "x", "e"], ["y"], name="where"),
        helper.make_node("Where", ["row", "y", "fill"], ["z"], name="broadcast_where"),
    ]
    inits = {
        "mask": rng.random(SHAPE) > 0.5,
        "row": rng.random((1, 1, 1, 4)) > 0.5,
        "fill": np.array(0.25, np.float32),
    }
    assert_adjoint(make_model(nodes, SHAPE, "z", inits), "z", _spread(23), 24, eps=1e-3)


def test_where_with_a_condition_compared_from_the_image_routes_by_the_forward_choice() -> None:
    """Where(x > 0, x, 0) is a ReLU written with a comparison: the inverse recomputes x > 0."""
    nodes = [
        helper.make_node("Greater", ["x", "zero"], ["c"], name="positive"),
        helper.make_node("Where", ["c", "x", "zero"], ["y"], name="where"),
    ]
    model = make_model(nodes, SHAPE, "y", {"zero": np.array(0.0, np.float32)})
    x = _spread(25)
    lin = Linearisation(model, "y", x, "saliency")
    seeds = np.random.default_rng(3).standard_normal((2, *SHAPE[1:]))
    np.testing.assert_allclose(lin.vjp(seeds), seeds * (x > 0), rtol=1e-6)


def test_where_with_a_condition_cast_from_the_image_is_refused_with_a_reason() -> None:
    nodes = [
        helper.make_node("Cast", ["x"], ["c"], to=onnx.TensorProto.BOOL, name="nonzero"),
        helper.make_node("Where", ["c", "x", "zero"], ["y"], name="where"),
    ]
    model = make_model(nodes, SHAPE, "y", {"zero": np.array(0.0, np.float32)})
    with pytest.raises(UnsupportedOpError, match="condition 'c' is computed from the image by Cast"):
        Linearisation(model, "y", _spread(25), "saliency")
