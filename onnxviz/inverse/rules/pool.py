"""Pooling rules (all three modes use the exact adjoint).

MaxPool → unpooling through the forward's switches (the argmax indices onnxruntime's MaxPool
emits when asked for its second output, flattened per image: ``c·H·W + h·W + w`` at batch 1).
Where windows overlap, two outputs can pick the same input, and the adjoint *adds* both; so:

* ``cpu`` form, non-overlapping windows: MaxUnpool, with the batch-1 switches shifted by
  ``k·C·H·W`` for each of the K projections;
* otherwise (and always in the ``portable`` form, the CUDA provider having no MaxUnpool):
  ScatterElements with ``reduction="add"`` on the flattened maps;
* in the ``standard`` form, no scatter at all (``unpool_by_taps``): each output's signal is put on
  the window tap its switch names (a one-hot over the taps) and spread back by one grouped
  ConvTranspose whose kernels are those one-hots; overlapping windows add, as ConvTranspose adds.

MaxPool with ``storage_order=1`` (column-major switches) gets row-major switches recomputed inside
the inverse graph from the forward input (``argmax_switches``); GlobalMaxPool, ReduceMax and
ReduceMin route ȳ to the first extreme position of each reduced group, the same tie rule.

MaxUnpool, which writes each value where its MaxPool's switch points, reads the signal back from
there: its indices are a constant, or the forward's MaxPool indices (``Indices``, row-major), read
as switches are.

AveragePool → ȳ divided by each window's divisor, spread back over the window by a depthwise
transposed convolution with a kernel of ones. GlobalAveragePool and ReduceMean spread evenly.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto

from onnxviz.graph.geometry import Window, explicit_pads, transposed_extent, window_attrs
from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.activation import rectified_at_pooled
from onnxviz.inverse.rules.conv import transposed_conv
from onnxviz.inverse.rules.registry import AnyRule, Rule, Signals, batch_first


def switches_name(node: onnx.NodeProto) -> str:
    """The forward tensor holding this MaxPool's argmax indices (added by the forward rewrite)."""
    return node.output[1] if len(node.output) > 1 and node.output[1] else f"{node.output[0]}__switches"


def max_pool_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x, y = node.input[0], node.output[0]
    kernel = tuple(int(k) for k in ctx.attr(node, "kernel_shape"))
    strides, dilations = window_attrs(node, kernel)
    begins, ends = explicit_pads(node, ctx.shape(x)[2:], kernel, strides, dilations)
    if int(ctx.attr(node, "storage_order", 0)) != 0:
        # Column-major switches: recompute row-major ones rather than translate them.
        switches = argmax_switches(ctx, x, ctx.shape(y), kernel, strides, dilations, begins)
    else:
        ctx.shapes.setdefault(switches_name(node), ctx.shape(y))
        switches = ctx.forward(switches_name(node), TensorProto.INT64)
    window = Window(kernel, strides, dilations, begins, ends)
    return [unpool(ctx, rectified_at_pooled(ctx, node, g, window.overlapping), switches, (x, y), window)]


def unpool(
    ctx: InverseContext,
    g: str,
    switches: str,
    tensors: tuple[str, str],
    window: Window,
) -> str:
    """Send each output's signal to the input position its switch names (adding where two meet);
    ``tensors``: the pool's input and output."""
    (x, y), kernel, strides = tensors, window.kernel, window.strides
    begins, ends = window.begins, window.ends
    x_sample, y_sample = ctx.sample_shape(x), ctx.sample_shape(y)
    # MaxUnpool refuses an output smaller than the one its own attributes imply (ceil_mode).
    unpool_fits = all(
        transposed_extent(o, k, s, 1) - b - e <= n
        for o, k, s, b, e, n in zip(y_sample[1:], kernel, strides, begins, ends, x_sample[1:], strict=True)
    )
    x_size, y_size = math.prod(x_sample), math.prod(y_sample)
    batch = ctx.op("Slice", [ctx.op("Shape", [g]), ctx.ints([0]), ctx.ints([1])])
    if ctx.form == "standard" and len(kernel) == 2:
        # Read per map (``h·W + w``), so switches counted from the start of the batch need no Mod.
        return unpool_by_taps(ctx, g, switches, (x_sample, y_sample), window)
    if ctx.form == "cpu" and not window.overlapping and unpool_fits:
        # onnxruntime's switches count from the start of the batch, as MaxUnpool reads them. Paired
        # (the forward ran on the K inputs the K signals belong to), they are read as they are;
        # otherwise the one forward image's switches are shifted by k·C·H·W for signal k.
        indices = switches if ctx.paired else _shifted_per_signal(ctx, switches, batch, x_size, len(y_sample))
        out_shape = ctx.op("Concat", [batch, ctx.ints(list(x_sample))], axis=0)
        return ctx.op(
            "MaxUnpool", [g, indices, out_shape], kernel_shape=list(kernel), strides=strides, pads=begins + ends
        )
    if ctx.paired and ctx.form == "cpu":
        # Switches count from the start of the batch and seed k is input k's: one row, the whole
        # batch flattened, with no Mod to bring each switch back into its image.
        rows, width = ctx.ints([1]), ctx.op("Mul", [batch, ctx.ints([x_size])])
        flat_g, flat_idx = ctx.op("Reshape", [g, ctx.ints([1, -1])]), ctx.op("Reshape", [switches, ctx.ints([1, -1])])
    else:  # per input, counted from its own start: each switch brought back into its image
        switches = ctx.op("Mod", [switches, ctx.const(np.array(x_size, np.int64), "image_size")])
        rows, width = batch, ctx.ints([x_size])
        flat_g = ctx.op("Reshape", [g, ctx.ints([-1, y_size])])
        flat_idx = ctx.op("Expand", [ctx.op("Reshape", [switches, ctx.ints([-1, y_size])]), ctx.op("Shape", [flat_g])])
    zero = onnx.helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])
    zeros = ctx.op("ConstantOfShape", [ctx.op("Concat", [rows, width], axis=0)], value=zero)
    scattered = ctx.op("ScatterElements", [zeros, flat_idx, flat_g], axis=1, reduction="add")
    return ctx.reshape_to(scattered, x)


def unpool_by_taps(
    ctx: InverseContext, g: str, switches: str, samples: tuple[tuple[int, ...], ...], window: Window
) -> str:
    """MaxPool's adjoint without a scatter, for 2-D pools: the switch of each output (a flat index
    counted from the start of the batch, of which only ``h·W + w`` is read) names a tap t of its
    window; g·[tap = t] for every t, as C·T channels, goes through a ConvTranspose with group C
    whose kernel for (c, t) is 1 at tap t, then the pads are cut away (or zeros added where the
    last windows stop short of the input)."""
    (channels, height, width), (_, rows, cols) = samples
    kernel, strides, dilations, begins = window.kernel, window.strides, window.dilations, window.begins
    taps = int(np.prod(kernel))
    within = ctx.op("Mod", [switches, ctx.const(np.array(height * width, np.int64), "map_size")])
    row = ctx.op("Div", [within, ctx.const(np.array(width, np.int64), "width")])
    col = ctx.op("Mod", [within, ctx.const(np.array(width, np.int64), "width")])
    top = (np.arange(rows) * strides[0] - begins[0]).reshape(1, 1, rows, 1).astype(np.int64)
    left = (np.arange(cols) * strides[1] - begins[1]).reshape(1, 1, 1, cols).astype(np.int64)
    tap_row = ctx.op("Div", [ctx.op("Sub", [row, ctx.const(top, "window_top")]), ctx.const(np.int64(dilations[0]))])
    tap_col = ctx.op("Div", [ctx.op("Sub", [col, ctx.const(left, "window_left")]), ctx.const(np.int64(dilations[1]))])
    tap = ctx.op("Add", [ctx.op("Mul", [tap_row, ctx.const(np.int64(kernel[1]), "kernel_width")]), tap_col])
    every_tap = ctx.const(np.arange(taps, dtype=np.int64).reshape(1, 1, taps, 1, 1), "taps")
    picked = ctx.op("Equal", [ctx.op("Unsqueeze", [tap, ctx.ints([2], "axes")]), every_tap])
    spread = ctx.op("Mul", [ctx.op("Cast", [picked], to=TensorProto.FLOAT), ctx.op("Unsqueeze", [g, ctx.ints([2])])])
    stacked = ctx.op("Reshape", [spread, ctx.ints([-1, channels * taps, rows, cols])])
    one_hots = np.zeros((channels * taps, 1, *kernel), np.float32)
    for t in range(taps):
        one_hots[t::taps, 0, t // kernel[1], t % kernel[1]] = 1.0
    swept = ctx.op(
        "ConvTranspose",
        [stacked, ctx.const(one_hots, "tap_kernels")],
        group=channels,
        strides=strides,
        dilations=dilations,
    )
    extent = [
        transposed_extent(o, k, s, d) for o, k, s, d in zip((rows, cols), kernel, strides, dilations, strict=True)
    ]
    short = [max(0, b + n - e) for b, n, e in zip(begins, (height, width), extent, strict=True)]
    if any(short):
        swept = ctx.op("Pad", [swept, ctx.ints([0, 0, 0, 0, 0, 0, *short], "pads")])
    bounds = [ctx.ints(begins, "starts"), ctx.ints([begins[0] + height, begins[1] + width], "ends"), ctx.ints([2, 3])]
    return ctx.op("Slice", [swept, *bounds])


def _shifted_per_signal(ctx: InverseContext, switches: str, batch: str, image_size: int, rank: int) -> str:
    """The forward image's switches (batch 1) repeated for each of the K signals, signal k's
    shifted by ``k·image_size`` into its own image of the unpooled batch."""
    count = ctx.op("Squeeze", [batch, ctx.ints([0], "axes")])
    first = ctx.const(np.array(0, np.int64), "zero")
    step = ctx.const(np.array(1, np.int64), "one")
    offsets = ctx.op("Mul", [ctx.op("Range", [first, count, step]), ctx.const(np.array(image_size, np.int64))])
    offsets = ctx.op("Reshape", [offsets, ctx.ints([-1] + [1] * rank)])
    return ctx.op("Add", [switches, offsets])


def _stacked_taps(
    ctx: InverseContext,
    padded: str,
    taps: list[tuple[int, ...]],
    out_spatial: tuple[int, ...],
    strides: list[int],
    dilations: list[int],
) -> str:
    """(1, C, taps, *out_spatial): the value each window sees at each tap, one strided Slice a tap."""
    axes = list(range(2, 2 + len(out_spatial)))
    stacked = []
    for tap in taps:
        starts = [t * d for t, d in zip(tap, dilations, strict=True)]
        stops = [st + (o - 1) * s + 1 for st, o, s in zip(starts, out_spatial, strides, strict=True)]
        bounds = [
            ctx.ints(starts, "starts"),
            ctx.ints(stops, "ends"),
            ctx.ints(axes, "axes"),
            ctx.ints(strides, "steps"),
        ]
        window = ctx.op("Slice", [padded, *bounds])
        stacked.append(ctx.op("Unsqueeze", [window, ctx.ints([2], "axes")]))
    return ctx.op("Concat", stacked, axis=2)


def argmax_switches(
    ctx: InverseContext,
    x: str,
    y_shape: tuple[int, ...],
    kernel: tuple[int, ...],
    strides: list[int],
    dilations: list[int],
    begins: list[int],
) -> str:
    """MaxPool's switches computed inside the inverse graph from the forward input: per window,
    the flat index ``c·H·W + h·W + w`` of its first maximum in row-major window order, which is
    the one onnxruntime's Indices output names (it keeps a maximum until a strictly larger one).

    Each window tap is a strided Slice of the input padded with −∞; ArgMax over the stacked taps
    (first index on ties) picks the tap, and the tap's offset is added to the window's origin.
    """
    in_shape = ctx.shape(x)
    spatial, out_spatial = in_shape[2:], y_shape[2:]
    needed = [
        transposed_extent(o, k, s, d) - b - n
        for o, k, s, d, b, n in zip(out_spatial, kernel, strides, dilations, begins, spatial, strict=True)
    ]
    padded = ctx.op(
        "Pad",
        [
            ctx.forward(x),
            ctx.ints([0, 0, *begins, 0, 0, *(max(0, e) for e in needed)], "pads"),
            ctx.const(np.array(-np.inf, np.float32), "minus_infinity"),
        ],
    )
    taps = list(np.ndindex(*kernel))
    stacked = _stacked_taps(ctx, padded, taps, out_spatial, strides, dilations)
    choice = ctx.op("ArgMax", [stacked], axis=2, keepdims=0, select_last_index=0)  # the first maximum
    row_sizes = [math.prod(spatial[i + 1 :]) for i in range(len(spatial))]
    tap_offsets = np.array(
        [sum(t * d * r for t, d, r in zip(tap, dilations, row_sizes, strict=True)) for tap in taps], np.int64
    )
    switches = ctx.op("Gather", [ctx.const(tap_offsets, "tap_offsets"), choice])
    channel_origin = (np.arange(in_shape[1], dtype=np.int64) * math.prod(spatial)).reshape(1, -1, *[1] * len(spatial))
    switches = ctx.op("Add", [switches, ctx.const(channel_origin, "channel_origin")])
    for axis, (o, s, b, r) in enumerate(zip(out_spatial, strides, begins, row_sizes, strict=True)):
        origin = ((np.arange(o, dtype=np.int64) * s - b) * r).reshape(
            [1, 1] + [o if a == axis else 1 for a in range(len(spatial))]
        )
        switches = ctx.op("Add", [switches, ctx.const(origin, "window_origin")])
    return switches


def pool_window(ctx: InverseContext, node: onnx.NodeProto) -> tuple[Window, tuple[int, ...], tuple[int, ...]]:
    """A pooling node's window, with its input's and its output's spatial sizes."""
    kernel = tuple(int(k) for k in ctx.attr(node, "kernel_shape"))
    strides, dilations = window_attrs(node, kernel)
    in_size, out_size = ctx.shape(node.input[0])[2:], ctx.shape(node.output[0])[2:]
    begins, ends = explicit_pads(node, in_size, kernel, strides, dilations)
    return Window(kernel, strides, dilations, begins, ends), in_size, out_size


def window_sums_back(ctx: InverseContext, g: str, x: str, window: Window, sizes: tuple) -> str:
    """Each input position gets the sum of ``g`` over the windows that hold it: a transposed
    convolution with a kernel of ones per channel. ``sizes``: the output's and input's spatial sizes."""
    channels = ctx.shape(x)[1]
    ones = ctx.const(np.ones((channels, 1, *window.kernel), np.float32), "window_ones")
    return transposed_conv(ctx, g, ones, sizes, window, channels)


def average_pool_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x = node.input[0]
    window, in_size, out_size = pool_window(ctx, node)
    kernel, strides, dilations, begins, ends = (
        window.kernel,
        window.strides,
        window.dilations,
        window.begins,
        window.ends,
    )
    include_pad = int(ctx.attr(node, "count_include_pad", 0)) == 1
    divisor = np.ones((1, 1, *out_size), np.float32)
    for axis, (o, k, s, d, b, e, n) in enumerate(
        zip(out_size, kernel, strides, dilations, begins, ends, in_size, strict=True)
    ):
        counts = np.array(
            [_window_count(i * s - b, k, d, -b if include_pad else 0, n + e if include_pad else n) for i in range(o)],
            np.float32,
        )
        divisor = divisor * counts.reshape([1, 1] + [o if a == axis else 1 for a in range(len(out_size))])
    scaled = ctx.op("Div", [g, ctx.const(divisor, "window_divisor")])
    return [window_sums_back(ctx, scaled, x, window, (out_size, in_size))]


def _window_count(start: int, kernel: int, dilation: int, low: int, high: int) -> int:
    """How many taps of a dilated window starting at ``start`` fall inside ``[low, high)``."""
    return sum(1 for t in range(kernel) if low <= start + t * dilation < high)


def global_average_pool_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x = node.input[0]
    spatial = ctx.sample_shape(x)[1:]
    return [_spread(ctx, g, x, 1.0 / math.prod(spatial))]


def reduce_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x = node.input[0]
    shape = ctx.shape(x)
    axes = reduced_axes(ctx, node)
    if not axes:
        return [g] + [None] * (len(node.input) - 1)
    kept = [1 if a in axes else n for a, n in enumerate(shape)]
    g = ctx.op("Reshape", [g, ctx.ints([-1, *kept[1:]])])
    scale = 1.0 / math.prod(shape[a] for a in axes) if node.op_type == "ReduceMean" else 1.0
    return [_spread(ctx, g, x, scale)] + [None] * (len(node.input) - 1)


def reduced_axes(ctx: InverseContext, node: onnx.NodeProto) -> list[int]:
    """The sorted axes a Reduce* node reduces (attribute or, from opset 13/18, input); [] for none."""
    rank = len(ctx.shape(node.input[0]))
    axes = ctx.attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        given = ctx.constant(node.input[1])
        if given is None:
            raise ctx.unsupported(node, "its axes are not constant")
        axes = given.reshape(-1).tolist()
    if not axes:
        if int(ctx.attr(node, "noop_with_empty_axes", 0)):
            return []
        axes = list(range(rank))
    axes = sorted({int(a) % rank for a in axes})
    if 0 in axes:
        raise ctx.unsupported(node, "it reduces over the batch axis")
    return axes


def reduce_extreme_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    """Route ȳ to the input position that gave the maximum (minimum): the first one in row-major
    order over the reduced axes on ties, the rule onnxruntime's MaxPool switches follow."""
    x = node.input[0]
    shape = ctx.shape(x)
    rank = len(shape)
    axes = list(range(2, rank)) if node.op_type == "GlobalMaxPool" else reduced_axes(ctx, node)
    if not axes:
        return [g] + [None] * (len(node.input) - 1)
    kept = [a for a in range(rank) if a not in axes]
    perm = kept + axes
    count = math.prod(shape[a] for a in axes)
    values = ctx.forward(x)
    if perm != list(range(rank)):
        values = ctx.op("Transpose", [values], perm=perm)
    values = ctx.op("Reshape", [values, ctx.ints([shape[a] for a in kept] + [count])])
    pick = "ArgMin" if node.op_type == "ReduceMin" else "ArgMax"
    winner = ctx.op(pick, [values], axis=-1, keepdims=1, select_last_index=0)
    one_hot = ctx.op(
        "Cast",
        [ctx.op("Equal", [ctx.const(np.arange(count, dtype=np.int64), "positions"), winner])],
        to=TensorProto.FLOAT,
    )
    g = ctx.op("Reshape", [g, ctx.ints([-1, *(shape[a] for a in kept[1:]), 1])])
    routed = ctx.op("Mul", [one_hot, g])
    routed = ctx.op("Reshape", [routed, ctx.ints([-1, *(shape[a] for a in perm[1:])])])
    if perm != list(range(rank)):
        routed = ctx.op("Transpose", [routed], perm=[int(i) for i in np.argsort(perm)])
    return [routed] + [None] * (len(node.input) - 1)


def _spread(ctx: InverseContext, g: str, x: str, scale: float) -> str:
    batch = ctx.op("Slice", [ctx.op("Shape", [g]), ctx.ints([0]), ctx.ints([1])])
    expanded = ctx.op("Expand", [g, ctx.op("Concat", [batch, ctx.ints(list(ctx.sample_shape(x)))], axis=0)])
    return expanded if scale == 1.0 else ctx.op("Mul", [expanded, ctx.const(np.array(scale, np.float32), "scale")])


RULES: list[AnyRule] = [
    Rule(("MaxPool",), max_pool_rule, check=batch_first()),
    Rule(("AveragePool",), average_pool_rule, check=batch_first()),
    Rule(("GlobalAveragePool",), global_average_pool_rule, check=batch_first()),
    Rule(("ReduceMean", "ReduceSum"), reduce_rule, check=batch_first()),
    Rule(("ReduceMax", "ReduceMin", "GlobalMaxPool"), reduce_extreme_rule, check=batch_first()),
]
