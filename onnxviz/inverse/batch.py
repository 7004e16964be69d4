"""Where each signal tensor keeps the batch axis, on which the K projections ride.

Axis 0 in almost every CNN; attention blocks move it with a Transpose, or merge it into another
axis. Rules written for the batch on axis 0 check ``batch_first_reason`` (through
``rules.registry.batch_first``); data-movement rules ask ``batch_axis`` where it is.
"""

from __future__ import annotations

import math
import weakref

import onnx
from onnx import TensorProto, helper

from onnxviz.inverse.context import SEED, InverseContext


def batch_axis(ctx: InverseContext, node: onnx.NodeProto, tensor: str, merged_ok: bool = False) -> int:
    """Where ``tensor`` keeps the batch axis: 0, unless a Transpose on the path moved it.

    The K projections ride on the batch axis wherever it is: the signal of a tensor is shaped like
    the tensor with its batch axis of 1 turned into K. Attention blocks move it: timm's
    ``qkv.reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0)`` has it on axis 1 until the
    unbind, and the dynamo exporter's attention folds it into the heads, ``(B·H, N, D)``, for a
    Transpose and back. Such a *merged* axis holds K·n in the signal where the forward has n, K
    outermost; only reshapes and transposes (``merged_ok``) may see one.

    The axis is followed from the input node by node (``_follow_batch``), and only in graphs with
    a Transpose that moves it; where it cannot be followed, ``node`` is refused.
    """
    axis, reason = _batch_axis_or_reason(ctx, tensor, merged_ok)
    if reason is not None:
        raise ctx.unsupported(node, reason)
    return axis


def _batch_axis_or_reason(ctx: InverseContext, tensor: str, merged_ok: bool) -> tuple[int, str | None]:
    """``batch_axis`` without raising: (axis, None), or (0, why it cannot be told)."""
    if ctx.single:
        return NO_BATCH_AXIS, None
    axes = _batch_axes(ctx)
    if axes is None:
        return 0, None
    found = axes.get(tensor)
    if found is None:
        return 0, f"onnxviz cannot tell where '{tensor}' keeps the batch axis"
    if found[1] != "exact" and not merged_ok:
        return 0, f"the batch axis of '{tensor}' is merged with another axis"
    return found[0], None


def _batch_axes(ctx: InverseContext) -> dict[str, tuple[int, str]] | None:
    """(axis, how) of every signal tensor, followed once per graph; None when no Transpose moves the
    batch axis, so that it is axis 0 everywhere."""
    key = id(ctx.graph)
    cached = _BATCH_AXES.get(key)
    if cached is None or cached[0]() is not ctx.graph:
        for stale in [k for k, (ref, _) in _BATCH_AXES.items() if ref() is None]:
            del _BATCH_AXES[stale]
        moves = any(
            n.op_type == "Transpose" and n.output[0] in ctx.graph.signal and ctx.attr(n, "perm", [1])[0] != 0
            for n in ctx.graph.nodes
        )
        axes: dict[str, tuple[int, str]] | None = None
        if moves:
            axes = {ctx.graph.input_name: (0, "exact")}
            for forward_node in ctx.graph.nodes:
                _follow_batch(ctx, forward_node, axes)
        cached = (weakref.ref(ctx.graph), axes)
        _BATCH_AXES[key] = cached
    return cached[1]


_BATCH_AXES: dict[int, tuple[weakref.ref, dict[str, tuple[int, str]] | None]] = {}

# The batch axis of every tensor of an inverse built for one projection (``ctx.single``), whose
# signal has exactly the forward's shapes: no axis is the batch, and -1 equals no (normalised) axis a
# rule compares it with. A rule that writes -1 there in a reshape target lets the reshape infer the
# one dimension it leaves out, which the forward's shapes make exact.
NO_BATCH_AXIS = -1


def batch_first_reason(ctx: InverseContext, tensor: str) -> str | None:
    """Why ``tensor`` does not keep the batch on axis 0 (None when it does): the check of rules
    written for the batch on axis 0. One projection at a time (``ctx.single``) has no batch axis to
    keep: the rule sees the forward's shapes."""
    if ctx.single:
        return None
    axis, reason = _batch_axis_or_reason(ctx, tensor, merged_ok=False)
    if reason is None and axis != 0:
        reason = f"'{tensor}' keeps the batch axis on axis {axis}"
    return reason


def refuse_moved_target(ctx: InverseContext, node: onnx.NodeProto, g: str) -> None:
    """The seed carries the K projections on axis 0: a target whose batch axis a Transpose moved
    (inside an attention block) cannot be seeded that way. ``g`` is the signal of the first output."""
    tensor = node.output[0]
    if g == SEED and not ctx.single and batch_axis(ctx, node, tensor) != 0:
        raise ctx.unsupported(node, f"'{tensor}' keeps the batch on axis {batch_axis(ctx, node, tensor)}")


def _follow_batch(ctx: InverseContext, node: onnx.NodeProto, axes: dict[str, tuple[int, str]]) -> None:
    """Record (axis, how) of ``node``'s outputs from that of its first input on the path; ``how`` is
    "exact" (K replaces an axis of 1), "outer" (K·n, K outermost) or "inner" (n·K, K innermost)."""
    source = next((t for t in node.input if t in axes and t in ctx.graph.signal), None)
    if source is None or not node.output or node.output[0] not in ctx.shapes or source not in ctx.shapes:
        return
    (p, how), x_shape = axes[source], ctx.shapes[source]
    y_shape = ctx.shapes[node.output[0]]
    rank_in = len(x_shape)
    op = node.op_type
    found: tuple[int, str] | None = None
    by_constants = node.input[0] == source and all(t not in ctx.graph.signal for t in node.input[1:])
    if op == "Transpose":
        found = (list(ctx.attr(node, "perm", list(reversed(range(rank_in))))).index(p), how)
    elif op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
        found = _reshaped_batch(x_shape, y_shape, p, how)
    elif op in ("MatMul", "Gemm") and by_constants and p < rank_in - 1 and not ctx.attr(node, "transA", 0):
        found = (p, how)  # the rows (and leading axes) of a first operand times constants stay put
    elif how != "exact":
        found = (p, how) if op in _ELEMENTWISE and y_shape == x_shape and _flat_along(ctx, node, source, p) else None
    elif op == "Gather" and node.input[0] == source and ctx.constant(node.input[1]) is not None:
        gathered = int(ctx.attr(node, "axis", 0)) % rank_in
        if gathered != p:
            found = (p if gathered > p else p - 1 + ctx.constant(node.input[1]).ndim, "exact")
    elif op == "MatMul":
        # A leading (broadcast) axis of a full-rank operand stays where it is.
        found = (p, how) if p == 0 or (len(y_shape) == rank_in and p < rank_in - 2) else None
    elif op in ("Einsum", "Gemm") or op.startswith("Reduce"):
        found = (0, how) if p == 0 else None  # a moved batch axis is not followed through these
    else:
        found = (p, how)
    if found is None:
        return
    for out in node.output:
        shape = ctx.shapes.get(out)
        if shape is not None and found[0] < len(shape) and (found[1] != "exact" or shape[found[0]] == 1):
            axes[out] = found


_ELEMENTWISE = frozenset({"Identity", "Dropout", "Cast", "Mul", "Div", "Add", "Sub", "Neg"})


def _flat_along(ctx: InverseContext, node: onnx.NodeProto, source: str, axis: int) -> bool:
    """Whether every other input is a constant of length 1 (or absent) along ``axis``, so that it
    broadcasts over a merged batch axis too."""
    rank = len(ctx.shapes[source])
    for tensor in node.input:
        if tensor == source or not tensor:
            continue
        value = ctx.constant(tensor)
        if value is None:
            return False
        index = axis - (rank - value.ndim)
        if index >= 0 and value.shape[index] != 1:
            return False
    return True


def _reshaped_batch(x_shape: tuple[int, ...], y_shape: tuple[int, ...], p: int, how: str) -> tuple[int, str] | None:
    """Where a reshape puts the batch: after the same number of elements as in ``x``. There it
    replaces an axis of 1, or is merged into the axis that starts there (K outermost), or, when
    that is the last axis (the features of a following Gemm), into the axis before it (K
    innermost, one more row per projection). None when the batch block is cut apart."""
    before = math.prod(x_shape[:p]) * (x_shape[p] if how == "inner" else 1)
    for q, size in enumerate(y_shape):
        start = math.prod(y_shape[:q])
        if start == before:
            if size == 1:
                return q, "exact"
            return (q - 1, "inner") if 0 < q == len(y_shape) - 1 else (q, "outer")
        if start > before:
            break
    return None


def signal_zeros(ctx: InverseContext, node: onnx.NodeProto, like: str, like_tensor: str, tensor: str) -> str:
    """Zeros shaped like the signal of ``tensor`` (K on its batch axis), K read from ``like``, the
    signal of forward tensor ``like_tensor``."""
    if ctx.single:
        return ctx.zeros_like_signal(like, tensor)
    axis, like_axis = batch_axis(ctx, node, tensor), batch_axis(ctx, node, like_tensor)
    if axis == 0 and like_axis == 0:
        return ctx.zeros_like_signal(like, tensor)
    k = ctx.op("Slice", [ctx.op("Shape", [like]), ctx.ints([like_axis]), ctx.ints([like_axis + 1])])
    dims = list(ctx.shape(tensor))
    parts = [ctx.ints(dims[:axis]), k, ctx.ints(dims[axis + 1 :])] if dims[axis + 1 :] else [ctx.ints(dims[:axis]), k]
    full = ctx.op("Concat", parts, axis=0)
    return ctx.op("ConstantOfShape", [full], value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))
