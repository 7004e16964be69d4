"""RoiAlign (average mode) with constant boxes: a fixed linear map of the image, inverted exactly.

With the boxes (``rois``) and their image indices constant, each output is a weighted sum of input
pixels: every bin averages ``grid_h × grid_w`` bilinear samples. The weights are computed here at
build time, following onnxruntime's RoiAlign (``half_pixel`` from opset 16, ``output_half_pixel``
before it; a sample more than one pixel outside the image contributes nothing, one within it is
clamped to the border), and the adjoint adds each output's signal back to those pixels with
them: one Gather and one ScatterElements.

Max mode (the sample that wins depends on the values) and boxes computed from the image (a region
proposal network's) are refused, and so are several boxes: the boxes' axis is the output's first,
where the K projections ride.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from onnxviz.graph.attributes import default_opset
from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.registry import AnyRule, Rule, Signals

FIRST_HALF_PIXEL_OPSET = 16


def roi_align_check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
    if ctx.attr(node, "mode", "avg") != "avg":
        return "mode='max' routes the signal by the values, which this rule does not follow"
    if any(ctx.constant(t) is None for t in node.input[1:3]):
        return "its boxes are computed from the image (a region proposal network), not constant"
    rois = ctx.constant(node.input[1])
    if rois.shape[0] != 1:
        return "it pools several boxes, and the projections ride on the boxes' axis; onnxviz inverts one box"
    return None


def _axis_samples(start: float, size: float, bins: int, grid: int, extent: int) -> list[list[tuple[int, float]]]:
    """Per bin along one axis: (pixel, weight) pairs of its samples' linear interpolation (each
    weight already divided by the grid's count along this axis)."""
    out = []
    for b in range(bins):
        taps: list[tuple[int, float]] = []
        for s in range(grid):
            y = start + b * size / bins + (s + 0.5) * size / bins / grid
            if y < -1.0 or y > extent:
                continue
            y = max(y, 0.0)
            low = int(y)
            if low >= extent - 1:
                taps.append((extent - 1, 1.0 / grid))
                continue
            taps += [(low, (1.0 - (y - low)) / grid), (low + 1, (y - low) / grid)]
        out.append(taps)
    return out


def _weights(ctx: InverseContext, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(output position, input pixel, weight) triplets over the flat (box, bin) and (h·w) spaces."""
    height, width = ctx.shape(node.input[0])[2:]
    out_h, out_w = int(ctx.attr(node, "output_height", 1)), int(ctx.attr(node, "output_width", 1))
    ratio, scale = int(ctx.attr(node, "sampling_ratio", 0)), float(ctx.attr(node, "spatial_scale", 1.0))
    half_pixel = default_opset(ctx.graph.model) >= FIRST_HALF_PIXEL_OPSET and (
        ctx.attr(node, "coordinate_transformation_mode", "half_pixel") == "half_pixel"
    )
    offset = 0.5 if half_pixel else 0.0
    triplets = []
    for r, (x1, y1, x2, y2) in enumerate(np.asarray(ctx.constant(node.input[1]), np.float64)):
        start_w, start_h = x1 * scale - offset, y1 * scale - offset
        size_w, size_h = x2 * scale - offset - start_w, y2 * scale - offset - start_h
        if not half_pixel:
            size_w, size_h = max(size_w, 1.0), max(size_h, 1.0)
        grid_h = ratio if ratio > 0 else math.ceil(size_h / out_h)
        grid_w = ratio if ratio > 0 else math.ceil(size_w / out_w)
        rows = _axis_samples(start_h, size_h, out_h, max(grid_h, 1), height)
        cols = _axis_samples(start_w, size_w, out_w, max(grid_w, 1), width)
        for ph, row in enumerate(rows):
            for pw, col in enumerate(cols):
                position = (r * out_h + ph) * out_w + pw
                triplets += [(position, y * width + x, wy * wx) for y, wy in row for x, wx in col]
    if not triplets:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    found = np.asarray(triplets)
    return found[:, 0].astype(np.int64), found[:, 1].astype(np.int64), found[:, 2].astype(np.float32)


def roi_align_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x = node.input[0]
    channels, height, width = ctx.shape(x)[1:]
    outputs, pixels, weights = _weights(ctx, node)
    flat = ctx.op("Reshape", [g, ctx.ints([-1, channels, math.prod(ctx.shape(node.output[0])) // channels])])
    zeros = ctx.op("Reshape", [ctx.zeros_like_signal(flat, x), ctx.ints([-1, channels, height * width], "image")])
    if outputs.size == 0:
        return [ctx.reshape_to(zeros, x), None, None]
    picked = ctx.op("Gather", [flat, ctx.ints(outputs.tolist(), "outputs")], axis=2)
    updates = ctx.op("Mul", [picked, ctx.const(weights.reshape(1, 1, -1), "weights")])
    indices = ctx.op("Expand", [ctx.const(pixels.reshape(1, 1, -1), "pixels"), ctx.op("Shape", [updates])])
    spread = ctx.op("ScatterElements", [zeros, indices, updates], axis=2, reduction="add")
    return [ctx.reshape_to(spread, x), None, None]


RULES: list[AnyRule] = [Rule(("RoiAlign",), roi_align_rule, check=roi_align_check)]
