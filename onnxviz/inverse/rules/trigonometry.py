"""Trigonometric and hyperbolic functions: exact vector-Jacobian products in every mode.

They are smooth maths on the signal, not activations, so deconvnet and guided use the exact
rule too. With ``x`` the forward input and ``y`` the output:

* ``Sin``: ``ȳ·cos x``; ``Cos``: ``−ȳ·sin x``; ``Tan``: ``ȳ·(1 + y²)``;
* ``Asin``: ``ȳ/√(1 − x²)``; ``Acos``: ``−ȳ/√(1 − x²)``; ``Atan``: ``ȳ/(1 + x²)``;
* ``Sinh``: ``ȳ·cosh x``; ``Cosh``: ``ȳ·sinh x``;
* ``Asinh``: ``ȳ/√(x² + 1)``; ``Acosh``: ``ȳ/√(x² − 1)``; ``Atanh``: ``ȳ/(1 − x²)``.

The emitted ops (Sin, Cos, Sinh, Cosh, Sqrt…) all have float kernels in onnxruntime's CPU provider.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx

from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.registry import AnyRule, Rule, Signals

Slope = Callable[[InverseContext, onnx.NodeProto], str]


def _scalar(ctx: InverseContext, value: float) -> str:
    return ctx.const(np.array(value, np.float32), "scalar")


def _x(ctx: InverseContext, node: onnx.NodeProto) -> str:
    return ctx.forward(node.input[0])


def _square(ctx: InverseContext, t: str) -> str:
    return ctx.op("Mul", [t, t])


def _one_minus_square(ctx: InverseContext, node: onnx.NodeProto) -> str:
    return ctx.op("Sub", [_scalar(ctx, 1.0), _square(ctx, _x(ctx, node))])


def _inverse_root(ctx: InverseContext, radicand: str) -> str:
    return ctx.op("Reciprocal", [ctx.op("Sqrt", [radicand])])


SLOPES: dict[str, Slope] = {
    "Sin": lambda ctx, node: ctx.op("Cos", [_x(ctx, node)]),
    "Cos": lambda ctx, node: ctx.op("Neg", [ctx.op("Sin", [_x(ctx, node)])]),
    "Tan": lambda ctx, node: ctx.op("Add", [_scalar(ctx, 1.0), _square(ctx, ctx.forward(node.output[0]))]),
    "Asin": lambda ctx, node: _inverse_root(ctx, _one_minus_square(ctx, node)),
    "Acos": lambda ctx, node: ctx.op("Neg", [_inverse_root(ctx, _one_minus_square(ctx, node))]),
    "Atan": lambda ctx, node: ctx.op("Reciprocal", [ctx.op("Add", [_scalar(ctx, 1.0), _square(ctx, _x(ctx, node))])]),
    "Sinh": lambda ctx, node: ctx.op("Cosh", [_x(ctx, node)]),
    "Cosh": lambda ctx, node: ctx.op("Sinh", [_x(ctx, node)]),
    "Asinh": lambda ctx, node: _inverse_root(ctx, ctx.op("Add", [_square(ctx, _x(ctx, node)), _scalar(ctx, 1.0)])),
    "Acosh": lambda ctx, node: _inverse_root(ctx, ctx.op("Sub", [_square(ctx, _x(ctx, node)), _scalar(ctx, 1.0)])),
    "Atanh": lambda ctx, node: ctx.op("Reciprocal", [_one_minus_square(ctx, node)]),
}


def trigonometric_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    return [ctx.op("Mul", [g, SLOPES[node.op_type](ctx, node)])]


RULES: list[AnyRule] = [Rule(tuple(SLOPES), trigonometric_rule)]
