"""Activations: the exact derivative in saliency, relu(ȳ) in deconvnet, relu(ȳ)·[f'(x) > 0] in
guided; the same for activations written as several nodes, which must project exactly like the
single op they spell."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

from onnxviz.graph.composite import KINDS, find_composites
from onnxviz.graph.model import ModelGraph
from onnxviz.graph.ops import ACTIVATION_OPS
from onnxviz.inverse.rules import RULES
from onnxviz.inverse.rules.activation import COMPOSITE_DERIVATIVES
from tests.helpers import Linearisation, make_model
from tests.inverse.adjoint import SETTINGS, assert_adjoint

SHAPE = (1, 3, 4, 5)
_erf = np.vectorize(math.erf)

# op -> (opset, attributes, numpy derivative of the op at x)
SINGLE_OPS = {
    "Gelu": (20, {}, lambda x: 0.5 * (1 + _erf(x / math.sqrt(2))) + x * np.exp(-(x**2) / 2) / math.sqrt(2 * math.pi)),
    "Mish": (18, {}, None),
    "Selu": (17, {"alpha": 1.5, "gamma": 1.2}, lambda x: np.where(x > 0, 1.2, 1.2 * 1.5 * np.exp(x))),
    "Celu": (17, {"alpha": 0.7}, lambda x: np.where(x > 0, 1.0, np.exp(x / 0.7))),
    "ThresholdedRelu": (17, {"alpha": 0.4}, lambda x: (x > 0.4).astype(float)),
    "Softsign": (17, {}, lambda x: 1 / (1 + np.abs(x)) ** 2),
    "HardSigmoid": (17, {"alpha": 0.3, "beta": 0.4}, lambda x: 0.3 * ((0.3 * x + 0.4 > 0) & (0.3 * x + 0.4 < 1))),
    "HardSwish": (17, {}, lambda x: np.where(x < -3, 0.0, np.where(x > 3, 1.0, x / 3 + 0.5))),
    "Softplus": (17, {}, lambda x: 1 / (1 + np.exp(-x))),
    "Elu": (17, {"alpha": 0.5}, lambda x: np.where(x > 0, 1.0, 0.5 * np.exp(x))),
}


def _input(seed: int, scale: float = 2.5) -> np.ndarray:
    """Values spread over the activations' interesting range, kept away from their kinks."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-scale, scale, SHAPE)
    for kink in (0.0, 0.4, -3.0, 3.0, -0.4 / 0.3, 0.6 / 0.3):
        x = np.where(np.abs(x - kink) < 0.05, x + 0.1, x)
    return x.astype(np.float32)


def _single(op: str, opset: int, attrs: dict):
    return make_model([helper.make_node(op, ["x"], ["y"], name="act", **attrs)], SHAPE, "y", opset=opset)


def test_every_activation_the_aliases_follow_has_an_inverse_rule() -> None:
    """`layers` offers convN as the activated output only where that activation can project."""
    assert not ACTIVATION_OPS - set(RULES), sorted(ACTIVATION_OPS - set(RULES))


def test_every_recognised_composite_kind_has_a_derivative() -> None:
    assert set(COMPOSITE_DERIVATIVES) == set(KINDS)


@pytest.mark.parametrize("op", sorted(SINGLE_OPS))
def test_single_activation_saliency_is_the_adjoint(op: str) -> None:
    opset, attrs, _ = SINGLE_OPS[op]
    assert_adjoint(_single(op, opset, attrs), "y", _input(1), 2, eps=1e-3)


def test_tanh_gelu_saliency_is_the_adjoint() -> None:
    assert_adjoint(_single("Gelu", 20, {"approximate": "tanh"}), "y", _input(3), 4, eps=1e-3)


@pytest.mark.parametrize("op", sorted(op for op, (_, _, d) in SINGLE_OPS.items() if d is not None))
def test_single_activation_modes_follow_the_design_table(op: str) -> None:
    opset, attrs, derivative = SINGLE_OPS[op]
    x = _input(5)
    seeds = np.random.default_rng(6).standard_normal((2, *SHAPE[1:])).astype(np.float32)
    slope = derivative(x.astype(np.float64))[0]
    expected = {
        "deconvnet": np.maximum(seeds, 0),
        "guided": np.maximum(seeds, 0) * (slope > 0),
        "saliency": seeds * slope,
    }
    for mode, want in expected.items():
        got = Linearisation(_single(op, opset, attrs), "y", x, mode).vjp(seeds)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=mode)


@settings(SETTINGS, max_examples=10)
@given(
    st.sampled_from(["Selu", "Celu", "ThresholdedRelu", "HardSigmoid", "Elu"]),
    st.floats(0.1, 3.0),
    st.floats(0.1, 2.0),
    st.integers(0, 1000),
)
def test_activation_attributes_saliency_is_the_adjoint(op: str, alpha: float, second: float, seed: int) -> None:
    attrs: dict = {"alpha": alpha}
    if op == "Selu":
        attrs["gamma"] = second
    if op == "HardSigmoid":
        attrs["alpha"], attrs["beta"] = alpha / 3, second / 4
    x = _input(seed)
    kinks = [attrs["alpha"]] if op == "ThresholdedRelu" else []
    if op == "HardSigmoid":
        kinks = [-attrs["beta"] / attrs["alpha"], (1 - attrs["beta"]) / attrs["alpha"]]
    for kink in kinks:
        x = np.where(np.abs(x - kink) < 0.02, x + 0.05, x).astype(np.float32)
    assert_adjoint(_single(op, 17, attrs), "y", x, seed, eps=1e-3)


def test_unknown_gelu_approximation_is_refused_with_a_reason() -> None:
    from onnxviz.errors import UnsupportedOpError

    model = _single("Gelu", 20, {"approximate": "none"})
    model.graph.node[0].attribute[0].s = b"sigmoid"
    with pytest.raises(UnsupportedOpError, match="approximate='sigmoid'"):
        Linearisation(model, "y", _input(7), "guided")


# -- composite activations --------------------------------------------------------------------

SCALARS = {
    "half": 0.5,
    "one": 1.0,
    "three": 3.0,
    "six": 6.0,
    "zero": 0.0,
    "sqrt2": math.sqrt(2.0),
    "inv_sqrt2": 1 / math.sqrt(2.0),
    "cubic": 0.044715,
    "k": math.sqrt(2 / math.pi),
    "sixth": 1 / 6,
}


def _n(op: str, inputs: list[str], output: str, **attrs):
    return helper.make_node(op, inputs, [output], name=output, **attrs)


# name -> (kind, nodes from x to y, the single op that computes the same function)
COMPOSITES = {
    "silu": ("silu", [_n("Sigmoid", ["x"], "s"), _n("Mul", ["x", "s"], "y")], None),
    "gelu_torchscript": (
        "gelu",
        [
            _n("Div", ["x", "sqrt2"], "d"),
            _n("Erf", ["d"], "e"),
            _n("Add", ["e", "one"], "a"),
            _n("Mul", ["x", "a"], "m"),
            _n("Mul", ["m", "half"], "y"),
        ],
        ("Gelu", 20, {}),
    ),
    "gelu_dynamo": (
        "gelu",
        [
            _n("Div", ["x", "sqrt2"], "d"),
            _n("Erf", ["d"], "e"),
            _n("Add", ["e", "one"], "a"),
            _n("Mul", ["half", "a"], "h"),
            _n("Mul", ["x", "h"], "y"),
        ],
        ("Gelu", 20, {}),
    ),
    "gelu_tanh_torchscript": (
        "gelu_tanh",
        [
            _n("Mul", ["x", "x"], "sq"),
            _n("Mul", ["x", "sq"], "cube"),
            _n("Mul", ["cubic", "cube"], "c"),
            _n("Add", ["x", "c"], "inner"),
            _n("Mul", ["k", "inner"], "u"),
            _n("Tanh", ["u"], "t"),
            _n("Add", ["one", "t"], "a"),
            _n("Mul", ["x", "a"], "m"),
            _n("Mul", ["half", "m"], "y"),
        ],
        ("Gelu", 20, {"approximate": "tanh"}),
    ),
    "gelu_tanh_dynamo": (
        "gelu_tanh",
        [
            _n("Pow", ["x", "three"], "cube"),
            _n("Mul", ["cubic", "cube"], "c"),
            _n("Add", ["x", "c"], "inner"),
            _n("Mul", ["k", "inner"], "u"),
            _n("Tanh", ["u"], "t"),
            _n("Add", ["t", "one"], "a"),
            _n("Mul", ["half", "a"], "h"),
            _n("Mul", ["x", "h"], "y"),
        ],
        ("Gelu", 20, {"approximate": "tanh"}),
    ),
    "mish": (
        "mish",
        [_n("Softplus", ["x"], "sp"), _n("Tanh", ["sp"], "t"), _n("Mul", ["x", "t"], "y")],
        ("Mish", 18, {}),
    ),
    "hardswish_hardsigmoid": (
        "hardswish",
        [_n("HardSigmoid", ["x"], "hs", alpha=1 / 6), _n("Mul", ["x", "hs"], "y")],
        ("HardSwish", 17, {}),
    ),
    "hardswish_relu6": (
        "hardswish",
        [
            _n("Add", ["x", "three"], "a"),
            _n("Clip", ["a", "zero", "six"], "r6"),
            _n("Mul", ["x", "r6"], "m"),
            _n("Div", ["m", "six"], "y"),
        ],
        ("HardSwish", 17, {}),
    ),
    "hardswish_keras": (
        "hardswish",
        [
            _n("Add", ["x", "three"], "a"),
            _n("Relu", ["a"], "r"),
            _n("Min", ["r", "six"], "r6"),
            _n("Mul", ["r6", "sixth"], "hs"),
            _n("Mul", ["x", "hs"], "y"),
        ],
        ("HardSwish", 17, {}),
    ),
    "hardsigmoid_relu6": (
        "hardsigmoid",
        [_n("Add", ["x", "three"], "a"), _n("Clip", ["a", "zero", "six"], "r6"), _n("Mul", ["r6", "sixth"], "y")],
        ("HardSigmoid", 17, {"alpha": 1 / 6, "beta": 0.5}),
    ),
}


def _composite_model(name: str, before: str = "x"):
    """The composite applied after a conv, so its input is an inner tensor as in a real network."""
    _, nodes, _ = COMPOSITES[name]
    weight = np.random.default_rng(20).standard_normal((3, 3, 1, 1)).astype(np.float32)
    renamed = [
        helper.make_node(n.op_type, [("h0" if t == "x" else t) for t in n.input], n.output, name=n.name) for n in nodes
    ]
    for n, original in zip(renamed, nodes, strict=True):
        n.attribute.extend(original.attribute)
    conv = helper.make_node("Conv", [before, "w"], ["h0"], name="conv")
    inits = {k: np.array(v, np.float32) for k, v in SCALARS.items()} | {"w": weight}
    return make_model([conv, *renamed], SHAPE, "y", inits, opset=20)


def _single_after_conv(op: str, opset: int, attrs: dict):
    weight = np.random.default_rng(20).standard_normal((3, 3, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["h0"], name="conv"),
        helper.make_node(op, ["h0"], ["y"], name="act", **attrs),
    ]
    return make_model(nodes, SHAPE, "y", {"w": weight}, opset=max(opset, 17))


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_composite_activation_is_recognised_as_one_group(name: str) -> None:
    kind, nodes, _ = COMPOSITES[name]
    graph = ModelGraph.from_proto(_composite_model(name))
    (group,) = find_composites(graph)
    assert (group.kind, group.input, group.output) == (kind, "h0", "y")
    assert set(group.nodes) == {n.name for n in nodes}


@pytest.mark.parametrize("name", sorted(n for n, (_, _, single) in COMPOSITES.items() if single is not None))
@pytest.mark.parametrize("mode", ["deconvnet", "guided", "saliency"])
def test_composite_projects_like_the_single_op_it_spells(name: str, mode: str) -> None:
    _, _, (op, opset, attrs) = COMPOSITES[name]
    x = _input(21, scale=1.5)
    seeds = np.random.default_rng(22).standard_normal((3, *SHAPE[1:])).astype(np.float32)
    composite = Linearisation(_composite_model(name), "y", x, mode).vjp(seeds)
    single = Linearisation(_single_after_conv(op, opset, attrs), "y", x, mode).vjp(seeds)
    np.testing.assert_allclose(composite, single, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("mode", ["deconvnet", "guided"])
def test_composite_silu_is_rectified_once_from_its_input(mode: str) -> None:
    """x·σ(x): deconvnet hands relu(ȳ) to x (the product rule would not), guided masks by silu' > 0."""
    model = make_model([_n("Sigmoid", ["x"], "s"), _n("Mul", ["x", "s"], "y")], SHAPE, "y")
    x = _input(23)
    seeds = np.random.default_rng(24).standard_normal((2, *SHAPE[1:])).astype(np.float32)
    sig = 1 / (1 + np.exp(-x.astype(np.float64)))
    slope = (sig * (1 + x * (1 - sig)))[0]
    expected = np.maximum(seeds, 0) * (slope > 0 if mode == "guided" else 1)
    np.testing.assert_allclose(Linearisation(model, "y", x, mode).vjp(seeds), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_composite_saliency_stays_the_adjoint(name: str) -> None:
    assert_adjoint(_composite_model(name), "y", _input(25, scale=1.5), 26, eps=1e-3)


def test_affine_chains_are_not_taken_for_activations() -> None:
    """A decomposed normalisation with scalar constants is element-wise but not an activation."""
    nodes = [
        _n("Sub", ["x", "half"], "d"),
        _n("Div", ["d", "three"], "q"),
        _n("Mul", ["q", "six"], "m"),
        _n("Add", ["m", "one"], "y"),
    ]
    inits = {k: np.array(SCALARS[k], np.float32) for k in ("half", "three", "six", "one")}
    assert find_composites(ModelGraph.from_proto(make_model(nodes, SHAPE, "y", inits))) == []


def test_group_whose_inner_tensor_is_used_elsewhere_is_not_one_activation() -> None:
    nodes = [_n("Sigmoid", ["x"], "s"), _n("Mul", ["x", "s"], "m"), _n("Add", ["m", "s"], "y")]
    graph = ModelGraph.from_proto(make_model(nodes, SHAPE, "y"))
    assert [g.nodes for g in find_composites(graph)] == []


def test_projecting_from_inside_a_composite_walks_its_nodes() -> None:
    """The target is the sigmoid inside a SiLU: no group is formed, the sigmoid rule applies."""
    nodes = [_n("Sigmoid", ["x"], "s"), _n("Mul", ["x", "s"], "y")]
    model = make_model(nodes, SHAPE, "y")
    x = _input(27)
    seeds = np.random.default_rng(28).standard_normal((2, *SHAPE[1:])).astype(np.float32)
    np.testing.assert_allclose(Linearisation(model, "s", x, "deconvnet").vjp(seeds), np.maximum(seeds, 0), atol=1e-6)


def test_conv_alias_names_the_output_of_a_composite_activation() -> None:
    """EfficientNet's conv → BN → SiLU(x·σ(x)): conv1 is the activated output, and its deconvnet
    projection is the one a ReLU there would give (both hand relu(ȳ) back)."""
    rng = np.random.default_rng(29)
    c = 3
    inits = {
        "w": rng.standard_normal((c, 3, 3, 3)).astype(np.float32),
        "s": np.ones(c, np.float32),
        "b": np.zeros(c, np.float32),
        "m": np.zeros(c, np.float32),
        "v": np.ones(c, np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"], name="bn"),
        _n("Sigmoid", ["bn"], "sig"),
        _n("Mul", ["bn", "sig"], "y"),
    ]
    model = make_model(nodes, SHAPE, "y", inits)
    graph = ModelGraph.from_proto(model)
    assert [(layer.alias, layer.tensor) for layer in graph.layers] == [("conv1", "y")]
    relu = make_model([*nodes[:2], helper.make_node("Relu", ["bn"], ["y"], name="relu")], SHAPE, "y", inits)
    seeds = np.random.default_rng(30).standard_normal((2, c, *SHAPE[2:])).astype(np.float32)
    x = _input(31)
    projected = Linearisation(model, "y", x, "deconvnet").vjp(seeds)
    np.testing.assert_allclose(projected, Linearisation(relu, "y", x, "deconvnet").vjp(seeds), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("op", "opset", "attrs"), [("Gelu", 20, {}), ("Mish", 18, {}), ("Selu", 17, {})])
@pytest.mark.parametrize("mode", ["guided", "saliency"])
def test_sparse_head_through_the_new_activations_equals_the_dense_inverse(
    op: str, opset: int, attrs: dict, mode: str
) -> None:
    from onnxviz.inverse import InverseSpec, build_inverse
    from onnxviz.runtime.projector import make_seeds
    from tests.helpers import session

    model = _single_after_conv(op, opset, attrs)
    x = _input(32)
    dense = Linearisation(model, "y", x, mode)
    sparse = build_inverse(dense.graph, InverseSpec("y", x.shape, rule=mode, sparse=True))
    assert sparse.sparse
    activation = dense.values["y"]
    channels = np.array([2, 0], np.int64)
    feeds = {"seed": activation[0, channels][:, None], "channels": channels}
    feeds |= {t: dense.values[t] for t in sparse.forward_tensors}
    got = session(sparse.model).run(None, feeds)[0]
    np.testing.assert_allclose(got, dense.vjp(make_seeds(activation, channels)), rtol=1e-4, atol=1e-5)
