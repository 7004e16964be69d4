"""LpPool and GlobalLpPool: exact vector-Jacobian products in every mode.

``y = (Σ_window |x|^p)^(1/p)`` (zero padding adds nothing), so each window's output pulls on each
of its elements with ``∂y/∂x = sign(x)·|x|^(p−1) · y^(1−p)``:

    x̄ = sign(x)·|x|^(p−1) ⊙ Σ_{windows ∋ x} ȳ·y^(1−p)

The window sum is AveragePool's (``pool.window_sums_back``), without the divisor. A window whose
output is 0 passes nothing back (its elements are all 0, where the derivative is 0 for p > 1 and
torch's subgradient 0 for p = 1).
"""

from __future__ import annotations

import numpy as np
import onnx

from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.pool import pool_window, window_sums_back
from onnxviz.inverse.rules.registry import AnyRule, Rule, Signals, batch_first


def _scalar(ctx: InverseContext, value: float) -> str:
    return ctx.const(np.array(value, np.float32), "scalar")


def _pulls(ctx: InverseContext, node: onnx.NodeProto, g: str, p: float) -> tuple[str, str]:
    """(ȳ·y^(1−p), sign(x)·|x|^(p−1)): what each window sends back, and what each element takes."""
    x, y = ctx.forward(node.input[0]), ctx.forward(node.output[0])
    zero = _scalar(ctx, 0.0)
    is_zero = ctx.op("Equal", [y, zero])
    safe = ctx.op("Where", [is_zero, _scalar(ctx, 1.0), y])
    per_window = ctx.op("Where", [is_zero, zero, ctx.op("Pow", [safe, _scalar(ctx, 1.0 - p)])])
    per_element = ctx.op("Mul", [ctx.op("Sign", [x]), ctx.op("Pow", [ctx.op("Abs", [x]), _scalar(ctx, p - 1.0)])])
    return ctx.op("Mul", [g, per_window]), per_element


def lp_pool_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    window, in_size, out_size = pool_window(ctx, node)
    sent, taken = _pulls(ctx, node, g, float(ctx.attr(node, "p", 2)))
    return [ctx.op("Mul", [window_sums_back(ctx, sent, node.input[0], window, (out_size, in_size)), taken])]


def global_lp_pool_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    sent, taken = _pulls(ctx, node, g, float(ctx.attr(node, "p", 2)))
    return [ctx.op("Mul", [sent, taken])]


RULES: list[AnyRule] = [
    Rule(("LpPool",), lp_pool_rule, check=batch_first()),
    Rule(("GlobalLpPool",), global_lp_pool_rule, check=batch_first()),
]
