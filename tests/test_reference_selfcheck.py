"""Self-checks of the numpy reference in ``tests/reference.py``.

(a) the saliency backward is the exact VJP: central finite differences on small graphs;
(b) the forward agrees with onnxruntime (CPU) on every intermediate tensor;
(c) deconvnet / guided / saliency agree with torch autograd (ReLU backward hooks), if installed;
plus hand-made checks of the MaxPool routing rule, the activation rules and the seed batching.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests import reference as ref
from tests.helpers import GraphBuilder


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], tuple[onnx.ModelProto, str]]  # (model, FD/VJP target)


def _conv_chain() -> tuple[onnx.ModelProto, str]:
    g = GraphBuilder((1, 3, 9, 8))
    a = g.op("Conv", ["x", g.rand(4, 3, 3, 3), g.rand(4)], strides=[2, 2], pads=[1, 0, 2, 1])
    a = g.op("Relu", [a])
    a = g.op("Conv", [a, g.rand(6, 2, 2, 2)], group=2, dilations=[2, 1], pads=[0, 1, 1, 0])
    return g.done(a)


def _conv_auto_pad(auto_pad: str, k: int, s: int, d: int) -> Callable[[], tuple]:
    def build() -> tuple[onnx.ModelProto, str]:
        g = GraphBuilder((1, 2, 7, 8))
        w = g.rand(3, 2, k, k)
        a = g.op("Conv", ["x", w], auto_pad=auto_pad, strides=[s, s], dilations=[d, d])
        return g.done(a)

    return build


def _pool(op: str, hw: tuple[int, int], **attrs: object) -> Callable[[], tuple]:
    def build() -> tuple[onnx.ModelProto, str]:
        g = GraphBuilder((1, 2, *hw), opset=19)
        a = g.op("Conv", ["x", g.rand(3, 2, 1, 1)])  # mixes channels: no structural ties
        return g.done(g.op(op, [a], **attrs))

    return build


def _bn_lrn() -> tuple[onnx.ModelProto, str]:
    g = GraphBuilder((1, 3, 6, 6))
    a = g.op("Conv", ["x", g.rand(5, 3, 3, 3)], pads=[1, 1, 1, 1])
    bn = [g.rand(5), g.rand(5), g.rand(5), g.const(np.linspace(0.5, 2.0, 5))]
    a = g.op("BatchNormalization", [a, *bn], epsilon=1e-3)
    a = g.op("LRN", [a], size=3)
    return g.done(g.op("LRN", [a], size=5, alpha=0.5, beta=0.75, bias=2.0))


def _lrn_even() -> tuple[onnx.ModelProto, str]:
    g = GraphBuilder((1, 6, 3, 3))
    return g.done(g.op("LRN", ["x"], size=4, alpha=0.8, beta=0.6, bias=1.5))


def _gemm() -> tuple[onnx.ModelProto, str]:
    g = GraphBuilder((1, 2, 5, 5))
    a = g.op("Conv", ["x", g.rand(3, 2, 2, 2)], strides=[2, 2])
    a = g.op("Flatten", [g.op("Relu", [a])])
    a = g.op("Gemm", [a, g.rand(6, 12), g.rand(6)], transB=1, alpha=0.7, beta=0.3)
    a = g.op("Transpose", [a], perm=[1, 0])
    return g.done(g.op("Gemm", [a, g.rand(6, 4), g.rand(1, 4)], transA=1, alpha=1.5))


def _broadcast_arith() -> tuple[onnx.ModelProto, str]:
    g = GraphBuilder((1, 3, 6, 5))
    a = g.op("Conv", ["x", g.rand(4, 3, 1, 1)])
    gap = g.op("GlobalAveragePool", [a])  # (1, 4, 1, 1): broadcast back over H, W
    b = g.op("Add", [a, gap])
    b = g.op("Sub", [g.rand(4, 1, 1), b])
    c = g.op("Sum", [b, a, g.rand(1, 1, 5)])
    c = g.op("Mul", [c, g.rand(4, 1, 1)])
    c = g.op("Div", [c, g.const(1.7)])
    return g.done(g.op("Sub", [c, gap]))


def _concat_slice_pad() -> tuple[onnx.ModelProto, str]:
    g = GraphBuilder((1, 3, 7, 7), opset=13)
    i64 = np.int64
    a = g.op("Conv", ["x", g.rand(5, 3, 2, 2)])  # (1, 5, 6, 6)
    axes_steps = [g.const([1, 3], i64), g.const([2, 1], i64)]
    s1 = g.op("Slice", [a, g.const([0, 1], i64), g.const([5, -1], i64), *axes_steps])  # (1,3,6,4)
    neg = [g.const([-1, 5], i64), g.const([-100, 1], i64), g.const([2, 3], i64)]
    s2 = g.op("Slice", [a, *neg, g.const([-1, -2], i64)])  # (1, 5, 6, 2)
    s3 = g.op("Slice", [a, g.const([1], i64), g.const([4], i64), g.const([1], i64)])  # (1,3,6,6)
    c = g.op("Concat", [s1, s3], axis=3)  # (1, 3, 6, 10)
    p = g.op("Pad", [s2, g.const([0, 0, 1, 0, 0, 0, 0, 2], i64), g.const(0.5)])  # (1, 5, 7, 4)
    p = g.op("Pad", [p, g.const([0, 0, -1, 6, 0, 0, 0, 0], i64)])  # (1, 5, 6, 10)
    d = g.op("Split", [p, g.const([2, 3], i64)], n_out=2, axis=1)
    return g.done(g.op("Concat", [d + "_1", c, d], axis=1))  # (1, 8, 6, 10)


def _tf2onnx_flatten() -> tuple[onnx.ModelProto, str]:
    g = GraphBuilder((1, 2, 5, 5), opset=13)
    i64 = np.int64
    a = g.op("Relu", [g.op("Conv", ["x", g.rand(3, 2, 3, 3)])])  # (1, 3, 3, 3)
    batch = g.op("Gather", [g.op("Shape", [a]), g.const(0, i64)], axis=0)
    batch = g.op("Unsqueeze", [batch, g.const([0], i64)])
    flat = g.op("Reshape", [a, g.op("Concat", [batch, g.const([-1], i64)], axis=0)])  # (1, 27)
    tensor = numpy_helper.from_array
    ones_shape = g.op("Constant", [], value=tensor(np.array([27, 4], i64)))
    ones = g.op("ConstantOfShape", [ones_shape], value=tensor(np.ones(1, np.float32)))
    k = g.op("Constant", [], value=tensor(g.rng.standard_normal((27, 4)).astype(np.float32)))
    w = g.op("Mul", [ones, k])
    return g.done(g.op("Add", [g.op("MatMul", [flat, w]), g.rand(4)]))


def _activations_a() -> tuple[onnx.ModelProto, str]:
    g = GraphBuilder((1, 3, 5, 5), opset=13)
    a = g.op("LeakyRelu", [g.op("Conv", ["x", g.rand(4, 3, 3, 3, scale=1.0)])], alpha=0.1)
    a = g.op("Conv", [a, g.rand(4, 4, 1, 1)])
    a = g.op("PRelu", [a, g.const(np.array([0.3, -0.4, 1.5, 0.0]).reshape(4, 1, 1))])
    return g.done(g.op("Clip", [a, g.const(-0.3), g.const(0.4)]))


def _activations_b() -> tuple[onnx.ModelProto, str]:
    g = GraphBuilder((1, 3, 5, 5), opset=14)
    a = g.op("Sigmoid", [g.op("Conv", ["x", g.rand(4, 3, 3, 3, scale=2.0)])])
    a = g.op("HardSigmoid", [g.op("Conv", [a, g.rand(4, 4, 1, 1, scale=3.0)])], alpha=0.3, beta=0.4)
    a = g.op("HardSwish", [g.op("Conv", [a, g.rand(4, 4, 1, 1, scale=8.0), g.rand(4, scale=3.0)])])
    return g.done(g.op("Tanh", [a]))


def _clip_opset6() -> tuple[onnx.ModelProto, str]:
    g = GraphBuilder((1, 2, 6, 6), opset=6)
    a = g.op("Conv", ["x", g.rand(3, 2, 3, 3, scale=0.3)])
    a = g.op("Clip", [a], min=-0.6, max=0.9)
    return g.done(g.op("MaxPool", [a], kernel_shape=[2, 2], strides=[2, 2]))


def _matmul_transpose() -> tuple[onnx.ModelProto, str]:
    g = GraphBuilder((1, 3, 4, 5), opset=11)
    a = g.op("Conv", ["x", g.rand(4, 3, 1, 1)])
    a = g.op("Transpose", [a], perm=[0, 2, 3, 1])  # NHWC
    a = g.op("MatMul", [a, g.rand(4, 3)])
    a = g.op("Transpose", [a], perm=[0, 3, 1, 2])
    a = g.op("Squeeze", [g.op("Unsqueeze", [a], axes=[2])], axes=[2])
    a = g.op("Dropout", [g.op("Identity", [a])])
    a = g.op("MatMul", [a, g.rand(5, 2)])  # (1, 3, 4, 2)
    return g.done(g.op("MatMul", [g.rand(3, 4), a]))  # broadcast constant operand: (1, 3, 3, 2)


def _softmax_head() -> tuple[onnx.ModelProto, str]:
    g = GraphBuilder((1, 3, 6, 6))
    a = g.op("GlobalAveragePool", [g.op("Relu", [g.op("Conv", ["x", g.rand(4, 3, 3, 3)])])])
    logits = g.op("Gemm", [g.op("Flatten", [a]), g.rand(5, 4), g.rand(5)], transB=1)
    g.op("Softmax", [logits], axis=1)
    return g.done(logits)


def _extras() -> tuple[onnx.ModelProto, str]:
    g = GraphBuilder((1, 3, 5, 6), opset=13)
    i64 = np.int64
    a = g.op("Conv", ["x", g.rand(4, 3, 2, 2)])  # (1, 4, 4, 5)
    a = g.op("Gather", [a, g.const([2, 0, -1, 0], i64)], axis=1)
    a = g.op("ReduceMean", [a], axes=[2], keepdims=1)  # (1, 4, 1, 5)
    a = g.op("Expand", [a, g.const([1, 4, 3, 1], i64)])
    a = g.op("Tile", [a, g.const([1, 1, 1, 2], i64)])  # (1, 4, 3, 10)
    a = g.op("Pad", [a, g.const([0, 0, 1, 1, 0, 0, 1, 0], i64)], mode="reflect")
    a = g.op("Dropout", [a], n_out=2)  # opset >= 12: the inference mask is all True
    a = g.op("GlobalMaxPool", [a])
    return g.done(g.op("ReduceSum", [a, g.const([2, 3], i64)], keepdims=0))


CASES = [
    Case("conv_asym_pads_stride2_group_dilation", _conv_chain),
    Case("conv_same_upper", _conv_auto_pad("SAME_UPPER", 4, 2, 1)),
    Case("conv_same_lower", _conv_auto_pad("SAME_LOWER", 2, 3, 1)),
    Case("conv_same_upper_dilated", _conv_auto_pad("SAME_UPPER", 3, 2, 2)),
    Case("conv_valid", _conv_auto_pad("VALID", 3, 2, 1)),
    Case("maxpool_ceil_pads", _pool("MaxPool", (7, 6), kernel_shape=[3, 3], strides=[2, 2],
                                    pads=[1, 1, 1, 1], ceil_mode=1)),
    Case("maxpool_ceil_drop_last", _pool("MaxPool", (5, 4), kernel_shape=[2, 2], strides=[2, 2],
                                         pads=[1, 1, 1, 1], ceil_mode=1)),
    Case("maxpool_overlap_dilated", _pool("MaxPool", (7, 6), kernel_shape=[3, 2], strides=[1, 2],
                                          pads=[2, 1, 0, 1], dilations=[2, 1])),
    Case("maxpool_same_lower", _pool("MaxPool", (6, 5), kernel_shape=[2, 3], strides=[2, 2],
                                     auto_pad="SAME_LOWER")),
    Case("maxpool_same_lower_dilated", _pool("MaxPool", (8, 7), kernel_shape=[3, 3],
                                             strides=[2, 2], dilations=[2, 2],
                                             auto_pad="SAME_LOWER")),
    Case("maxpool_valid_ceil", _pool("MaxPool", (7, 8), kernel_shape=[3, 3], strides=[2, 2],
                                     auto_pad="VALID", ceil_mode=1)),
    # H: pad 1 before, the last ceil window overhangs the input; W: pad 1 after, then overhang.
    Case("avgpool_include_pad_ceil", _pool("AveragePool", (7, 7), kernel_shape=[3, 3],
                                           strides=[2, 3], pads=[1, 0, 0, 1], ceil_mode=1,
                                           count_include_pad=1)),
    Case("avgpool_exclude_pad_ceil", _pool("AveragePool", (7, 7), kernel_shape=[3, 3],
                                           strides=[2, 3], pads=[1, 0, 0, 1], ceil_mode=1,
                                           count_include_pad=0)),
    Case("avgpool_same_upper", _pool("AveragePool", (6, 5), kernel_shape=[3, 2], strides=[2, 1],
                                     auto_pad="SAME_UPPER")),
    Case("avgpool_same_upper_dilated", _pool("AveragePool", (8, 7), kernel_shape=[3, 3],
                                             strides=[1, 1], dilations=[2, 2],
                                             auto_pad="SAME_UPPER", count_include_pad=1)),
    Case("bn_lrn", _bn_lrn),
    Case("lrn_even_size", _lrn_even),
    Case("gemm_trans_alpha_beta", _gemm),
    Case("add_sub_sum_mul_div_broadcast", _broadcast_arith),
    Case("concat_slice_split_pad", _concat_slice_pad),
    Case("tf2onnx_flatten_constantofshape", _tf2onnx_flatten),
    Case("leakyrelu_prelu_clip", _activations_a),
    Case("sigmoid_hardsigmoid_hardswish_tanh", _activations_b),
    Case("clip_attrs_opset6_maxpool", _clip_opset6),
    Case("matmul_transpose_squeeze_dropout", _matmul_transpose),
    Case("softmax_head", _softmax_head),
    Case("gather_reduce_expand_tile_reflectpad", _extras),
]  # fmt: skip

# Where onnxruntime (CPU) departs from the ONNX spec on these graphs.
_SAME_DILATED = (
    "onnxruntime pools with auto_pad=SAME_* ignore dilations when padding: MaxPool/AveragePool "
    "kernel 3, dilations 2, stride 1 on 8x8 gives 6x6; the spec (and onnx shape inference) "
    "give ceil(in/stride) = 8x8"
)
ORT_XFAIL: dict[str, str] = {
    "conv_same_upper_dilated": "onnxruntime CPU refuses Conv with auto_pad=SAME_UPPER/SAME_LOWER "
    "and dilations != 1 ('Dilation not supported for AutoPadType::SAME_UPPER or SAME_LOWER')",
    "lrn_even_size": "onnxruntime CPU refuses LRN with an even size ('size_ % 2 == 1 was false'); "
    "the spec allows it (floor/ceil of (size-1)/2 channels before/after)",
    "maxpool_same_lower_dilated": _SAME_DILATED,
    "avgpool_same_upper_dilated": _SAME_DILATED,
    "maxpool_valid_ceil": "onnxruntime applies ceil_mode to auto_pad=VALID: 8 wide, kernel 3, "
    "stride 2 gives 4 (a window hanging past the input); the spec's VALID+ceil formula "
    "ceil((in - ((k-1)*d+1) + 1)/s) gives 3 (onnx shape inference sides with onnxruntime)",
}


def _params(xfail: dict[str, str]) -> list:
    """The cases, those in ``xfail`` marked as upstream canaries: a strict xfail turns into a
    failure the day the runtime follows the spec, which is the signal to drop the entry."""
    return [
        pytest.param(c, id=c.name, marks=[pytest.mark.upstream,
                                          pytest.mark.xfail(strict=True, reason=xfail[c.name])]
                     if c.name in xfail else [])
        for c in CASES
    ]  # fmt: skip


def _x(model: onnx.ModelProto, seed: int = 1) -> np.ndarray:
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    return np.random.default_rng(seed).standard_normal(shape)


# --------------------------------------------------------------------------------------------
# (a) saliency backward == finite differences
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _params({}))
def test_saliency_matches_finite_differences(case: Case) -> None:
    model, target = case.build()
    x = _x(model)
    seed = np.random.default_rng(2).standard_normal(ref.forward(model, x)[target].shape)
    got = ref.backward(model, x, target, seed, "saliency")
    # central differences, all coordinates at once as one batch (the graphs are batch-agnostic)
    eps, d = 1e-6, x.size
    basis = np.eye(d).reshape(d, *x.shape[1:]) * eps
    batch = np.concatenate([x + basis, x - basis])
    y = ref.forward(model, batch)[target]
    loss = (y * seed).reshape(2 * d, -1).sum(axis=1)
    numeric = ((loss[:d] - loss[d:]) / (2 * eps)).reshape(x.shape)
    assert got.shape == x.shape
    assert np.abs(got).max() > 0
    np.testing.assert_allclose(got, numeric, rtol=1e-5, atol=1e-6 * np.abs(numeric).max())


# --------------------------------------------------------------------------------------------
# (b) forward == onnxruntime
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _params(ORT_XFAIL))
def test_forward_matches_onnxruntime(case: Case) -> None:
    ort = pytest.importorskip("onnxruntime")
    model, _ = case.build()
    x = _x(model)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # ORT warns when onnx shape inference disagrees (ceil_mode)
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in model.graph.output]
    got = dict(zip(names, sess.run(names, {"x": x.astype(np.float32)}), strict=True))
    want = ref.forward(model, x)
    for name in names:
        assert got[name].shape == want[name].shape, name
        if ref._is_float(want[name]):
            np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-4, err_msg=name)
        else:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.upstream
@pytest.mark.xfail(
    strict=True,
    reason="onnx shape inference does not drop a ceil_mode window that starts in the right "
    "padding (spec text, onnxruntime kernel and onnx ReferenceEvaluator all do): "
    "MaxPool kernel_shape=[2,2] strides=[2,2] pads=[1,1,1,1] ceil_mode=1 on 5x5 -> 3x3, "
    "shape inference says 4x4",
)
def test_onnx_shape_inference_ceil_mode_agrees_with_spec() -> None:
    g = GraphBuilder((1, 1, 5, 5))
    g.op("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)
    model = g.model(outputs=[])
    inferred = onnx.shape_inference.infer_shapes(model)
    dims = [d.dim_value for d in inferred.graph.value_info[0].type.tensor_type.shape.dim]
    assert ref.forward(model, np.zeros((1, 1, 5, 5)))[g.nodes[0].output[0]].shape == (1, 1, 3, 3)
    assert dims == [1, 1, 3, 3]


# --------------------------------------------------------------------------------------------
# rules, MaxPool routing, seeds
# --------------------------------------------------------------------------------------------


def _single(op: str, x_shape: tuple[int, ...], **attrs: object) -> tuple[onnx.ModelProto, str]:
    g = GraphBuilder(x_shape)
    y = g.op(op, ["x"], **attrs)
    return g.done(y)


def test_maxpool_routes_to_first_max_and_overlaps_add() -> None:
    model, y = _single("MaxPool", (1, 1, 4, 4), kernel_shape=[2, 2], strides=[1, 1])
    gx = ref.backward(model, np.ones((1, 1, 4, 4)), y, np.ones((1, 1, 3, 3)), "deconvnet")
    want = np.zeros((4, 4))
    want[:3, :3] = 1.0  # every window ties: its top-left element wins
    np.testing.assert_array_equal(gx[0, 0], want)

    x = np.array([[0.0, 5.0, 1.0], [2.0, 3.0, 4.0], [1.0, 0.0, 2.0]]).reshape(1, 1, 3, 3)
    model, y = _single("MaxPool", (1, 1, 3, 3), kernel_shape=[2, 2], strides=[1, 1])
    seed = np.array([1.0, 10.0, 100.0, 1000.0]).reshape(1, 1, 2, 2)
    gx = ref.backward(model, x, y, seed, "guided")
    want = np.array([[0.0, 11.0, 0.0], [0.0, 100.0, 1000.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(gx[0, 0], want)


def test_maxpool_padding_never_wins() -> None:
    x = -np.ones((1, 1, 3, 3))  # all ties and all negative: a zero/-inf pad must not be picked
    model, y = _single("MaxPool", (1, 1, 3, 3), kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    gx = ref.backward(model, x, y, np.ones((1, 1, 3, 3)), "saliency")
    counts = np.array([[4.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])  # first valid = top-left
    np.testing.assert_array_equal(gx[0, 0], counts)
    assert (ref.forward(model, x)[y] == -1).all()


@pytest.mark.parametrize("op", ["Relu", "LeakyRelu", "Sigmoid", "HardSwish", "Clip"])
def test_activation_rules(op: str) -> None:
    x = np.linspace(-4, 4, 16).reshape(1, 1, 4, 4) + 0.01
    g = np.random.default_rng(3).standard_normal((1, 1, 4, 4))
    model, y = _single(op, (1, 1, 4, 4))
    eps = 1e-6
    fprime = (ref.forward(model, x + eps)[y] - ref.forward(model, x - eps)[y]) / (2 * eps)
    np.testing.assert_allclose(ref.backward(model, x, y, g, "saliency"), g * fprime, atol=1e-6)
    np.testing.assert_array_equal(ref.backward(model, x, y, g, "deconvnet"), np.maximum(g, 0))
    guided = ref.backward(model, x, y, g, "guided")
    np.testing.assert_array_equal(guided, np.maximum(g, 0) * (fprime > 1e-9))


def test_rules_agree_without_relu_family() -> None:
    model, target = _bn_lrn()
    x, seed = _x(model), np.random.default_rng(4).standard_normal((1, 5, 6, 6))
    sal = ref.backward(model, x, target, seed, "saliency")
    for rule in ("deconvnet", "guided"):
        np.testing.assert_array_equal(ref.backward(model, x, target, seed, rule), sal)


def test_seed_batch_shares_forward() -> None:
    model, target = _conv_chain()
    x = _x(model)
    shape = ref.forward(model, x)[target].shape
    seeds = np.random.default_rng(5).standard_normal((3, *shape[1:]))
    for rule in ref.RULES:
        got = ref.backward(model, x, target, seeds, rule)
        assert got.shape == (3, *x.shape[1:])
        for k in range(3):
            one = ref.backward(model, x, target, seeds[k : k + 1], rule)
            np.testing.assert_array_equal(got[k : k + 1], one)


def test_softmax_target_takes_seed_at_its_input() -> None:
    model, logits = _softmax_head()
    probs = model.graph.node[-1].output[0]
    x, seed = _x(model), np.random.default_rng(6).standard_normal((2, 5))
    for rule in ref.RULES:
        np.testing.assert_array_equal(
            ref.backward(model, x, probs, seed, rule), ref.backward(model, x, logits, seed, rule)
        )


def test_unsupported_op_is_refused() -> None:
    g = GraphBuilder((1, 1, 2, 2))
    g.op("Elu", ["x"])
    model = g.model(outputs=[])
    with pytest.raises(NotImplementedError, match="Elu"):
        ref.forward(model, np.zeros((1, 1, 2, 2)))


# --------------------------------------------------------------------------------------------
# (c) deconvnet / guided / saliency vs torch autograd with ReLU backward hooks
# --------------------------------------------------------------------------------------------


def _torch_net_model(rng: np.random.Generator) -> tuple[onnx.ModelProto, str, dict]:
    """conv-relu-maxpool-conv-relu (the weights are returned for the torch twin)."""
    w = {
        "w1": rng.standard_normal((4, 3, 3, 3)) * 0.5,
        "b1": rng.standard_normal(4) * 0.1,
        "w2": rng.standard_normal((5, 4, 3, 3)) * 0.5,
        "b2": rng.standard_normal(5) * 0.1,
    }
    g = GraphBuilder((1, 3, 11, 12))
    a = g.op("Conv", ["x", g.const(w["w1"]), g.const(w["b1"])], pads=[1, 1, 1, 1])
    a = g.op("Relu", [a])
    a = g.op("MaxPool", [a], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    a = g.op("Conv", [a, g.const(w["w2"]), g.const(w["b2"])], pads=[1, 1, 1, 1])
    y = g.op("Relu", [a])
    return g.model(), y, w


@pytest.mark.torch
@pytest.mark.parametrize("rule", ref.RULES)
def test_rules_match_torch_relu_hooks(rule: str) -> None:
    torch = pytest.importorskip("torch")
    f = torch.nn.functional

    model, target, w = _torch_net_model(np.random.default_rng(7))
    x = _x(model)
    seeds = np.random.default_rng(8).standard_normal((2, 5, 6, 6))
    got = ref.backward(model, x, target, seeds, rule)

    relus = [torch.nn.ReLU(), torch.nn.ReLU()]
    for relu in relus:
        if rule == "deconvnet":  # relu(g): ignore the forward mask entirely
            relu.register_full_backward_hook(lambda m, gi, go: (go[0].clamp(min=0),))
        elif rule == "guided":  # relu(g) * (X > 0): clamp the ordinary ReLU gradient
            relu.register_full_backward_hook(lambda m, gi, go: (gi[0].clamp(min=0),))
    t = {k: torch.from_numpy(v.astype(np.float32).astype(np.float64)) for k, v in w.items()}
    want = []
    for seed in seeds:
        xt = torch.from_numpy(x).requires_grad_(True)
        a = relus[0](f.conv2d(xt, t["w1"], t["b1"], padding=1))
        a = f.max_pool2d(a, 3, stride=2, padding=1)
        y = relus[1](f.conv2d(a, t["w2"], t["b2"], padding=1))
        y.backward(torch.from_numpy(seed[None]))
        want.append(xt.grad.numpy()[0])
    np.testing.assert_allclose(got, np.stack(want), rtol=1e-10, atol=1e-12)
