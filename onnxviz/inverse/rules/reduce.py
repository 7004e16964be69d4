"""The rest of the Reduce family: exact vector-Jacobian products in every mode.

Over the reduced axes (attribute before opset 18, input from it; never the batch axis), with
``x`` the forward input, ``y`` the reduced output (kept dims) and ``ȳ`` broadcast back over them:

* ``ReduceL1``, ``Σ|x|``: ``ȳ·sign(x)`` (0 at 0, as torch);
* ``ReduceL2``, ``√Σx²``: ``ȳ·x/y`` (0 where y = 0, as torch);
* ``ReduceSumSquare``, ``Σx²``: ``2ȳ·x``;
* ``ReduceLogSum``, ``log Σx``: ``ȳ/exp(y)``;
* ``ReduceLogSumExp``, ``log Σeˣ``: ``ȳ·exp(x − y)``, the softmax of the group;
* ``ReduceProd``, ``Πx``: ``ȳ·Π_{others}``, written without dividing by x so that zeros are exact:
  ``Π_{x≠0}`` where a group has no zero, that product at its one zero, 0 where it has two or more.

ReduceMean/ReduceSum/ReduceMax/ReduceMin are in ``pool.py``.
"""

from __future__ import annotations

import numpy as np
import onnx

from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.pool import reduced_axes
from onnxviz.inverse.rules.registry import AnyRule, Rule, Signals, batch_first

FLOAT = onnx.TensorProto.FLOAT


def _scalar(ctx: InverseContext, value: float) -> str:
    return ctx.const(np.array(value, np.float32), "scalar")


def _kept(ctx: InverseContext, tensor: str, shape: tuple[int, ...], axes: list[int], leading: int) -> str:
    """``tensor`` (reduced, with or without kept dims) reshaped to ``shape`` with 1 on ``axes``;
    ``leading`` is its batch: -1 for the signal, 1 for a forward tensor."""
    kept = [1 if a in axes else n for a, n in enumerate(shape)]
    return ctx.op("Reshape", [tensor, ctx.ints([leading, *kept[1:]])])


def _product_of_others(ctx: InverseContext, x: str, axes: list[int]) -> str:
    zero, one = _scalar(ctx, 0.0), _scalar(ctx, 1.0)
    is_zero = ctx.op("Equal", [x, zero])
    product = ctx.op("ReduceProd", [ctx.op("Where", [is_zero, one, x])], axes=axes, keepdims=1)
    zeros = ctx.op("ReduceSum", [ctx.op("Cast", [is_zero], to=FLOAT), ctx.ints(axes, "axes")], keepdims=1)
    no_zero = ctx.op("Cast", [ctx.op("Equal", [zeros, zero])], to=FLOAT)
    one_zero = ctx.op("Cast", [ctx.op("Equal", [zeros, one])], to=FLOAT)
    safe_x = ctx.op("Where", [is_zero, one, x])
    elsewhere = ctx.op("Mul", [ctx.op("Div", [product, safe_x]), no_zero])
    return ctx.op("Where", [is_zero, ctx.op("Mul", [product, one_zero]), elsewhere])


def _slope(ctx: InverseContext, node: onnx.NodeProto, axes: list[int]) -> str:
    """∂y/∂x for each element of x (batch 1), y broadcast back over the reduced axes."""
    x_name = node.input[0]
    x = ctx.forward(x_name)
    shape = ctx.shape(x_name)
    op = node.op_type
    if op == "ReduceL1":
        return ctx.op("Sign", [x])
    if op == "ReduceSumSquare":
        return ctx.op("Mul", [x, _scalar(ctx, 2.0)])
    if op == "ReduceProd":
        return _product_of_others(ctx, x, axes)
    y = _kept(ctx, ctx.forward(node.output[0]), shape, axes, 1)
    if op == "ReduceL2":
        zero = _scalar(ctx, 0.0)
        is_zero = ctx.op("Equal", [y, zero])
        return ctx.op("Where", [is_zero, zero, ctx.op("Div", [x, ctx.op("Where", [is_zero, _scalar(ctx, 1.0), y])])])
    if op == "ReduceLogSum":
        return ctx.op("Expand", [ctx.op("Reciprocal", [ctx.op("Exp", [y])]), ctx.ints(list(shape))])
    return ctx.op("Exp", [ctx.op("Sub", [x, y])])  # ReduceLogSumExp


def reduce_check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
    if not reduced_axes(ctx, node):
        return "noop_with_empty_axes=1 with no axes: onnxruntime and the ONNX reference disagree on what it computes"
    return None


def reduce_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    axes = reduced_axes(ctx, node)
    shape = ctx.shape(node.input[0])
    spread = _kept(ctx, g, shape, axes, -1)
    return [ctx.op("Mul", [spread, _slope(ctx, node, axes)])] + [None] * (len(node.input) - 1)


OPS = ("ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp", "ReduceProd")
RULES: list[AnyRule] = [
    Rule(OPS, reduce_rule, check=lambda ctx, node: batch_first()(ctx, node) or reduce_check(ctx, node)),
]
