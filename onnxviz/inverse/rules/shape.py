"""Data-movement ops: the inverse moves the signal back where it came from (all modes).

Reshape/Flatten/Squeeze/Unsqueeze → reshape to the input shape; Transpose → the inverse
permutation; Concat ↔ Slice; Split → Concat (zeros for outputs with no signal); Slice → Pad with
zeros; Pad → Slice; Identity/Dropout/Cast pass the signal on. The K projections ride on the batch
axis: axis 0, or where a Transpose moved it (``batch_axis``); no op may slice or mix it.
"""

from __future__ import annotations

import math
import weakref
from functools import lru_cache

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.registry import register

INT64_MIN = -(2**63)


@register("Identity", "Dropout", "Cast")
def pass_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    return [grads[0]] + [None] * (len(node.input) - 1)


def batch_axis(ctx: InverseContext, node: onnx.NodeProto, tensor: str) -> int:
    """Where ``tensor`` keeps the batch axis: 0, unless a Transpose on the path moved it.

    The K projections ride on the batch axis wherever it is (the signal of a tensor is shaped like
    the tensor with its batch axis of 1 turned into K). Attention blocks move it: timm's
    ``qkv.reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0)`` has it on axis 1 until the
    unbind. It is followed from the input node by node (``_follow_batch``), and only in graphs
    with such a Transpose; where it cannot be followed, ``node`` is refused.
    """
    if not any(
        n.op_type == "Transpose" and n.output[0] in ctx.graph.signal and ctx.attr(n, "perm", [1])[0] != 0
        for n in ctx.graph.nodes
    ):
        return 0
    key = id(ctx.graph)
    cached = _BATCH_AXES.get(key)
    if cached is None or cached[0]() is not ctx.graph:
        axes = {ctx.graph.input_name: 0}
        for node in ctx.graph.nodes:
            _follow_batch(ctx, node, axes)
        cached = (weakref.ref(ctx.graph), axes)
        _BATCH_AXES[key] = cached
    axis = cached[1].get(tensor)
    if axis is None:
        raise ctx.unsupported(node, f"onnxviz cannot tell where '{tensor}' keeps the batch axis")
    return axis


_BATCH_AXES: dict[int, tuple[weakref.ref, dict[str, int]]] = {}


def _follow_batch(ctx: InverseContext, node: onnx.NodeProto, axes: dict[str, int]) -> None:
    """Record the batch axis of ``node``'s outputs from that of its first input on the path."""
    source = next((t for t in node.input if t in axes and t in ctx.graph.signal), None)
    if source is None or not node.output or node.output[0] not in ctx.shapes or source not in ctx.shapes:
        return
    p, x_shape = axes[source], ctx.shapes[source]
    rank_in = len(x_shape)
    op = node.op_type
    if op == "Transpose":
        axis = list(ctx.attr(node, "perm", list(reversed(range(rank_in))))).index(p)
    elif op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
        axis = _reshaped_batch(x_shape, ctx.shapes[node.output[0]], p)
    elif op == "Gather" and node.input[0] == source and ctx.constant(node.input[1]) is not None:
        gathered = int(ctx.attr(node, "axis", 0)) % rank_in
        axis = p if gathered > p else p - 1 + ctx.constant(node.input[1]).ndim if gathered < p else None
    elif op == "MatMul":
        # A leading (broadcast) axis of a full-rank operand stays where it is.
        keeps = len(ctx.shapes[node.output[0]]) == rank_in and p < rank_in - 2
        axis = p if p == 0 or keeps else None
    elif op in ("Einsum", "Gemm") or op.startswith("Reduce"):
        axis = p if p == 0 else None  # a moved batch axis is not followed through these
    else:
        axis = p
    for out in node.output:
        if axis is not None and out in ctx.shapes and axis < len(ctx.shapes[out]) and ctx.shapes[out][axis] == 1:
            axes[out] = axis


def _reshaped_batch(x_shape: tuple[int, ...], y_shape: tuple[int, ...], p: int) -> int | None:
    """The axis of ``y`` that holds ``x``'s batch axis ``p`` after a reshape, if the reshape keeps
    it whole: the same number of elements before it and after it (size-1 neighbours are
    interchangeable in memory, so the first fitting axis is as good as any)."""
    before, after = math.prod(x_shape[:p]), math.prod(x_shape[p + 1 :])
    for q, size in enumerate(y_shape):
        if size == 1 and math.prod(y_shape[:q]) == before and math.prod(y_shape[q + 1 :]) == after:
            return q
    return None


def _signal_zeros(ctx: InverseContext, node: onnx.NodeProto, like: str, like_tensor: str, tensor: str) -> str:
    """Zeros shaped like the signal of ``tensor`` (K on its batch axis), K read from ``like``, the
    signal of forward tensor ``like_tensor``."""
    axis, like_axis = batch_axis(ctx, node, tensor), batch_axis(ctx, node, like_tensor)
    if axis == 0 and like_axis == 0:
        return ctx.zeros_like_signal(like, tensor)
    k = ctx.op("Slice", [ctx.op("Shape", [like]), ctx.ints([like_axis]), ctx.ints([like_axis + 1])])
    dims = list(ctx.shape(tensor))
    parts = [ctx.ints(dims[:axis]), k, ctx.ints(dims[axis + 1 :])] if dims[axis + 1 :] else [ctx.ints(dims[:axis]), k]
    full = ctx.op("Concat", parts, axis=0)
    return ctx.op("ConstantOfShape", [full], value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))


@register("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def reshape_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    if g is None:
        return [None] * len(node.input)
    x, y = node.input[0], node.output[0]
    x_axis, y_axis = batch_axis(ctx, node, x), batch_axis(ctx, node, y)
    if x_axis == 0 and y_axis == 0:
        return [ctx.reshape_to(g, x)] + [None] * (len(node.input) - 1)
    x_shape, y_shape = ctx.shape(x), ctx.shape(y)
    # With nothing but ones before the batch axis on both sides, each image's block is contiguous
    # in both layouts, so the K-batch signal reshapes block by block.
    if math.prod(x_shape[:x_axis]) != 1 or math.prod(y_shape[:y_axis]) != 1:
        raise ctx.unsupported(node, "it mixes the batch axis with other axes")
    target = list(x_shape)
    target[x_axis] = -1
    return [ctx.op("Reshape", [g, ctx.ints(target)])] + [None] * (len(node.input) - 1)


@register("Transpose")
def transpose_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    if g is None:
        return [None]
    x = node.input[0]
    rank = len(ctx.shape(x))
    perm = list(ctx.attr(node, "perm", list(reversed(range(rank)))))
    if perm.index(batch_axis(ctx, node, x)) != batch_axis(ctx, node, node.output[0]):
        raise ctx.unsupported(node, f"perm {perm} moves the batch axis where onnxviz cannot follow it")
    return [ctx.op("Transpose", [g], perm=[int(i) for i in np.argsort(perm)])]


@register("Concat")
def concat_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    if g is None:
        return [None] * len(node.input)
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


@register("Split")
def split_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    some, some_tensor = next((g, t) for g, t in zip(grads, node.output, strict=True) if g is not None)
    x = node.input[0]
    rank = len(ctx.shape(x))
    axis = int(ctx.attr(node, "axis", 0)) % rank
    if axis == batch_axis(ctx, node, x):
        raise ctx.unsupported(node, "it splits along the batch axis")
    parts = [
        g if g is not None else _signal_zeros(ctx, node, some, some_tensor, out)
        for g, out in zip(grads, node.output, strict=True)
    ]
    return [ctx.op("Concat", parts, axis=axis)] + [None] * (len(node.input) - 1)


@register("Slice")
def slice_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    if g is None:
        return [None] * len(node.input)
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
            return [_signal_zeros(ctx, node, g, node.output[0], x)] + [None] * (len(node.input) - 1)
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


@register("Pad")
def pad_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    if g is None:
        return [None] * len(node.input)
    mode = ctx.attr(node, "mode", "constant")
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
        given = ctx.constant(node.input[3])
        if given is None:
            raise ctx.unsupported(node, "its axes are not constant")
        axes = [int(a) % rank for a in given.tolist()]
    n = len(axes)
    widths = {axis: (int(pads[i]), int(pads[i + n])) for i, axis in enumerate(axes)}
    if any(widths.get(0, (0, 0))):
        raise ctx.unsupported(node, "it pads the batch axis")
    widths.pop(0, None)
    if mode == "constant":
        return [_unpad_constant(ctx, g, shape, widths)] + [None] * (len(node.input) - 1)
    if mode not in ("reflect", "edge", "wrap"):
        raise ctx.unsupported(node, f"mode '{mode}'")
    dims = list(ctx.shape(node.output[0]))
    for axis, (begin, end) in widths.items():
        if not begin and not end:
            continue
        sources = _pad_sources(mode, shape[axis], begin, end)
        if sources is None:
            raise ctx.unsupported(
                node, f"onnxruntime cannot pad an axis of {shape[axis]} by ({begin}, {end}) in {mode} mode"
            )
        g = _fold_back(ctx, g, sources, axis, rank, shape[axis])
        dims[axis] = shape[axis]
    return [g] + [None] * (len(node.input) - 1)


def _unpad_constant(ctx: InverseContext, g: str, shape: tuple[int, ...], widths: dict[int, tuple[int, int]]) -> str:
    """Constant padding: keep the interior (Slice); zeros where negative pads had cropped (Pad)."""
    rank = len(shape)
    starts, ends, sliced_axes, restore_before, restore_after = [], [], [], [0] * rank, [0] * rank
    for axis, (b, e) in widths.items():
        kept = shape[axis] - max(-b, 0) - max(-e, 0)
        starts.append(max(b, 0))
        ends.append(max(b, 0) + kept)
        sliced_axes.append(axis)
        restore_before[axis], restore_after[axis] = max(-b, 0), max(-e, 0)
    if sliced_axes:
        g = ctx.op("Slice", [g, ctx.ints(starts, "starts"), ctx.ints(ends, "ends"), ctx.ints(sliced_axes, "axes")])
    if any(restore_before) or any(restore_after):
        g = ctx.op("Pad", [g, ctx.ints(restore_before + restore_after, "pads")])
    return g


@lru_cache(maxsize=256)
def _pad_sources(mode: str, length: int, begin: int, end: int) -> tuple[int, ...] | None:
    """For each position of a padded axis, the input position onnxruntime copies there (−1: none).

    Read from onnxruntime's own Pad on ``1…length``, so its border rules (reflect without the
    edge, large pads, negative pads) are the ones the forward ran.
    """
    import onnxruntime as ort

    pad = helper.make_node("Pad", ["x", "pads"], ["y"], mode=mode)
    graph = helper.make_graph(
        [pad],
        "one_axis_pad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [length])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.array([begin, end], np.int64), "pads")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        out = session.run(None, {"x": np.arange(1, length + 1, dtype=np.float32)})[0]
    except Exception:
        return None
    return tuple(int(v) - 1 for v in out)


def _fold_back(ctx: InverseContext, g: str, sources: tuple[int, ...], axis: int, rank: int, length: int) -> str:
    """The adjoint of copying input position ``sources[p]`` to output position ``p`` along ``axis``:
    each input position receives the *sum* of the signal at every position copied from it.

    The copy pattern is cut into runs that step by +1 (interior, wrap), −1 (reflected borders) or
    0 (edge borders); each run is one Slice (reversed, or summed) padded into place.
    """
    terms = []
    p = 0
    while p < len(sources):
        if sources[p] < 0:
            p += 1
            continue
        q = p + 1
        step = 1
        if q < len(sources) and sources[q] >= 0 and sources[q] - sources[p] in (-1, 0, 1):
            step = sources[q] - sources[p]
            while q < len(sources) and sources[q] >= 0 and sources[q] - sources[q - 1] == step:
                q += 1
        piece = g
        if (p, q) != (0, len(sources)):
            piece = ctx.op("Slice", [g, ctx.ints([p], "starts"), ctx.ints([q], "ends"), ctx.ints([axis], "axes")])
        if step == -1:
            piece = ctx.op(
                "Slice",
                [
                    piece,
                    ctx.ints([-1], "starts"),
                    ctx.ints([INT64_MIN], "ends"),
                    ctx.ints([axis], "axes"),
                    ctx.ints([-1], "steps"),
                ],
            )
            low, width = sources[q - 1], q - p
        elif step == 0:
            if q - p > 1:
                piece = ctx.op("ReduceSum", [piece, ctx.ints([axis], "axes")], keepdims=1)
            low, width = sources[p], 1
        else:
            low, width = sources[p], q - p
        if low or length - low - width:
            pads = [0] * (2 * rank)
            pads[axis], pads[rank + axis] = low, length - low - width
            piece = ctx.op("Pad", [piece, ctx.ints(pads, "pads")])
        terms.append(piece)
        p = q
    return ctx.add_all(terms)


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


@register("Expand")
def expand_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    x, y = node.input[0], node.output[0]
    if g is None or x not in ctx.graph.signal:
        return [None, None]
    if len(ctx.shape(x)) != len(ctx.shape(y)):
        raise ctx.unsupported(node, "it adds leading axes, so the batch axis moves")
    return [ctx.reduce_to(g, y, x), None]


@register("Tile")
def tile_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    x = node.input[0]
    if g is None or x not in ctx.graph.signal:
        return [None, None]
    repeats = ctx.constant(node.input[1])
    if repeats is None:
        raise ctx.unsupported(node, "its repeats are not constant")
    repeats = [int(r) for r in repeats.tolist()]
    if repeats[0] != 1:
        raise ctx.unsupported(node, "it tiles the batch axis")
    dims = ctx.sample_shape(x)
    if all(r == 1 for r in repeats):
        return [g, None]
    split = [-1] + [v for r, d in zip(repeats[1:], dims, strict=True) for v in (r, d)]
    copies = ctx.op("Reshape", [g, ctx.ints(split)])
    axes = [1 + 2 * i for i in range(len(dims))]
    return [ctx.op("ReduceSum", [copies, ctx.ints(axes, "axes")], keepdims=0), None]


@register("Gather")
def gather_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    x = node.input[0]
    if g is None or x not in ctx.graph.signal:
        return [None, None]
    indices = ctx.constant(node.input[1])
    if indices is None:
        raise ctx.unsupported(node, "its indices are computed from the image, not constant")
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


@register("GatherElements")
def gather_elements_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    x = node.input[0]
    if g is None or x not in ctx.graph.signal:
        return [None, None]
    indices = ctx.constant(node.input[1])
    if indices is None:
        raise ctx.unsupported(node, "its indices are computed from the image, not constant")
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


@register("DepthToSpace", "SpaceToDepth")
def depth_space_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    """Both are a reshape, a transpose and a reshape: undone by the inverse transpose."""
    g = grads[0]
    if g is None:
        return [None]
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
