"""Normalisations: exact adjoints, checked against the forward graph (adjoint test) and against a
float64 numpy reference of the operator (finite-difference vector-Jacobian products)."""

from __future__ import annotations

import contextlib
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

from tests.helpers import Linearisation, make_model, separated_input
from tests.inverse.adjoint import SETTINGS, assert_adjoint

SHAPE = (1, 4, 3, 5)
FEW = settings(SETTINGS, max_examples=8)  # each example checks two forms and a numpy reference


def _normalise(x: np.ndarray, axes: tuple[int, ...], epsilon: float) -> np.ndarray:
    mean = x.mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(x.var(axis=axes, keepdims=True) + epsilon)


def _reference_vjp(function, x: np.ndarray, seeds: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """Jᵀ·seed of a float64 numpy function by central differences, one input element at a time."""
    x = x.astype(np.float64)
    jacobian = np.empty((x.size, *seeds.shape[1:]))
    for i in range(x.size):
        bump = np.zeros(x.size)
        bump[i] = step
        bump = bump.reshape(x.shape)
        jacobian[i] = ((function(x + bump) - function(x - bump)) / (2 * step))[0]
    return (seeds.reshape(len(seeds), -1) @ jacobian.reshape(x.size, -1).T).reshape(len(seeds), *x.shape[1:])


def _check(model, x: np.ndarray, reference, seed: int) -> None:
    assert_adjoint(model, "y", x, seed, eps=1e-3)
    seeds = np.random.default_rng(seed).standard_normal((2, *SHAPE[1:]))
    got = Linearisation(model, "y", x, "deconvnet").vjp(seeds)  # the same exact rule in every mode
    np.testing.assert_allclose(got, _reference_vjp(reference, x, seeds), rtol=2e-3, atol=2e-4)


def _input(seed: int) -> np.ndarray:
    """Its own random stream: an input drawn from the adjoint test's stream would be an affine
    function of the test direction u, which a normalisation maps to zero."""
    return np.random.default_rng([seed, 1]).normal(0.5, 1.5, SHAPE).astype(np.float32)


@FEW
@given(st.integers(-4, 3), st.sampled_from([1e-5, 1e-3, 0.5]), st.booleans(), st.integers(0, 1000))
def test_layer_norm_is_exact_for_any_axis(axis: int, epsilon: float, bias: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    first = axis % 4
    scale = rng.uniform(0.5, 2.0, SHAPE[first:]).astype(np.float32)
    shift = rng.standard_normal(SHAPE[first:]).astype(np.float32)
    inputs, inits = ["x", "scale"], {"scale": scale}
    if bias:
        inputs.append("shift")
        inits["shift"] = shift
    node = helper.make_node("LayerNormalization", inputs, ["y"], axis=axis, epsilon=epsilon, name="ln")
    model = make_model([node], SHAPE, "y", inits)
    axes = tuple(range(first, 4))
    _check(model, _input(seed), lambda x: _normalise(x, axes, epsilon) * scale + (shift if bias else 0), seed)


@FEW
@given(st.sampled_from([1e-5, 0.1]), st.integers(0, 1000))
def test_instance_norm_is_exact(epsilon: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scale, shift = rng.uniform(0.5, 2.0, 4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    node = helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=epsilon, name="in")
    model = make_model([node], SHAPE, "y", {"s": scale, "b": shift})
    per_channel = scale.reshape(4, 1, 1)
    _check(model, _input(seed), lambda x: _normalise(x, (2, 3), epsilon) * per_channel + shift.reshape(4, 1, 1), seed)


@FEW
@given(st.sampled_from([1, 2, 4]), st.sampled_from([18, 21]), st.sampled_from([1e-5, 0.1]), st.integers(0, 1000))
def test_group_norm_is_exact_in_both_opset_semantics(groups: int, opset: int, epsilon: float, seed: int) -> None:
    """Opset 18: scale and bias per group; opset 21: per channel."""
    rng = np.random.default_rng(seed)
    size = 4 if opset >= 21 else groups
    scale, shift = rng.uniform(0.5, 2.0, size).astype(np.float32), rng.standard_normal(size).astype(np.float32)
    node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=groups, epsilon=epsilon, name="gn")
    model = make_model([node], SHAPE, "y", {"s": scale, "b": shift}, opset=opset)

    def reference(x: np.ndarray) -> np.ndarray:
        grouped = _normalise(x.reshape(x.shape[0], groups, -1), (2,), epsilon)
        if opset >= 21:
            return grouped.reshape(x.shape) * scale.reshape(4, 1, 1) + shift.reshape(4, 1, 1)
        return (grouped * scale.reshape(groups, 1) + shift.reshape(groups, 1)).reshape(x.shape)

    # onnx.checker refuses the deprecated GroupNormalization-18 that onnxruntime still runs.
    with mock.patch("onnx.checker.check_model") if opset < 21 else contextlib.nullcontext():
        _check(model, _input(seed), reference, seed)


@pytest.mark.parametrize("opset", [13, 18])
def test_decomposed_layer_norm_chain_is_the_adjoint(opset: int) -> None:
    """TorchScript below opset 17 writes LayerNorm as ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add."""
    rng = np.random.default_rng(opset)
    inits = {
        "two": np.array(2.0, np.float32),
        "eps": np.array(1e-5, np.float32),
        "gamma": rng.uniform(0.5, 2, 5).astype(np.float32),
        "beta": rng.standard_normal(5).astype(np.float32),
    }
    if opset >= 18:
        inits["axes"] = np.array([-1], np.int64)
        reduce = {"inputs": ["axes"], "attrs": {}}
    else:
        reduce = {"inputs": [], "attrs": {"axes": [-1]}}
    nodes = [
        helper.make_node("ReduceMean", ["x", *reduce["inputs"]], ["mean"], name="mean", **reduce["attrs"]),
        helper.make_node("Sub", ["x", "mean"], ["d"], name="sub"),
        helper.make_node("Pow", ["d", "two"], ["sq"], name="pow"),
        helper.make_node("ReduceMean", ["sq", *reduce["inputs"]], ["var"], name="var", **reduce["attrs"]),
        helper.make_node("Add", ["var", "eps"], ["ve"], name="add_eps"),
        helper.make_node("Sqrt", ["ve"], ["std"], name="sqrt"),
        helper.make_node("Div", ["d", "std"], ["n"], name="div"),
        helper.make_node("Mul", ["n", "gamma"], ["m"], name="mul"),
        helper.make_node("Add", ["m", "beta"], ["y"], name="add"),
    ]
    model = make_model(nodes, SHAPE, "y", inits, opset=opset)
    reference = lambda x: _normalise(x, (3,), 1e-5) * inits["gamma"] + inits["beta"]  # noqa: E731
    _check(model, _input(opset), reference, opset)


@pytest.mark.parametrize(("opset", "training"), [(13, True), (15, True), (15, False)])
def test_batch_norm_exported_in_training_mode_uses_the_batch_statistics(opset: int, training: bool) -> None:
    """TorchScript exports a training-mode BatchNorm with training_mode=1 (or, before opset 14,
    with its running-statistics outputs); onnxruntime then normalises with the batch's statistics."""
    rng = np.random.default_rng(opset)
    c = SHAPE[1]
    inits = {
        "s": rng.uniform(0.5, 2, c).astype(np.float32),
        "b": rng.standard_normal(c).astype(np.float32),
        "m": rng.standard_normal(c).astype(np.float32),
        "v": rng.uniform(0.5, 2, c).astype(np.float32),
    }
    outputs = ["y", "running_mean", "running_var"] if training else ["y"]
    if training and opset < 14:
        outputs += ["saved_mean", "saved_var"]
    attrs = {"training_mode": 1} if training and opset >= 14 else {}
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], outputs, name="bn", **attrs)
    model = make_model([node], SHAPE, "y", inits, opset=opset)
    per_channel = {k: v.reshape(c, 1, 1) for k, v in inits.items()}
    if training:
        reference = lambda x: _normalise(x, (2, 3), 1e-5) * per_channel["s"] + per_channel["b"]  # noqa: E731
    else:
        reference = lambda x: (x - per_channel["m"]) / np.sqrt(per_channel["v"] + 1e-5) * per_channel["s"]  # noqa: E731
    _check(model, _input(opset), reference, opset)


def test_training_mode_batch_norm_keeps_the_sparse_head_out() -> None:
    """Batch statistics couple the positions of a channel, which the per-channel head cannot."""
    from onnxviz.inverse import InverseSpec, build_inverse

    rng = np.random.default_rng(40)
    c = SHAPE[1]
    inits = {
        "w": rng.standard_normal((c, c, 1, 1)).astype(np.float32),
        "s": rng.uniform(0.5, 2, c).astype(np.float32),
        "b": rng.standard_normal(c).astype(np.float32),
        "m": np.zeros(c, np.float32),
        "v": np.ones(c, np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["conv"], name="conv"),
        helper.make_node(
            "BatchNormalization", ["conv", "s", "b", "m", "v"], ["y", "rm", "rv"], training_mode=1, name="bn"
        ),
    ]
    model = make_model(nodes, SHAPE, "y", inits, opset=15)
    lin = Linearisation(model, "y", _input(41), "saliency")
    assert not build_inverse(lin.graph, InverseSpec("y", SHAPE, rule="saliency", sparse=True)).sparse


@pytest.mark.parametrize(
    "op", ["BatchNormalization", "LRN", "Sigmoid", "LeakyRelu", "Tanh", "HardSwish", "Softmax", "Elu", "Clip"]
)
def test_elementwise_and_normalisation_saliency_is_the_adjoint(op: str) -> None:
    rng = np.random.default_rng(5)
    c = 6
    inits: dict[str, np.ndarray] = {}
    inputs = ["x"]
    attrs: dict = {}
    if op == "BatchNormalization":
        inits = {
            "s": rng.uniform(0.5, 2, c),
            "b": rng.standard_normal(c),
            "m": rng.standard_normal(c),
            "v": rng.uniform(0.5, 2, c),
        }
        inits = {k: v.astype(np.float32) for k, v in inits.items()}
        inputs += ["s", "b", "m", "v"]
    elif op == "LRN":
        attrs = {"size": 3, "alpha": 0.5, "beta": 0.75, "bias": 1.0}
    elif op == "LeakyRelu":
        attrs = {"alpha": 0.1}
    elif op == "Softmax":
        attrs = {"axis": 1}
    elif op == "Clip":
        inits = {"lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)}
        inputs += ["lo", "hi"]
    model = make_model([helper.make_node(op, inputs, ["y"], name="op", **attrs)], (1, c, 4, 5), "y", inits)
    x = separated_input((1, c, 4, 5), rng, spacing=0.03)
    assert_adjoint(model, "y", x, 6, eps=1e-3)


def test_lrn_passthrough_hands_the_signal_on_unchanged() -> None:
    """The paper's approximation: the LRN layer is skipped on the way back."""
    rng = np.random.default_rng(14)
    lrn = helper.make_node("LRN", ["x"], ["y"], size=3, alpha=0.5, beta=0.75, bias=1.0, name="lrn")
    model = make_model([lrn], (1, 4, 3, 3), "y")
    lin = Linearisation(model, "y", rng.standard_normal((1, 4, 3, 3)).astype(np.float32), lrn="passthrough")
    seeds = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    np.testing.assert_array_equal(lin.vjp(seeds), seeds)
