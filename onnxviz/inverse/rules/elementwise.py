"""Element-wise maths on the image path: exact vector-Jacobian products in every mode.

These are not activations (DESIGN.md: only the ReLU family and the other activations get the
mode's treatment), so deconvnet and guided use the same exact rule as saliency:

* ``Exp``: ``ȳ·y``; ``Log``: ``ȳ/x``; ``Sqrt``: ``ȳ/(2y)``; ``Reciprocal``: ``−ȳ·y²``; ``Neg``: ``−ȳ``;
  ``Abs``: ``ȳ·sign(x)`` (0 at 0, as torch); ``Erf``: ``ȳ·(2/√π)·exp(−x²)``.
* ``Pow(a, p)``: ``ā = ȳ·p·a^(p−1)`` (0 where p = 0, as torch); when the exponent is on the image
  path too, ``p̄ = ȳ·y·ln a`` (0 where a = 0 and p ≥ 0, NaN for a negative base: torch's rule).
* ``Max``/``Min`` with several operands on the path route ``ȳ`` to the operand that was chosen,
  split evenly among tied operands (torch's ``maximum``/``minimum`` backward; a constant operand
  counts in the tie). With one operand on the path they are clamps, in ``activation.py``.
* ``Where(c, a, b)`` with a constant condition: ``ā = ȳ·c``, ``b̄ = ȳ·¬c``.

Every rule sums over the axes the forward broadcast an operand along.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.activation import clamp_rule
from onnxviz.inverse.rules.registry import register

FLOAT = onnx.TensorProto.FLOAT


def _scalar(ctx: InverseContext, value: float) -> str:
    return ctx.const(np.array(value, np.float32), "scalar")


def _signal(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> str:
    if grads[0] is None:
        raise ctx.unsupported(node, "no signal reaches its output")
    return grads[0]


def _unary(node: onnx.NodeProto, g: str) -> list[str | None]:
    return [g] + [None] * (len(node.input) - 1)


@register("Exp")
def exp_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    return _unary(node, ctx.op("Mul", [_signal(ctx, node, grads), ctx.forward(node.output[0])]))


@register("Log")
def log_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    return _unary(node, ctx.op("Div", [_signal(ctx, node, grads), ctx.forward(node.input[0])]))


@register("Sqrt")
def sqrt_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    twice = ctx.op("Mul", [ctx.forward(node.output[0]), _scalar(ctx, 2.0)])
    return _unary(node, ctx.op("Div", [_signal(ctx, node, grads), twice]))


@register("Reciprocal")
def reciprocal_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    y = ctx.forward(node.output[0])
    return _unary(node, ctx.op("Neg", [ctx.op("Mul", [_signal(ctx, node, grads), ctx.op("Mul", [y, y])])]))


@register("Neg")
def neg_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    return _unary(node, ctx.op("Neg", [_signal(ctx, node, grads)]))


@register("Abs")
def abs_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    return _unary(node, ctx.op("Mul", [_signal(ctx, node, grads), ctx.op("Sign", [ctx.forward(node.input[0])])]))


@register("Erf")
def erf_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    x = ctx.forward(node.input[0])
    bell = ctx.op("Exp", [ctx.op("Neg", [ctx.op("Mul", [x, x])])])
    slope = ctx.op("Mul", [bell, _scalar(ctx, 2.0 / math.sqrt(math.pi))])
    return _unary(node, ctx.op("Mul", [_signal(ctx, node, grads), slope]))


@register("Pow")
def pow_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = _signal(ctx, node, grads)
    base, exponent = node.input[0], node.input[1]
    out = node.output[0]
    signal = set(ctx.graph.signal_inputs(node))
    result: list[str | None] = [None, None]
    p = _as_float(ctx, node, exponent)
    if 0 in signal:
        a = ctx.forward(base)
        slope = ctx.op("Mul", [p, ctx.op("Pow", [a, ctx.op("Sub", [p, _scalar(ctx, 1.0)])])])
        slope = ctx.op("Where", [ctx.op("Equal", [p, _scalar(ctx, 0.0)]), _scalar(ctx, 0.0), slope])
        result[0] = ctx.reduce_to(ctx.op("Mul", [g, slope]), out, base)
    if 1 in signal:
        a = _as_float(ctx, node, base)
        slope = ctx.op("Mul", [ctx.forward(out), ctx.op("Log", [a])])
        zero_base = ctx.op(
            "And",
            [
                ctx.op("Equal", [a, _scalar(ctx, 0.0)]),
                ctx.op("GreaterOrEqual", [p, _scalar(ctx, 0.0)]),
            ],
        )
        slope = ctx.op("Where", [zero_base, _scalar(ctx, 0.0), slope])
        result[1] = ctx.reduce_to(ctx.op("Mul", [g, slope]), out, exponent)
    return result


def _as_float(ctx: InverseContext, node: onnx.NodeProto, tensor: str) -> str:
    """An operand as float32: Pow's exponent may be an integer constant."""
    value = ctx.constant(tensor)
    if value is not None:
        return ctx.const(np.asarray(value, np.float32), "operand")
    if tensor not in ctx.graph.signal:
        raise ctx.unsupported(node, f"its operand '{tensor}' is neither constant nor on the image path")
    return ctx.forward(tensor)


@register("Max", "Min")
def extremum_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    signal = ctx.graph.signal_inputs(node)
    if len(signal) == 1:
        return clamp_rule(ctx, node, grads)
    g = _signal(ctx, node, grads)
    y = ctx.forward(node.output[0])
    chosen = {
        i: ctx.op("Cast", [ctx.op("Equal", [_as_float(ctx, node, t), y])], to=FLOAT) for i, t in enumerate(node.input)
    }
    share = ctx.op("Div", [g, ctx.add_all(list(chosen.values()))])
    result: list[str | None] = [None] * len(node.input)
    for i in signal:
        result[i] = ctx.reduce_to(ctx.op("Mul", [share, chosen[i]]), node.output[0], node.input[i])
    return result


@register("Where")
def where_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = _signal(ctx, node, grads)
    condition, out = node.input[0], node.output[0]
    if ctx.constant(condition) is None:
        raise ctx.unsupported(node, f"its condition '{condition}' is computed from the image, not constant")
    mask = ctx.forward(condition)
    zero = _scalar(ctx, 0.0)
    result: list[str | None] = [None, None, None]
    if node.input[1] in ctx.graph.signal:
        result[1] = ctx.reduce_to(ctx.op("Where", [mask, g, zero]), out, node.input[1])
    if node.input[2] in ctx.graph.signal:
        result[2] = ctx.reduce_to(ctx.op("Where", [mask, zero, g]), out, node.input[2])
    return result
