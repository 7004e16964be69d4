"""MaxUnpool as an op of the forward graph (SegNet-style decoders that undo their own pools): its
adjoint reads the signal back from where each value was written, a gather by the same indices.

The indices are a constant or a MaxPool's own (row-major) indices output, which the forward hands
over; column-major ones are refused, the positions they name being another layout's.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto

from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.registry import AnyRule, Rule, Signals, batch_first


def max_unpool_check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
    indices = node.input[1]
    if ctx.constant(indices) is not None:
        return None
    pool = ctx.graph.producer.get(indices)
    if pool is None or pool.op_type != "MaxPool" or len(pool.output) < 2 or pool.output[1] != indices:
        return f"its indices '{indices}' are neither constant nor a MaxPool's indices"
    if int(ctx.attr(pool, "storage_order", 0)) != 0:
        return f"its indices come from MaxPool '{pool.name}' with column-major storage_order"
    return None


def max_unpool_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x, indices = node.input[0], node.input[1]
    size = math.prod(ctx.sample_shape(node.output[0]))
    constant = ctx.constant(indices)
    if constant is not None:
        positions = ctx.const(np.asarray(constant, np.int64).reshape(1, -1), "indices")
    else:
        ctx.shapes.setdefault(indices, ctx.shape(x))
        positions = ctx.op("Reshape", [ctx.forward(indices, TensorProto.INT64), ctx.ints([1, -1], "flat")])
    flat = ctx.op("Reshape", [g, ctx.ints([-1, size], "flat_signal")])
    picked = ctx.op(
        "Expand",
        [
            positions,
            ctx.op(
                "Concat",
                [
                    ctx.op("Slice", [ctx.op("Shape", [flat]), ctx.ints([0]), ctx.ints([1])]),
                    ctx.ints([math.prod(ctx.sample_shape(x))]),
                ],
                axis=0,
            ),
        ],
    )
    return [ctx.reshape_to(ctx.op("GatherElements", [flat, picked], axis=1), x)] + [None] * (len(node.input) - 1)


RULES: list[AnyRule] = [
    Rule(
        ("MaxUnpool",), max_unpool_rule, check=lambda ctx, node: batch_first()(ctx, node) or max_unpool_check(ctx, node)
    ),
]
