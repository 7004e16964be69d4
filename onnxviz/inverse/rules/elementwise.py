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
* ``Where(c, a, b)``: ``ā = ȳ·c``, ``b̄ = ȳ·¬c``, with ``c`` a constant or computed from the image
  by comparisons (their gradient is zero), which the inverse recomputes on the forward's tensors.
* ``Shrink``: ``ȳ·[|x| > λ]`` (its two linear pieces have slope 1, the dead zone 0); not a rectifier.
* ``Mod`` with ``fmod=1``, ``a − b·trunc(a/b)``: ``ā = ȳ``, ``b̄ = −ȳ·trunc(a/b)``.

Every rule sums over the axes the forward broadcast an operand along.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.activation import clamp_check, clamp_rule
from onnxviz.inverse.rules.registry import AnyRule, Rule, Signals

FLOAT = onnx.TensorProto.FLOAT


def _scalar(ctx: InverseContext, value: float) -> str:
    return ctx.const(np.array(value, np.float32), "scalar")


def _unary(node: onnx.NodeProto, g: str) -> list[str | None]:
    return [g] + [None] * (len(node.input) - 1)


def exp_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    return _unary(node, ctx.op("Mul", [g, ctx.forward(node.output[0])]))


def log_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    return _unary(node, ctx.op("Div", [g, ctx.forward(node.input[0])]))


def sqrt_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    twice = ctx.op("Mul", [ctx.forward(node.output[0]), _scalar(ctx, 2.0)])
    return _unary(node, ctx.op("Div", [g, twice]))


def reciprocal_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    y = ctx.forward(node.output[0])
    return _unary(node, ctx.op("Neg", [ctx.op("Mul", [g, ctx.op("Mul", [y, y])])]))


def neg_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    return _unary(node, ctx.op("Neg", [g]))


def abs_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    return _unary(node, ctx.op("Mul", [g, ctx.op("Sign", [ctx.forward(node.input[0])])]))


def erf_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x = ctx.forward(node.input[0])
    bell = ctx.op("Exp", [ctx.op("Neg", [ctx.op("Mul", [x, x])])])
    slope = ctx.op("Mul", [bell, _scalar(ctx, 2.0 / math.sqrt(math.pi))])
    return _unary(node, ctx.op("Mul", [g, slope]))


def pow_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    g = g
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


def extremum_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    signal = ctx.graph.signal_inputs(node)
    if len(signal) == 1:
        return clamp_rule(ctx, node, g)
    g = g
    y = ctx.forward(node.output[0])
    chosen = {
        i: ctx.op("Cast", [ctx.op("Equal", [_as_float(ctx, node, t), y])], to=FLOAT) for i, t in enumerate(node.input)
    }
    share = ctx.op("Div", [g, ctx.add_all(list(chosen.values()))])
    result: list[str | None] = [None] * len(node.input)
    for i in signal:
        result[i] = ctx.reduce_to(ctx.op("Mul", [share, chosen[i]]), node.output[0], node.input[i])
    return result


# Ops whose boolean output the inverse can recompute from forward tensors, for a Where whose
# condition is computed from the image (``x > 0``): the signal is routed by the forward's choice.
BOOLEAN_OPS = frozenset({"Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Not", "And", "Or", "Xor"})
BOOLEAN_OPS |= {"IsNaN", "IsInf"}


def _condition_reason(ctx: InverseContext, tensor: str) -> str | None:
    """Why the condition ``tensor`` cannot be recomputed in the inverse (None when it can)."""
    if ctx.constant(tensor) is not None:
        return None
    producer = ctx.graph.producer.get(tensor)
    if producer is None or producer.op_type not in BOOLEAN_OPS:
        made_by = f" by {producer.op_type}" if producer is not None else ""
        return f"its condition '{tensor}' is computed from the image{made_by}, not by comparisons onnxviz can recompute"
    for operand in producer.input:
        inner = ctx.graph.producer.get(operand)
        if operand and inner is not None and inner.op_type in BOOLEAN_OPS:
            reason = _condition_reason(ctx, operand)
            if reason is not None:
                return reason
    return None


def _condition(ctx: InverseContext, tensor: str) -> str:
    """The condition as a tensor of the inverse: a constant, or its comparisons re-emitted on the
    forward's float tensors (so ties and NaNs decide as in the forward)."""
    producer = ctx.graph.producer.get(tensor)
    if ctx.constant(tensor) is not None or producer is None:
        return ctx.forward(tensor)
    operands = []
    for operand in producer.input:
        inner = ctx.graph.producer.get(operand)
        boolean = inner is not None and inner.op_type in BOOLEAN_OPS and ctx.constant(operand) is None
        operands.append(_condition(ctx, operand) if boolean else ctx.forward(operand))
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in producer.attribute}
    return ctx.op(producer.op_type, operands, **attrs)


def where_check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
    return _condition_reason(ctx, node.input[0])


def where_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    g = g
    condition, out = node.input[0], node.output[0]
    mask = _condition(ctx, condition)
    zero = _scalar(ctx, 0.0)
    result: list[str | None] = [None, None, None]
    if node.input[1] in ctx.graph.signal:
        result[1] = ctx.reduce_to(ctx.op("Where", [mask, g, zero]), out, node.input[1])
    if node.input[2] in ctx.graph.signal:
        result[2] = ctx.reduce_to(ctx.op("Where", [mask, zero, g]), out, node.input[2])
    return result


def shrink_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x = ctx.forward(node.input[0])
    lambd = _scalar(ctx, float(ctx.attr(node, "lambd", 0.5)))
    outside = ctx.op("Greater", [ctx.op("Abs", [x]), lambd])
    return [ctx.op("Mul", [g, ctx.op("Cast", [outside], to=FLOAT)])]


def mod_check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
    if not int(ctx.attr(node, "fmod", 0)):
        return "fmod=0 is the integer modulo, which has no float signal"
    return None


def mod_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    a, b, out = node.input[0], node.input[1], node.output[0]
    signal = set(ctx.graph.signal_inputs(node))
    result: list[str | None] = [None, None]
    if 0 in signal:
        result[0] = ctx.reduce_to(g, out, a)
    if 1 in signal:
        ratio = ctx.op("Div", [_as_float(ctx, node, a), ctx.forward(b)])
        truncated = ctx.op("Mul", [ctx.op("Sign", [ratio]), ctx.op("Floor", [ctx.op("Abs", [ratio])])])
        result[1] = ctx.reduce_to(ctx.op("Neg", [ctx.op("Mul", [g, truncated])]), out, b)
    return result


RULES: list[AnyRule] = [
    Rule(("Exp",), exp_rule),
    Rule(("Log",), log_rule),
    Rule(("Sqrt",), sqrt_rule),
    Rule(("Reciprocal",), reciprocal_rule),
    Rule(("Neg",), neg_rule),
    Rule(("Abs",), abs_rule),
    Rule(("Erf",), erf_rule),
    Rule(("Pow",), pow_rule),
    Rule(("Max", "Min"), extremum_rule, check=clamp_check),
    Rule(("Where",), where_rule, check=where_check),
    Rule(("Shrink",), shrink_rule),
    Rule(("Mod",), mod_rule, check=mod_check),
]
