"""Pooling rules (all three modes use the exact adjoint).

MaxPool → unpooling through the forward's switches (the argmax indices onnxruntime's MaxPool
emits when asked for its second output, flattened per image: ``c·H·W + h·W + w`` at batch 1).
Where windows overlap, two outputs can pick the same input, and the adjoint *adds* both; so:

* ``cpu`` form, non-overlapping windows: MaxUnpool, with the batch-1 switches shifted by
  ``k·C·H·W`` for each of the K projections;
* otherwise (and always in the ``portable`` form, the CUDA provider having no MaxUnpool):
  ScatterElements with ``reduction="add"`` on the flattened maps.

AveragePool → ȳ divided by each window's divisor, spread back over the window by a depthwise
transposed convolution with a kernel of ones. GlobalAveragePool and ReduceMean spread evenly.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto

from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.geometry import explicit_pads, transposed_extent, window_attrs
from onnxviz.inverse.rules.conv import transposed_conv
from onnxviz.inverse.rules.registry import register


def switches_name(node: onnx.NodeProto) -> str:
    """The forward tensor holding this MaxPool's argmax indices (added by the forward rewrite)."""
    return node.output[1] if len(node.output) > 1 and node.output[1] else f"{node.output[0]}__switches"


@register("MaxPool")
def max_pool_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    assert g is not None
    if int(ctx.attr(node, "storage_order", 0)) != 0:
        raise ctx.unsupported(node, "storage_order=1 (column-major switches) is not supported")
    x, y = node.input[0], node.output[0]
    x_sample, y_sample = ctx.sample_shape(x), ctx.sample_shape(y)
    ctx.shapes.setdefault(switches_name(node), ctx.shape(y))
    switches = ctx.forward(switches_name(node), TensorProto.INT64)
    kernel = tuple(int(k) for k in ctx.attr(node, "kernel_shape"))
    strides, dilations = window_attrs(node, kernel)
    begins, ends = explicit_pads(node, ctx.shape(x)[2:], kernel, strides, dilations)
    overlapping = any((k - 1) * d + 1 > s for k, s, d in zip(kernel, strides, dilations, strict=True))
    # MaxUnpool refuses an output smaller than the one its own attributes imply (ceil_mode).
    unpool_fits = all(
        transposed_extent(o, k, s, 1) - b - e <= n
        for o, k, s, b, e, n in zip(y_sample[1:], kernel, strides, begins, ends, x_sample[1:], strict=True)
    )
    x_size, y_size = math.prod(x_sample), math.prod(y_sample)
    batch = ctx.op("Slice", [ctx.op("Shape", [g]), ctx.ints([0]), ctx.ints([1])])
    if ctx.form == "cpu" and not overlapping and unpool_fits:
        count = ctx.op("Squeeze", [batch, ctx.ints([0], "axes")])
        first = ctx.const(np.array(0, np.int64), "zero")
        step = ctx.const(np.array(1, np.int64), "one")
        offsets = ctx.op(
            "Mul", [ctx.op("Range", [first, count, step]), ctx.const(np.array(x_size, np.int64), "image_size")]
        )
        offsets = ctx.op("Reshape", [offsets, ctx.ints([-1] + [1] * len(y_sample))])
        indices = ctx.op("Add", [switches, offsets])
        out_shape = ctx.op("Concat", [batch, ctx.ints(list(x_sample))], axis=0)
        gx = ctx.op(
            "MaxUnpool", [g, indices, out_shape], kernel_shape=list(kernel), strides=strides, pads=begins + ends
        )
        return [gx]
    flat_g = ctx.op("Reshape", [g, ctx.ints([-1, y_size])])
    flat_idx = ctx.op("Expand", [ctx.op("Reshape", [switches, ctx.ints([1, y_size])]), ctx.op("Shape", [flat_g])])
    zeros = ctx.op(
        "ConstantOfShape",
        [ctx.op("Concat", [batch, ctx.ints([x_size])], axis=0)],
        value=onnx.helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]),
    )
    scattered = ctx.op("ScatterElements", [zeros, flat_idx, flat_g], axis=1, reduction="add")
    return [ctx.reshape_to(scattered, x)]


@register("AveragePool")
def average_pool_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    assert g is not None
    x, y = node.input[0], node.output[0]
    kernel = tuple(int(k) for k in ctx.attr(node, "kernel_shape"))
    strides, dilations = window_attrs(node, kernel)
    in_size, out_size = ctx.shape(x)[2:], ctx.shape(y)[2:]
    begins, ends = explicit_pads(node, in_size, kernel, strides, dilations)
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
    channels = ctx.shape(x)[1]
    ones = ctx.const(np.ones((channels, 1, *kernel), np.float32), "window_ones")
    scaled = ctx.op("Div", [g, ctx.const(divisor, "window_divisor")])
    return [transposed_conv(ctx, scaled, ones, out_size, in_size, kernel, strides, dilations, begins, channels)]


def _window_count(start: int, kernel: int, dilation: int, low: int, high: int) -> int:
    """How many taps of a dilated window starting at ``start`` fall inside ``[low, high)``."""
    return sum(1 for t in range(kernel) if low <= start + t * dilation < high)


@register("GlobalAveragePool")
def global_average_pool_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    assert g is not None
    x = node.input[0]
    spatial = ctx.sample_shape(x)[1:]
    return [_spread(ctx, g, x, 1.0 / math.prod(spatial))]


@register("ReduceMean", "ReduceSum")
def reduce_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    assert g is not None
    x = node.input[0]
    shape = ctx.shape(x)
    axes = ctx.attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = ctx.constant(node.input[1]).tolist()
    if axes is None:
        if int(ctx.attr(node, "noop_with_empty_axes", 0)):
            return [g, None]
        axes = list(range(len(shape)))
    axes = sorted(a % len(shape) for a in axes)
    if 0 in axes:
        raise ctx.unsupported(node, "it reduces over the batch axis")
    kept = [1 if a in axes else n for a, n in enumerate(shape)]
    g = ctx.op("Reshape", [g, ctx.ints([-1, *kept[1:]])])
    scale = 1.0 / math.prod(shape[a] for a in axes) if node.op_type == "ReduceMean" else 1.0
    return [_spread(ctx, g, x, scale)] + [None] * (len(node.input) - 1)


def _spread(ctx: InverseContext, g: str, x: str, scale: float) -> str:
    batch = ctx.op("Slice", [ctx.op("Shape", [g]), ctx.ints([0]), ctx.ints([1])])
    expanded = ctx.op("Expand", [g, ctx.op("Concat", [batch, ctx.ints(list(ctx.sample_shape(x)))], axis=0)])
    return expanded if scale == 1.0 else ctx.op("Mul", [expanded, ctx.const(np.array(scale, np.float32), "scale")])
