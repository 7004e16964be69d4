"""Data-movement ops: the inverse moves the signal back where it came from (all modes).

Reshape/Flatten/Squeeze/Unsqueeze → reshape to the input shape; Transpose → the inverse
permutation; Concat ↔ Slice; Split → Concat (zeros for outputs with no signal); Slice → Pad with
zeros; Pad → Slice; Identity/Dropout/Cast pass the signal on. The batch axis must stay axis 0,
as the K projections ride on it.
"""

from __future__ import annotations

import numpy as np
import onnx

from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.registry import register


@register("Identity", "Dropout", "Cast")
def pass_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    return [grads[0]] + [None] * (len(node.input) - 1)


@register("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def reshape_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    assert g is not None
    x = node.input[0]
    return [ctx.reshape_to(g, x)] + [None] * (len(node.input) - 1)


@register("Transpose")
def transpose_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    assert g is not None
    rank = len(ctx.shape(node.input[0]))
    perm = list(ctx.attr(node, "perm", list(reversed(range(rank)))))
    if perm[0] != 0:
        raise ctx.unsupported(node, f"perm {perm} moves the batch axis")
    return [ctx.op("Transpose", [g], perm=[int(i) for i in np.argsort(perm)])]


@register("Concat")
def concat_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    assert g is not None
    rank = len(ctx.shape(node.output[0]))
    axis = int(ctx.attr(node, "axis")) % rank
    if axis == 0:
        raise ctx.unsupported(node, "it concatenates along the batch axis")
    result: list[str | None] = []
    offset = 0
    for tensor in node.input:
        size = ctx.shape(tensor)[axis]
        if tensor in ctx.graph.signal:
            result.append(
                ctx.op(
                    "Slice",
                    [g, ctx.ints([offset], "starts"), ctx.ints([offset + size], "ends"), ctx.ints([axis], "axes")],
                )
            )
        else:
            result.append(None)
        offset += size
    return result


@register("Split")
def split_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    some = next(g for g in grads if g is not None)
    rank = len(ctx.shape(node.input[0]))
    axis = int(ctx.attr(node, "axis", 0)) % rank
    if axis == 0:
        raise ctx.unsupported(node, "it splits along the batch axis")
    parts = [
        g if g is not None else ctx.zeros_like_signal(some, out) for g, out in zip(grads, node.output, strict=True)
    ]
    return [ctx.op("Concat", parts, axis=axis)] + [None] * (len(node.input) - 1)


@register("Slice")
def slice_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    assert g is not None
    shape = ctx.shape(node.input[0])
    rank = len(shape)
    if len(node.input) > 1:
        values = [ctx.constant(t) if t else None for t in node.input[1:5]]
        if any(v is None for v in values[:2]) or any(
            t and v is None for t, v in zip(node.input[3:5], values[2:], strict=False)
        ):
            raise ctx.unsupported(node, "its starts/ends/axes/steps are not constant")
        starts, ends = values[0].tolist(), values[1].tolist()
        axes = values[2].tolist() if len(values) > 2 and values[2] is not None else list(range(len(starts)))
        steps = values[3].tolist() if len(values) > 3 and values[3] is not None else [1] * len(starts)
    else:
        starts, ends = list(ctx.attr(node, "starts")), list(ctx.attr(node, "ends"))
        axes = list(ctx.attr(node, "axes", range(len(starts))))
        steps = [1] * len(starts)
    before, after = [0] * rank, [0] * rank
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis %= rank
        if step != 1:
            raise ctx.unsupported(node, f"step {step} on axis {axis} (only step 1 is supported)")
        lo, hi, _ = slice(int(start), int(end)).indices(shape[axis])
        if axis == 0:
            if (lo, max(hi, lo)) != (0, shape[0]):
                raise ctx.unsupported(node, "it slices the batch axis")
            continue
        before[axis], after[axis] = lo, shape[axis] - max(hi, lo)
    if not any(before) and not any(after):
        return [g] + [None] * (len(node.input) - 1)
    return [ctx.op("Pad", [g, ctx.ints(before + after, "pads")])] + [None] * (len(node.input) - 1)


@register("Pad")
def pad_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    assert g is not None
    mode = ctx.attr(node, "mode", "constant")
    if mode != "constant":
        raise ctx.unsupported(node, f"mode '{mode}' (only constant padding is supported)")
    shape = ctx.shape(node.input[0])
    rank = len(shape)
    if len(node.input) > 1 and node.input[1]:
        pads = ctx.constant(node.input[1])
        if pads is None:
            raise ctx.unsupported(node, "its pads are not constant")
        pads = pads.tolist()
    else:
        pads = list(ctx.attr(node, "pads"))
    axes = list(range(rank))
    if len(node.input) > 3 and node.input[3]:
        axes = [int(a) % rank for a in ctx.constant(node.input[3]).tolist()]
    n = len(axes)
    starts, ends, restore_before, restore_after = [], [], [0] * rank, [0] * rank
    for i, axis in enumerate(axes):
        b, e = int(pads[i]), int(pads[i + n])
        if axis == 0 and (b or e):
            raise ctx.unsupported(node, "it pads the batch axis")
        if axis == 0:
            continue
        kept = shape[axis] - max(-b, 0) - max(-e, 0)
        starts.append(max(b, 0))
        ends.append(max(b, 0) + kept)
        restore_before[axis], restore_after[axis] = max(-b, 0), max(-e, 0)
    sliced_axes = [a for a in axes if a != 0]
    gx = ctx.op("Slice", [g, ctx.ints(starts, "starts"), ctx.ints(ends, "ends"), ctx.ints(sliced_axes, "axes")])
    if any(restore_before) or any(restore_after):
        gx = ctx.op("Pad", [gx, ctx.ints(restore_before + restore_after, "pads")])
    return [gx] + [None] * (len(node.input) - 1)
