"""Data-movement ops: the inverse moves the signal back where it came from (all modes).

Reshape/Flatten/Squeeze/Unsqueeze → reshape to the input shape; Transpose → the inverse
permutation; Concat ↔ Slice; Split → Concat (zeros for outputs with no signal); Slice → the
values put back ``step`` apart, zeros between (Pad has its own module, ``pad.py``); Expand/Tile →
the sum over the copies; Gather(Elements) → the signal added back at the gathered positions;
DepthToSpace/SpaceToDepth → the inverse rearrangement; Identity/Dropout/Cast pass the signal on.
The K projections ride on the batch axis: axis 0, or where a Transpose moved it
(``onnxviz.inverse.batch``); no op may slice or mix it.
"""

from __future__ import annotations

import numpy as np
import onnx

from onnxviz.inverse.batch import batch_axis, refuse_moved_target, signal_zeros
from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.registry import (
    AnyRule,
    Check,
    OutputsRule,
    Rule,
    Signals,
    all_of,
    batch_first,
    constant_input,
)

INT64_MIN = -(2**63)
INDICES_FROM_IMAGE = "its indices are computed from the image, not constant"
REPEATS_FROM_IMAGE = "its repeats are not constant"


def pass_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    return [g] + [None] * (len(node.input) - 1)


def reshape_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    refuse_moved_target(ctx, node, g)
    x, y = node.input[0], node.output[0]
    x_axis, y_axis = batch_axis(ctx, node, x, merged_ok=True), batch_axis(ctx, node, y, merged_ok=True)
    if x_axis == 0 and y_axis == 0:
        return [ctx.reshape_to(g, x)] + [None] * (len(node.input) - 1)
    # The batch block sits after the same elements in both layouts (``_reshaped_batch``), K
    # outermost in it: the K-batch signal reshapes block by block, K inferred on x's batch axis.
    target = list(ctx.shape(x))
    target[x_axis] = -1
    return [ctx.op("Reshape", [g, ctx.ints(target)])] + [None] * (len(node.input) - 1)


def transpose_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    refuse_moved_target(ctx, node, g)
    x = node.input[0]
    rank = len(ctx.shape(x))
    perm = list(ctx.attr(node, "perm", list(reversed(range(rank)))))
    # One projection at a time (``ctx.single``) has no batch axis for a perm to move.
    x_axis = batch_axis(ctx, node, x, merged_ok=True)
    if not ctx.single and perm.index(x_axis) != batch_axis(ctx, node, node.output[0], merged_ok=True):
        raise ctx.unsupported(node, f"perm {perm} moves the batch axis where onnxviz cannot follow it")
    return [ctx.op("Transpose", [g], perm=[int(i) for i in np.argsort(perm)])]


def concat_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    rank = len(ctx.shape(node.output[0]))
    axis = int(ctx.attr(node, "axis")) % rank
    if axis == batch_axis(ctx, node, node.output[0]):
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


def split_rule(ctx: InverseContext, node: onnx.NodeProto, grads: Signals) -> Signals:
    some, some_tensor = next((g, t) for g, t in zip(grads, node.output, strict=True) if g is not None)
    x = node.input[0]
    rank = len(ctx.shape(x))
    axis = int(ctx.attr(node, "axis", 0)) % rank
    if axis == batch_axis(ctx, node, x):
        raise ctx.unsupported(node, "it splits along the batch axis")
    parts = [
        g if g is not None else signal_zeros(ctx, node, some, some_tensor, out)
        for g, out in zip(grads, node.output, strict=True)
    ]
    return [ctx.op("Concat", parts, axis=axis)] + [None] * (len(node.input) - 1)


def slice_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x = node.input[0]
    shape = ctx.shape(x)
    rank = len(shape)
    starts, ends, axes, steps = _slice_arguments(ctx, node)
    batch = batch_axis(ctx, node, x)
    before, after = [0] * rank, [0] * rank
    dims = list(ctx.shape(node.output[0]))
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis %= rank
        if step == 0:
            raise ctx.unsupported(node, f"step 0 on axis {axis}")
        lo, hi, step = slice(int(start), int(end), int(step)).indices(shape[axis])
        count = len(range(lo, hi, step))
        if axis == batch:
            if (lo, count, step) != (0, shape[axis], 1):
                raise ctx.unsupported(node, "it slices the batch axis")
            continue
        if count == 0:
            return [signal_zeros(ctx, node, g, node.output[0], x)] + [None] * (len(node.input) - 1)
        first = lo if step > 0 else lo + (count - 1) * step
        if step != 1:
            g = _spread_strided(ctx, g, dims, batch, axis, abs(step), reverse=step < 0, room=shape[axis] - first)
        before[axis], after[axis] = first, shape[axis] - first - dims[axis]
    if any(before) or any(after):
        g = ctx.op("Pad", [g, ctx.ints(before + after, "pads")])
    return [g] + [None] * (len(node.input) - 1)


def _slice_arguments(ctx: InverseContext, node: onnx.NodeProto) -> tuple[list, list, list, list]:
    """starts, ends, axes, steps of a Slice, whether given as attributes (opset 1) or inputs."""
    if len(node.input) == 1:
        starts, ends = list(ctx.attr(node, "starts")), list(ctx.attr(node, "ends"))
        return starts, ends, list(ctx.attr(node, "axes", range(len(starts)))), [1] * len(starts)
    names = list(node.input[1:5]) + [""] * (5 - len(node.input))
    values = [ctx.constant(t) if t else None for t in names]
    if any(t and v is None for t, v in zip(names, values, strict=True)):
        raise ctx.unsupported(node, "its starts/ends/axes/steps are not constant")
    starts, ends = values[0].tolist(), values[1].tolist()
    axes = values[2].tolist() if values[2] is not None else list(range(len(starts)))
    steps = values[3].tolist() if values[3] is not None else [1] * len(starts)
    return starts, ends, axes, steps


def _spread_strided(
    ctx: InverseContext, g: str, dims: list[int], batch: int, axis: int, stride: int, reverse: bool, room: int
) -> str:
    """Put the values of ``g`` along ``axis`` ``stride`` apart, in ascending input order, with
    zeros between them, cut to the ``room`` left before the input ends; ``dims`` (g's shape) is
    updated. Exact and scatter-free: a zero block after each value (Unsqueeze + Pad) merged back
    into the axis (Reshape)."""
    count = dims[axis]
    if reverse:
        g = ctx.op(
            "Slice",
            [
                g,
                ctx.ints([-1], "starts"),
                ctx.ints([INT64_MIN], "ends"),
                ctx.ints([axis], "axes"),
                ctx.ints([-1], "steps"),
            ],
        )
    if stride == 1:
        return g
    rank = len(dims)
    spaced = ctx.op("Unsqueeze", [g, ctx.ints([axis + 1], "axes")])
    pads = [0] * (2 * (rank + 1))
    pads[rank + 1 + axis + 1] = stride - 1
    spaced = ctx.op("Pad", [spaced, ctx.ints(pads, "pads")])
    merged = list(dims)
    merged[batch], merged[axis] = -1, count * stride
    spaced = ctx.op("Reshape", [spaced, ctx.ints(merged)])
    dims[axis] = min(count * stride, room)
    if dims[axis] < count * stride:
        spaced = ctx.op(
            "Slice", [spaced, ctx.ints([0], "starts"), ctx.ints([dims[axis]], "ends"), ctx.ints([axis], "axes")]
        )
    return spaced


def matmul_along_axis(ctx: InverseContext, g: str, matrix: np.ndarray, axis: int, rank: int) -> str:
    """``g`` (length m along ``axis``) times the (m × n) ``matrix``: length n along ``axis``.

    This is the adjoint of ``y = matrix·x`` along that axis (resize sampling, gathers)."""
    if axis == rank - 1:
        return ctx.op("MatMul", [g, ctx.const(matrix, "sampling")])
    if axis == rank - 2:
        return ctx.op("MatMul", [ctx.const(np.ascontiguousarray(matrix.T), "sampling_t"), g])
    perm = [a for a in range(rank) if a != axis] + [axis]
    moved = ctx.op("Transpose", [g], perm=perm)
    product = ctx.op("MatMul", [moved, ctx.const(matrix, "sampling")])
    return ctx.op("Transpose", [product], perm=[int(i) for i in np.argsort(perm)])


def expand_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x, y = node.input[0], node.output[0]
    if x not in ctx.graph.signal:
        return [None, None]
    if len(ctx.shape(x)) != len(ctx.shape(y)):
        raise ctx.unsupported(node, "it adds leading axes, so the batch axis moves")
    return [ctx.reduce_to(g, y, x), None]


def tile_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x = node.input[0]
    if x not in ctx.graph.signal:
        return [None, None]
    repeats = [int(r) for r in _constant(ctx, node, 1).tolist()]
    if repeats[0] != 1:
        raise ctx.unsupported(node, "it tiles the batch axis")
    dims = ctx.sample_shape(x)
    if all(r == 1 for r in repeats):
        return [g, None]
    split = [-1] + [v for r, d in zip(repeats[1:], dims, strict=True) for v in (r, d)]
    copies = ctx.op("Reshape", [g, ctx.ints(split)])
    axes = [1 + 2 * i for i in range(len(dims))]
    return [ctx.op("ReduceSum", [copies, ctx.ints(axes, "axes")], keepdims=0), None]


def gather_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x = node.input[0]
    if x not in ctx.graph.signal:
        return [None, None]
    indices = _constant(ctx, node, 1)
    shape = ctx.shape(x)
    rank = len(shape)
    axis = int(ctx.attr(node, "axis", 0)) % rank
    batch = batch_axis(ctx, node, x)
    if axis == batch:
        raise ctx.unsupported(node, "it gathers along the batch axis")
    length = shape[axis]
    if np.any(indices < -length) or np.any(indices >= length):
        raise ctx.unsupported(node, f"an index is outside the axis of length {length}")
    positions = np.where(indices < 0, indices + length, indices).astype(np.int64)
    if positions.ndim == 0:
        # x[:, i] (a class token): the axis comes back, zeros everywhere but at i.
        g = ctx.op("Unsqueeze", [g, ctx.ints([axis], "axes")])
        pads = [0] * (2 * rank)
        pads[axis], pads[rank + axis] = int(positions), length - 1 - int(positions)
        return [ctx.op("Pad", [g, ctx.ints(pads, "pads")]), None]
    flat = [*shape[:axis], positions.size, *shape[axis + 1 :]]
    flat[batch] = -1
    g = ctx.op("Reshape", [g, ctx.ints(flat)])
    picks = np.zeros((positions.size, length), np.float32)
    np.add.at(picks, (np.arange(positions.size), positions.reshape(-1)), 1.0)
    return [matmul_along_axis(ctx, g, picks, axis, rank), None]


def gather_elements_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x = node.input[0]
    if x not in ctx.graph.signal:
        return [None, None]
    indices = _constant(ctx, node, 1)
    shape = ctx.shape(x)
    axis = int(ctx.attr(node, "axis", 0)) % len(shape)
    if axis == 0:
        raise ctx.unsupported(node, "it gathers along the batch axis")
    positions = np.where(indices < 0, indices + shape[axis], indices).astype(np.int64)
    if indices.shape[0] != 1:
        raise ctx.unsupported(node, "its indices are not those of one image")
    expanded = ctx.op("Expand", [ctx.const(positions, "indices"), ctx.op("Shape", [g])])
    zeros = ctx.zeros_like_signal(g, x)
    return [ctx.op("ScatterElements", [zeros, expanded, g], axis=axis, reduction="add"), None]


def depth_space_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    """Both are a reshape, a transpose and a reshape: undone by the inverse transpose."""
    x = node.input[0]
    n, c, h, w = ctx.shape(x)
    b = int(ctx.attr(node, "blocksize"))
    if node.op_type == "SpaceToDepth":
        grouped, perm = [n, c, h // b, b, w // b, b], [0, 3, 5, 1, 2, 4]
    elif ctx.attr(node, "mode", "DCR") == "DCR":
        grouped, perm = [n, b, b, c // (b * b), h, w], [0, 3, 4, 1, 5, 2]
    else:
        grouped, perm = [n, c // (b * b), b, b, h, w], [0, 1, 4, 2, 5, 3]
    moved = [grouped[p] for p in perm]
    g = ctx.op("Reshape", [g, ctx.ints([-1, *moved[1:]])])
    g = ctx.op("Transpose", [g], perm=[int(i) for i in np.argsort(perm)])
    return [ctx.reshape_to(g, x)]


def _constant(ctx: InverseContext, node: onnx.NodeProto, index: int) -> np.ndarray:
    """An operand the rule's check has seen to be constant."""
    value = ctx.constant(node.input[index])
    if value is None:
        raise ctx.unsupported(node, f"its input '{node.input[index]}' is not constant")
    return value


def _when_data_on_path(*checks: Check) -> Check:
    """``checks`` apply where the data (input 0) is on the image path; otherwise the rule passes
    nothing back and needs nothing."""
    combined = all_of(*checks)

    def check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
        return combined(ctx, node) if node.input[0] in ctx.graph.signal else None

    return check


RULES: list[AnyRule] = [
    Rule(("Identity", "Dropout", "Cast", "CastLike"), pass_rule),
    Rule(("Reshape", "Flatten", "Squeeze", "Unsqueeze"), reshape_rule),
    Rule(("Transpose",), transpose_rule),
    Rule(("Concat",), concat_rule),
    OutputsRule(("Split",), split_rule),
    Rule(("Slice",), slice_rule),
    Rule(("Expand",), expand_rule, check=_when_data_on_path(batch_first())),
    Rule(("Tile",), tile_rule, check=_when_data_on_path(batch_first(), constant_input(1, REPEATS_FROM_IMAGE))),
    Rule(
        ("Gather",),
        gather_rule,
        check=_when_data_on_path(constant_input(1, INDICES_FROM_IMAGE)),
    ),
    Rule(
        ("GatherElements",),
        gather_elements_rule,
        check=_when_data_on_path(constant_input(1, INDICES_FROM_IMAGE), batch_first()),
    ),
    Rule(("DepthToSpace", "SpaceToDepth"), depth_space_rule, check=batch_first()),
]
