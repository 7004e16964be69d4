"""DeformConv (deformable convolution v1/v2): its exact vector-Jacobian product in every mode.

Each kernel tap t samples the input bilinearly at ``p = base_t + Δp_t`` (the regular grid's tap
plus the learned offset, in pixels; 0 outside the image) and scales it by the mask ``m_t``:
``y = Σ_t W_t·(m_t·V_t) + B``. With ``u_t = m_t·W_tᵀ·ȳ`` (a 1×1 convolution per tap):

* ``X̄``: ``u_t`` added to the four pixels around ``p`` with their bilinear weights (one
  ScatterElements for all taps), as ``GridSample``'s image signal (``sampling.py``);
* ``Δp̄_t = Σ_c u_t·∂V_t/∂p``, the bilinear slope between the four pixels;
* ``m̄_t = Σ_c (W_tᵀ·ȳ)·V_t``.

One group and one offset group (refused otherwise).
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.registry import AnyRule, Rule, Signals, all_of, batch_first, constant_input

FLOAT, INT64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
WEIGHTS_FROM_IMAGE = "its weights are computed from the image, not constant"
MASK = 4


def deform_conv_check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
    if int(ctx.attr(node, "group", 1)) != 1 or int(ctx.attr(node, "offset_group", 1)) != 1:
        return "it has several groups or offset groups; onnxviz inverts one of each"
    if len(ctx.shape(node.input[0])) != 4:
        return "it is not a 2-D deformable convolution"
    return None


def _scalar(ctx: InverseContext, value: float) -> str:
    return ctx.const(np.array(value, np.float32), "scalar")


def _corners(ctx: InverseContext, ph: str, pw: str, size: tuple[int, int]) -> list[tuple[str, str, str, str]]:
    """Per bilinear corner of (ph, pw), in the order (y0, x0), (y0, x1), (y1, x0), (y1, x1): its flat
    index, whether it lies in the image, its weight (0 outside), and the two axes' weights."""
    height, width = size
    taps = []
    for position in (ph, pw):
        first = ctx.op("Floor", [position])
        upper = ctx.op("Sub", [position, first])
        taps.append(
            [(first, ctx.op("Sub", [_scalar(ctx, 1.0), upper])), (ctx.op("Add", [first, _scalar(ctx, 1.0)]), upper)]
        )
    corners = []
    for ty, wy in taps[0]:
        for tx, wx in taps[1]:
            inside = [
                ctx.op(op, [t, _scalar(ctx, bound)])
                for t, extent in ((ty, height), (tx, width))
                for op, bound in (("GreaterOrEqual", 0.0), ("LessOrEqual", extent - 1.0))
            ]
            valid = ctx.op("Cast", [ctx.op("And", [ctx.op("And", inside[:2]), ctx.op("And", inside[2:])])], to=FLOAT)
            clip_y = ctx.op("Clip", [ty, _scalar(ctx, 0.0), _scalar(ctx, height - 1.0)])
            clip_x = ctx.op("Clip", [tx, _scalar(ctx, 0.0), _scalar(ctx, width - 1.0)])
            index = ctx.op(
                "Cast", [ctx.op("Add", [ctx.op("Mul", [clip_y, _scalar(ctx, float(width))]), clip_x])], to=INT64
            )
            corners.append((index, valid, ctx.op("Mul", [valid, ctx.op("Mul", [wy, wx])]), (wy, wx)))
    return corners


def deform_conv_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x_name, w_name, offset_name = node.input[:3]
    mask_name = node.input[MASK] if len(node.input) > MASK and node.input[MASK] else None
    _, channels, height, width = ctx.shape(x_name)
    out_h, out_w = ctx.shape(node.output[0])[2:]
    weights = ctx.constant(w_name)
    kernel = [int(k) for k in weights.shape[2:]]
    strides, dilations = ctx.attr(node, "strides", [1, 1]), ctx.attr(node, "dilations", [1, 1])
    pads = list(ctx.attr(node, "pads", [0, 0, 0, 0]))
    flat = ctx.ints([1, 1, out_h * out_w], "flat")
    image = ctx.op("Reshape", [ctx.forward(x_name), ctx.ints([1, channels, -1], "image")])
    offsets = ctx.forward(offset_name)
    mask = ctx.forward(mask_name) if mask_name else None
    g_flat_shape = ctx.ints([-1, channels, out_h * out_w], "signal")
    spread_indices, spread_updates, offset_parts, mask_parts = [], [], [], []
    for t in range(math.prod(kernel)):
        i, j = divmod(t, kernel[1])
        base_h = (np.arange(out_h) * strides[0] - pads[0] + i * dilations[0]).astype(np.float32).reshape(1, 1, out_h, 1)
        base_w = (np.arange(out_w) * strides[1] - pads[1] + j * dilations[1]).astype(np.float32).reshape(1, 1, 1, out_w)
        delta = [
            ctx.op("Slice", [offsets, ctx.ints([2 * t + a]), ctx.ints([2 * t + a + 1]), ctx.ints([1])]) for a in (0, 1)
        ]
        ph = ctx.op("Reshape", [ctx.op("Add", [delta[0], ctx.const(base_h, "base")]), flat])
        pw = ctx.op("Reshape", [ctx.op("Add", [delta[1], ctx.const(base_w, "base")]), flat])
        tap_weights = np.ascontiguousarray(weights[:, :, i, j].T)[:, :, None, None].astype(np.float32)  # (C, oC, 1, 1)
        pulled = ctx.op("Reshape", [ctx.op("Conv", [g, ctx.const(tap_weights, "tap")]), g_flat_shape])  # W_tᵀ·ȳ
        m_t = None
        if mask is not None:
            m_t = ctx.op("Reshape", [ctx.op("Slice", [mask, ctx.ints([t]), ctx.ints([t + 1]), ctx.ints([1])]), flat])
        u = pulled if m_t is None else ctx.op("Mul", [pulled, m_t])
        corners = _corners(ctx, ph, pw, (height, width))
        for index, _, weight, _ in corners:
            spread_indices.append(index)
            spread_updates.append(ctx.op("Mul", [u, weight]))
        values = {}
        if offset_name in ctx.graph.signal or mask_name in ctx.graph.signal:
            for number, (index, valid, _, _) in enumerate(corners):
                by_channel = ctx.op("Expand", [index, ctx.ints([1, channels, 1], "channels")])
                values[divmod(number, 2)] = ctx.op(
                    "Mul", [ctx.op("GatherElements", [image, by_channel], axis=2), valid]
                )
        if offset_name in ctx.graph.signal:
            offset_parts += _offset_signal(ctx, u, values, corners)
        if mask_name in ctx.graph.signal:
            sampled = ctx.add_all([ctx.op("Mul", [values[divmod(n, 2)], c[2]]) for n, c in enumerate(corners)])
            mask_parts.append(
                ctx.op("ReduceSum", [ctx.op("Mul", [pulled, sampled]), ctx.ints([1], "axes")], keepdims=1)
            )
    result: list[str | None] = [None] * len(node.input)
    if x_name in ctx.graph.signal:
        result[0] = _image_signal(ctx, g, x_name, spread_indices, spread_updates)
    if offset_parts:
        result[2] = ctx.reshape_to(ctx.op("Concat", offset_parts, axis=1), offset_name)
    if mask_parts:
        result[MASK] = ctx.reshape_to(ctx.op("Concat", mask_parts, axis=1), mask_name)
    return result


def _image_signal(ctx: InverseContext, g: str, x_name: str, indices: list[str], updates: list[str]) -> str:
    """Every tap's bilinear corner contributions added into the image (several taps may sample the
    same pixel)."""
    _, channels, height, width = ctx.shape(x_name)
    joined_indices = ctx.op("Concat", indices, axis=2)
    joined_updates = ctx.op("Concat", updates, axis=2)
    zeros = ctx.op("Reshape", [ctx.zeros_like_signal(g, x_name), ctx.ints([-1, channels, height * width], "image")])
    expanded = ctx.op("Expand", [joined_indices, ctx.op("Shape", [joined_updates])])
    scattered = ctx.op("ScatterElements", [zeros, expanded, joined_updates], axis=2, reduction="add")
    return ctx.reshape_to(scattered, x_name)


def _offset_signal(ctx: InverseContext, u: str, values: dict, corners: list) -> list[str]:
    """(Δh̄, Δw̄) of one tap, each (K, 1, n): Σ_c u·(the bilinear slope along that axis)."""
    (wy0, wx0), (wy1, wx1) = corners[0][3], corners[3][3]
    slope_h = ctx.op(
        "Add",
        [
            ctx.op("Mul", [ctx.op("Sub", [values[1, 0], values[0, 0]]), wx0]),
            ctx.op("Mul", [ctx.op("Sub", [values[1, 1], values[0, 1]]), wx1]),
        ],
    )
    slope_w = ctx.op(
        "Add",
        [
            ctx.op("Mul", [ctx.op("Sub", [values[0, 1], values[0, 0]]), wy0]),
            ctx.op("Mul", [ctx.op("Sub", [values[1, 1], values[1, 0]]), wy1]),
        ],
    )
    axes = ctx.ints([1], "axes")
    return [ctx.op("ReduceSum", [ctx.op("Mul", [u, slope]), axes], keepdims=1) for slope in (slope_h, slope_w)]


RULES: list[AnyRule] = [
    Rule(
        ("DeformConv",),
        deform_conv_rule,
        check=all_of(batch_first(), constant_input(1, WEIGHTS_FROM_IMAGE), deform_conv_check),
    ),
]
