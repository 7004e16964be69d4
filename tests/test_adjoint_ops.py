"""The saliency inverse of every rule is the exact adjoint of the forward op's linearisation.

Attributes are drawn by hypothesis; each case is checked in both emitted forms (``cpu``:
MaxUnpool / native ConvTranspose pads; ``portable``: ScatterElements / crop), and the two forms
must agree with each other to float precision.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import helper

from tests.helpers import Linearisation, adjoint_gaps, make_model, separated_input

TOLERANCE = 2e-3
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_adjoint(model, target: str, x: np.ndarray, seed: int, eps: float = 1e-3) -> None:
    results = {}
    for form in ("cpu", "portable"):
        lin = Linearisation(model, target, x, "saliency", form)
        gaps = adjoint_gaps(lin, np.random.default_rng(seed), eps=eps)
        assert max(gaps) < TOLERANCE, f"{form}: adjoint gaps {gaps}"
        seeds = np.random.default_rng(seed + 1).standard_normal((2, *lin.values[target].shape[1:]))
        results[form] = lin.vjp(seeds)
    np.testing.assert_allclose(results["cpu"], results["portable"], rtol=1e-4, atol=1e-5)


def _out_size(size: int, k: int, s: int, d: int, pb: int, pe: int, ceil: bool = False) -> int:
    span = size + pb + pe - ((k - 1) * d + 1)
    return (math.ceil(span / s) if ceil else span // s) + 1


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


pool_cases = st.fixed_dictionaries(
    {
        "kernel": st.tuples(st.integers(2, 3), st.integers(2, 3)),
        "strides": st.tuples(st.integers(1, 3), st.integers(1, 3)),
        "pads": st.tuples(*[st.integers(0, 1)] * 4),
        "ceil_mode": st.sampled_from([0, 1]),
        "dilations": st.sampled_from([(1, 1), (1, 1), (2, 1), (2, 2)]),
        "size": st.tuples(st.integers(6, 11), st.integers(6, 11)),
        "seed": st.integers(0, 10_000),
    }
)


def _pool_fits(case: dict) -> bool:
    k, s, d, p = case["kernel"], case["strides"], case["dilations"], case["pads"]
    for axis in range(2):
        if p[axis] >= k[axis] or p[axis + 2] >= k[axis]:
            return False
        out = _out_size(case["size"][axis], k[axis], s[axis], d[axis], p[axis], p[axis + 2], bool(case["ceil_mode"]))
        # The last window must start inside the input or the left padding (the ONNX/PyTorch rule).
        if (out - 1) * s[axis] >= case["size"][axis] + p[axis]:
            return False
    return True


@SETTINGS
@given(pool_cases)
def test_maxpool_saliency_is_the_adjoint(case: dict) -> None:
    assume(_pool_fits(case))
    rng = np.random.default_rng(case["seed"])
    attrs = {
        "kernel_shape": list(case["kernel"]),
        "strides": list(case["strides"]),
        "pads": list(case["pads"]),
        "ceil_mode": case["ceil_mode"],
        "dilations": list(case["dilations"]),
    }
    model = make_model([helper.make_node("MaxPool", ["x"], ["y"], name="pool", **attrs)], (1, 2, *case["size"]), "y")
    x = separated_input((1, 2, *case["size"]), rng)
    assert_adjoint(model, "y", x, case["seed"], eps=1e-3)


@SETTINGS
@given(pool_cases, st.sampled_from([0, 1]))
def test_average_pool_saliency_is_the_adjoint(case: dict, count_include_pad: int) -> None:
    assume(_pool_fits(case) and case["dilations"] == (1, 1))
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


@SETTINGS
@given(st.integers(0, 1), st.sampled_from([1.0, 0.5, 2.0]), st.integers(0, 10_000))
def test_gemm_saliency_is_the_adjoint(trans_b: int, alpha: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((5, 7) if trans_b else (7, 5)).astype(np.float32)
    c = rng.standard_normal(5).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w", "c"], ["y"], name="fc", transB=trans_b, alpha=alpha),
    ]
    model = make_model(nodes, (1, 7, 1, 1), "y", {"w": w, "c": c})
    lin = Linearisation(model, "y", rng.standard_normal((1, 7, 1, 1)).astype(np.float32))
    assert max(adjoint_gaps(lin, rng)) < TOLERANCE


@pytest.mark.parametrize("perm", [[0, 2, 3, 1], [0, 3, 1, 2], [0, 1, 3, 2]])
def test_transpose_saliency_is_the_adjoint(perm: list[int]) -> None:
    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=perm, name="t"),
        helper.make_node("Transpose", ["t"], ["u"], perm=list(np.argsort(perm)), name="back"),
        helper.make_node("Conv", ["u", "w"], ["y"], pads=[1, 1, 1, 1], name="conv"),
    ]
    model = make_model(nodes, (1, 3, 5, 6), "y", {"w": w})
    assert_adjoint(model, "y", rng.standard_normal((1, 3, 5, 6)).astype(np.float32), 3)


def test_nhwc_input_transpose_is_inverted_into_the_input_layout() -> None:
    rng = np.random.default_rng(2)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Conv", ["nchw", "w"], ["c"], auto_pad="SAME_UPPER", strides=[2, 2], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Transpose", ["r"], ["y"], perm=[0, 2, 3, 1], name="to_nhwc"),
    ]
    model = make_model(nodes, (1, 9, 8, 3), "y", {"w": w})
    x = separated_input((1, 9, 8, 3), rng)
    assert_adjoint(model, "y", x, 4, eps=1e-4)


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


def test_shape_ops_saliency_is_the_adjoint() -> None:
    """Concat, Slice, Pad, Split, Flatten, Mul/Div by constants, Add with broadcasting, Sub, Sum."""
    rng = np.random.default_rng(7)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    inits = {
        "w": w,
        "scale": rng.uniform(0.5, 2, (1, 4, 1, 1)).astype(np.float32),
        "pads": np.array([0, 0, 1, 2, 0, 0, 2, 0], np.int64),
        "starts": np.array([1, 1], np.int64),
        "ends": np.array([3, 6], np.int64),
        "axes": np.array([1, 3], np.int64),
        "bias": rng.standard_normal((4, 1, 1)).astype(np.float32),
        "split": np.array([1, 3], np.int64),
        "two": np.array(2.0, np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Mul", ["c", "scale"], ["m"], name="mul"),
        helper.make_node("Div", ["m", "two"], ["d"], name="div"),
        helper.make_node("Add", ["d", "bias"], ["a"], name="add"),
        helper.make_node("Slice", ["a", "starts", "ends", "axes"], ["s"], name="slice"),
        helper.make_node("Pad", ["s", "pads"], ["p"], name="pad"),
        helper.make_node("Split", ["a", "split"], ["s1", "s2"], axis=1, name="split"),
        helper.make_node("Sub", ["s2", "s1"], ["diff"], name="sub"),
        helper.make_node("Concat", ["diff", "a"], ["cat"], axis=1, name="concat"),
        helper.make_node("Sum", ["cat", "cat"], ["twice"], name="sum"),
        helper.make_node("Flatten", ["twice"], ["f"], name="flatten"),
        helper.make_node("Flatten", ["p"], ["pf"], name="flatten_pad"),
        helper.make_node("Concat", ["f", "pf"], ["y"], axis=1, name="out"),
    ]
    model = make_model(nodes, (1, 3, 5, 6), "y", inits)
    assert_adjoint(model, "y", rng.standard_normal((1, 3, 5, 6)).astype(np.float32), 8)


def test_residual_fan_out_sums_both_branches() -> None:
    rng = np.random.default_rng(9)
    w1, w2 = (rng.standard_normal((3, 3, 3, 3)).astype(np.float32) for _ in range(2))
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1], name="c1"),
        helper.make_node("Conv", ["a", "w2"], ["b"], pads=[1, 1, 1, 1], name="c2"),
        helper.make_node("Add", ["a", "b"], ["y"], name="residual"),
    ]
    model = make_model(nodes, (1, 3, 6, 6), "y", {"w1": w1, "w2": w2})
    assert_adjoint(model, "y", rng.standard_normal((1, 3, 6, 6)).astype(np.float32), 10)


def test_product_of_two_signals_uses_the_product_rule() -> None:
    """SiLU as x·sigmoid(x), the way exporters write it."""
    rng = np.random.default_rng(11)
    nodes = [
        helper.make_node("Sigmoid", ["x"], ["s"], name="sigmoid"),
        helper.make_node("Mul", ["x", "s"], ["y"], name="silu"),
    ]
    model = make_model(nodes, (1, 2, 4, 4), "y")
    assert_adjoint(model, "y", rng.standard_normal((1, 2, 4, 4)).astype(np.float32), 12)


def test_the_adjoint_check_fails_on_a_wrong_inverse() -> None:
    """The check has teeth: the VJP of another seed does not pass for this one."""
    rng = np.random.default_rng(13)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    model = make_model(
        [helper.make_node("Conv", ["x", "w"], ["y"], strides=[2, 2], name="conv")], (1, 2, 9, 9), "y", {"w": w}
    )
    lin = Linearisation(model, "y", rng.standard_normal((1, 2, 9, 9)).astype(np.float32))
    original = lin.vjp
    lin.vjp = lambda seeds: original(np.flip(seeds, axis=-1).copy())  # type: ignore[method-assign]
    assert max(adjoint_gaps(lin, rng)) > 10 * TOLERANCE


def test_lrn_passthrough_hands_the_signal_on_unchanged() -> None:
    """The paper's approximation: the LRN layer is skipped on the way back."""
    rng = np.random.default_rng(14)
    lrn = helper.make_node("LRN", ["x"], ["y"], size=3, alpha=0.5, beta=0.75, bias=1.0, name="lrn")
    model = make_model([lrn], (1, 4, 3, 3), "y")
    lin = Linearisation(model, "y", rng.standard_normal((1, 4, 3, 3)).astype(np.float32), lrn="passthrough")
    seeds = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    np.testing.assert_array_equal(lin.vjp(seeds), seeds)


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
