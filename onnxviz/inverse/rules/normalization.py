"""LRN: its exact adjoint (all modes), or the paper's pass-through with ``lrn="passthrough"``.

``y_c = x_c / D_c^β`` with ``D_c = k + (α/n)·Σ_{c'∈w(c)} x_{c'}²`` and the window
``w(c) = [c − ⌊(n−1)/2⌋, c + ⌈(n−1)/2⌉]``. Differentiating,

    x̄_i = ȳ_i / D_i^β − (2αβ/n) · x_i · Σ_{c : i∈w(c)} ȳ_c · y_c / D_c

and ``i ∈ w(c)`` ⟺ ``c ∈ [i − ⌈(n−1)/2⌉, i + ⌊(n−1)/2⌋]``: the same channel-window sum with its
pads swapped. Channel-window sums are a Conv with a kernel of ones over channels laid out as a
spatial axis.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.registry import register


@register("LRN")
def lrn_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    assert g is not None
    if ctx.lrn == "passthrough":
        return [g]
    x_name = node.input[0]
    shape = ctx.shape(x_name)
    channels, spatial = shape[1], math.prod(shape[2:])
    size = int(ctx.attr(node, "size"))
    alpha, beta = float(ctx.attr(node, "alpha", 1e-4)), float(ctx.attr(node, "beta", 0.75))
    bias = float(ctx.attr(node, "bias", 1.0))
    low, high = (size - 1) // 2, math.ceil((size - 1) / 2)
    ones = ctx.const(np.ones((1, 1, size, 1), np.float32), "channel_window")
    as_plane = ctx.ints([-1, 1, channels, spatial], "as_plane")
    back = ctx.ints([-1, *shape[1:]], "as_maps")

    def window_sum(t: str, before: int, after: int) -> str:
        plane = ctx.op("Reshape", [t, as_plane])
        summed = ctx.op("Conv", [plane, ones], pads=[before, 0, after, 0], kernel_shape=[size, 1])
        return ctx.op("Reshape", [summed, back])

    x = ctx.forward(x_name)
    scalar = lambda v: ctx.const(np.array(v, np.float32), "scalar")  # noqa: E731
    squares = window_sum(ctx.op("Mul", [x, x]), low, high)
    denom = ctx.op("Add", [scalar(bias), ctx.op("Mul", [squares, scalar(alpha / size)])])
    denom_pow = ctx.op("Pow", [denom, scalar(beta)])
    y_over_d = ctx.op("Div", [ctx.op("Div", [x, denom_pow]), denom])
    direct = ctx.op("Div", [g, denom_pow])
    spread = window_sum(ctx.op("Mul", [g, y_over_d]), high, low)
    cross = ctx.op("Mul", [ctx.op("Mul", [x, spread]), scalar(2.0 * alpha * beta / size)])
    return [ctx.op("Sub", [direct, cross])]
