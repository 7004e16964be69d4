"""QuantizeLinear / DequantizeLinear: the straight-through estimator (all modes).

Quantisation is a staircase, q = sat(round(x/s) + z), whose true derivative is 0 almost
everywhere; the usual gradient through it (and what quantisation-aware training uses) is the
straight-through estimator, round ≈ identity: ∂q/∂x = 1/s, and DequantizeLinear x = (q − z)·s
has ∂x/∂q = s. So the signal is divided by the scale on the way back through a QuantizeLinear and
multiplied by it through a DequantizeLinear; a Q→DQ pair with one scale, as QDQ models write
every activation, passes the signal unchanged. The forward keeps the pairs, so activations are
the quantised ones the model really computes. Scales are per tensor, or per slice along ``axis``
(not the batch axis, which carries the K projections).
"""

from __future__ import annotations

import numpy as np
import onnx

from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.registry import register


def _broadcast_scale(ctx: InverseContext, node: onnx.NodeProto, rank: int) -> np.ndarray:
    scale = ctx.constant(node.input[1])
    if scale is None:
        raise ctx.unsupported(node, "its scale is not constant")
    scale = np.asarray(scale, np.float32)
    if scale.size == 1:
        return scale.reshape(())
    axis = int(ctx.attr(node, "axis", 1)) % rank
    if axis == 0:
        raise ctx.unsupported(node, "it quantises per slice along the batch axis")
    if ctx.attr(node, "block_size", 0):
        raise ctx.unsupported(node, "it quantises in blocks")
    shape = [1] * rank
    shape[axis] = scale.size
    return scale.reshape(shape)


@register("QuantizeLinear", "DequantizeLinear")
def straight_through_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    if g is None:
        raise ctx.unsupported(node, "no signal reaches its output")
    scale = _broadcast_scale(ctx, node, len(ctx.shape(node.input[0])))
    factor = 1.0 / scale if node.op_type == "QuantizeLinear" else scale
    scaled = ctx.op("Mul", [g, ctx.const(factor.astype(np.float32), "scale")])
    return [scaled] + [None] * (len(node.input) - 1)
