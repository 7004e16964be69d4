"""Linear ops: their adjoint is the same in every mode.

* BatchNormalization (inference): ``x̄ = ȳ·γ/√(σ²+ε)`` per channel.
* Add/Sum/Sub: ``ȳ`` to each input on the image path (``−ȳ`` for Sub's second), summed over the
  axes the forward broadcast that input along.
* Mul/Div: ``ȳ·b`` and ``ȳ/b``; when both factors are on the path (squeeze-excitation, SiLU
  written as ``x·σ(x)``) each gets the other's forward value: the product rule.
* Gemm: ``Ā = α·ȳ·B'ᵀ`` (with ``B' = Bᵀ`` under transB); MatMul: ``Ā = ȳ·Bᵀ``, ``B̄ = Aᵀ·ȳ``
  (either or both operands on the path, batched, broadcast).
* Softmax/LogSoftmax inside the path: their exact Jacobian-transpose products.
"""

from __future__ import annotations

import numpy as np
import onnx

from onnxviz.inverse.batch import refuse_moved_target
from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.normalization import batch_statistics_vjp, uses_batch_statistics
from onnxviz.inverse.rules.registry import AnyRule, Rule, Signals, batch_first


def _on_path(ctx: InverseContext, tensor: str) -> bool:
    return bool(tensor) and tensor in ctx.graph.signal


def batch_norm_check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
    """Inference mode divides by constant running statistics; training mode by the batch's own."""
    if uses_batch_statistics(ctx.graph, node):
        return None
    if ctx.constant(node.input[1]) is None or ctx.constant(node.input[4]) is None:
        return "its scale or variance is not constant"
    return None


def batch_norm_factor(ctx: InverseContext, node: onnx.NodeProto) -> np.ndarray:
    """γ/√(σ²+ε) per channel, the Jacobian of an inference BatchNormalization (``batch_norm_check``
    has seen that γ and σ² are constants); the sparse head gathers it by channel."""
    scale, var = ctx.constant(node.input[1]), ctx.constant(node.input[4])
    if scale is None or var is None:
        raise ctx.unsupported(node, "its scale or variance is not constant")
    eps = float(ctx.attr(node, "epsilon", 1e-5))
    return (scale / np.sqrt(var + eps)).astype(np.float32)


def batch_norm_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    if uses_batch_statistics(ctx.graph, node):
        return batch_statistics_vjp(ctx, node, g)
    rank = len(ctx.shape(node.input[0]))
    factor = batch_norm_factor(ctx, node).reshape([-1] + [1] * (rank - 2))
    return [ctx.op("Mul", [g, ctx.const(factor, "bn_factor")]), None, None, None, None]


def add_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    out = node.output[0]
    result: list[str | None] = []
    for i, tensor in enumerate(node.input):
        if not _on_path(ctx, tensor):
            result.append(None)
            continue
        term = ctx.op("Neg", [g]) if node.op_type == "Sub" and i == 1 else g
        result.append(ctx.reduce_to(term, out, tensor))
    return result


def mean_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    """Mean of n operands: ``ȳ/n`` to each on the path, summed over its broadcast axes."""
    share = ctx.op("Mul", [g, ctx.const(np.array(1.0 / len(node.input), np.float32), "share")])
    out = node.output[0]
    return [ctx.reduce_to(share, out, t) if _on_path(ctx, t) else None for t in node.input]


def mul_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    a, b = node.input[0], node.input[1]
    result: list[str | None] = [None, None]
    for i, (mine, other) in enumerate(((a, b), (b, a))):
        if _on_path(ctx, mine):
            result[i] = ctx.reduce_to(ctx.op("Mul", [g, ctx.forward(other)]), node.output[0], mine)
    return result


def div_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    a, b = node.input[0], node.input[1]
    out = node.output[0]
    result: list[str | None] = [None, None]
    if _on_path(ctx, a):
        result[0] = ctx.reduce_to(ctx.op("Div", [g, ctx.forward(b)]), out, a)
    if _on_path(ctx, b):
        quotient = ctx.op("Div", [ctx.forward(out), ctx.forward(b)])
        result[1] = ctx.reduce_to(ctx.op("Neg", [ctx.op("Mul", [g, quotient])]), out, b)
    return result


def gemm_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    refuse_moved_target(ctx, node, g)
    b = node.input[1]
    if _on_path(ctx, b):
        raise ctx.unsupported(node, "its second operand (the weights) depends on the image")
    if int(ctx.attr(node, "transA", 0)):
        raise ctx.unsupported(node, "transA=1 puts the batch on the wrong axis")
    alpha = float(ctx.attr(node, "alpha", 1.0))
    trans_b = int(ctx.attr(node, "transB", 0))
    ga = ctx.op("Gemm", [g, ctx.forward(b)], alpha=alpha if alpha != 1.0 else None, transB=1 - trans_b)
    return [ga] + [None] * (len(node.input) - 1)


def matmul_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    """``Ā = ȳ·Bᵀ`` and ``B̄ = Aᵀ·ȳ``, each summed over the batch axes it was broadcast along. With
    both operands on the path (attention's Q·Kᵀ and softmax·V) each reads the other's forward
    value: the product rule."""
    refuse_moved_target(ctx, node, g)
    a, b = node.input[0], node.input[1]
    shape_a, shape_b, shape_y = ctx.shape(a), ctx.shape(b), ctx.shape(node.output[0])
    result: list[str | None] = [None, None]
    if _on_path(ctx, a):
        if len(shape_a) < 2 or len(shape_a) < len(shape_b):
            raise ctx.unsupported(node, "its first operand has no batch axis of its own (fewer axes than the other)")
        if len(shape_b) == 1:
            ga = ctx.op("Mul", [ctx.op("Unsqueeze", [g, ctx.ints([-1], "axes")]), ctx.forward(b)])
        else:
            ga = ctx.op("MatMul", [g, _swap_last_two(ctx, ctx.forward(b), len(shape_b))])
        result[0] = _sum_broadcast_batch(ctx, ga, shape_a, shape_y, ctx.single)
    if _on_path(ctx, b):
        if len(shape_b) < 3 or len(shape_b) < len(shape_a):
            raise ctx.unsupported(node, "its second operand has no batch axis of its own")
        if len(shape_a) == 1:
            outer = ctx.op("Unsqueeze", [ctx.forward(a), ctx.ints([-1], "axes")])
            gb = ctx.op("Mul", [outer, ctx.op("Unsqueeze", [g, ctx.ints([-2], "axes")])])
        else:
            gb = ctx.op("MatMul", [_swap_last_two(ctx, ctx.forward(a), len(shape_a)), g])
        result[1] = _sum_broadcast_batch(ctx, gb, shape_b, shape_y, ctx.single)
    return result


def _swap_last_two(ctx: InverseContext, tensor: str, rank: int) -> str:
    return ctx.op("Transpose", [tensor], perm=[*range(rank - 2), rank - 1, rank - 2])


def _sum_broadcast_batch(
    ctx: InverseContext, grad: str, operand_shape: tuple[int, ...], out_shape: tuple[int, ...], single: bool
) -> str:
    """Sum a MatMul operand's gradient over the batch axes (after the first, unless ``single`` makes
    the first data too) the forward broadcast that operand along; the operand's batch axes sit at
    the same positions as the product's."""
    first = 0 if single else 1
    axes = [i for i in range(first, len(operand_shape) - 2) if operand_shape[i] == 1 and out_shape[i] != 1]
    return ctx.op("ReduceSum", [grad, ctx.ints(axes, "axes")], keepdims=1) if axes else grad


def softmax_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    """Before opset 13 the op normalises over all axes from ``axis`` on (the input seen as 2-D);
    from 13 over ``axis`` alone."""
    rank = len(ctx.shape(node.input[0]))
    opset = _opset(ctx)
    axis = int(ctx.attr(node, "axis", -1 if opset >= 13 else 1)) % rank
    axes = [axis] if opset >= 13 else list(range(axis, rank))
    if 0 in axes and not ctx.single:
        raise ctx.unsupported(node, "it normalises over the batch axis")
    y = ctx.forward(node.output[0])
    if node.op_type == "Softmax":
        dot = ctx.op("ReduceSum", [ctx.op("Mul", [g, y]), ctx.ints(axes, "axes")], keepdims=1)
        return [ctx.op("Mul", [y, ctx.op("Sub", [g, dot])])]
    total = ctx.op("ReduceSum", [g, ctx.ints(axes, "axes")], keepdims=1)
    return [ctx.op("Sub", [g, ctx.op("Mul", [ctx.op("Exp", [y]), total])])]


def _opset(ctx: InverseContext) -> int:
    from onnxviz.graph.attributes import default_opset

    return default_opset(ctx.graph.model)


RULES: list[AnyRule] = [
    Rule(("BatchNormalization",), batch_norm_rule, check=batch_norm_check),
    Rule(("Add", "Sum", "Sub"), add_rule),
    Rule(("Mean",), mean_rule),
    Rule(("Mul",), mul_rule),
    Rule(("Div",), div_rule),
    Rule(("Gemm",), gemm_rule),
    Rule(("MatMul",), matmul_rule),
    Rule(("Softmax", "LogSoftmax"), softmax_rule, check=batch_first()),
]
