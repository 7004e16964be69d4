"""GridSample and AffineGrid, a spatial transformer's sampler: exact vector-Jacobian products.

**GridSample** (4-D, bilinear or nearest, ``zeros`` or ``border`` padding). A grid point's pixel
coordinate is ``ix = (gx + 1)/2·(W − 1)`` with ``align_corners``, else ``((gx + 1)·W − 1)/2``
(``border`` clamps it into the image), and bilinear sampling reads the four pixels around it with
weights ``(1 − fx, fx) ⊗ (1 − fy, fy)``, ``fx = ix − ⌊ix⌋``; a pixel outside the image reads 0.

* ``X̄``: each output's signal added to its four pixels with their weights: one ScatterElements.
* ``grid̄``: ``∂y/∂ix = Σ_c ȳ·((1 − fy)(v₀₁ − v₀₀) + fy·(v₁₁ − v₁₀))`` (and the same along y), times
  ``∂ix/∂gx`` (0 where ``border`` clamped the coordinate).

Nearest sampling rounds half to even as onnxruntime does, and its grid gets a zero gradient.
Reflection padding and cubic sampling are refused.

**AffineGrid** ``grid[h, w] = θ·(x_w, y_h, 1)`` is linear in θ: ``θ̄ = Σ_{h,w} ḡ[h, w] ⊗ (x_w, y_h, 1)``,
one MatMul with the constant base grid.
"""

from __future__ import annotations

import numpy as np
import onnx

from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.registry import AnyRule, Rule, Signals

FLOAT, INT64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
LINEAR = ("bilinear", "linear")


def grid_sample_check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
    mode = ctx.attr(node, "mode", "bilinear")
    padding = ctx.attr(node, "padding_mode", "zeros")
    if len(ctx.shape(node.input[0])) != 4:
        return "it samples a volume (5-D); onnxviz inverts 4-D GridSample only"
    if mode not in (*LINEAR, "nearest"):
        return f"mode='{mode}' (cubic sampling) has no rule yet; bilinear and nearest do"
    if padding not in ("zeros", "border"):
        return f"padding_mode='{padding}' has no rule yet; zeros and border do"
    return None


class _Sampler:
    """The forward's sampling positions along one axis (x: the width, y: the height)."""

    def __init__(self, ctx: InverseContext, node: onnx.NodeProto, coordinate: str, size: int) -> None:
        align = int(ctx.attr(node, "align_corners", 0))
        scale = (size - 1) / 2.0 if align else size / 2.0
        self.scale = ctx.const(np.array(scale, np.float32), "scale")
        offset = ctx.const(np.array(scale if align else scale - 0.5, np.float32), "offset")
        position = ctx.op("Add", [ctx.op("Mul", [coordinate, self.scale]), offset])
        self.inside = None
        if ctx.attr(node, "padding_mode", "zeros") == "border":
            low, high = ctx.const(np.array(0.0, np.float32), "low"), ctx.const(np.array(size - 1.0, np.float32), "high")
            self.inside = ctx.op(
                "Cast",
                [ctx.op("And", [ctx.op("Greater", [position, low]), ctx.op("Less", [position, high])])],
                to=FLOAT,
            )
            position = ctx.op("Clip", [position, low, high])
        self.size = size
        if ctx.attr(node, "mode", "bilinear") == "nearest":
            self.taps = [(ctx.op("Round", [position]), None)]
            return
        first = ctx.op("Floor", [position])
        upper = ctx.op("Sub", [position, first])
        lower = ctx.op("Sub", [ctx.const(np.array(1.0, np.float32), "one"), upper])
        second = ctx.op("Add", [first, ctx.const(np.array(1.0, np.float32), "one")])
        self.taps = [(first, lower), (second, upper)]

    def valid(self, ctx: InverseContext, tap: str) -> str:
        low = ctx.op("GreaterOrEqual", [tap, ctx.const(np.array(0.0, np.float32), "zero")])
        high = ctx.op("LessOrEqual", [tap, ctx.const(np.array(self.size - 1.0, np.float32), "last")])
        return ctx.op("And", [low, high])

    def clipped(self, ctx: InverseContext, tap: str) -> str:
        last = ctx.const(np.array(self.size - 1.0, np.float32), "last")
        return ctx.op("Clip", [tap, ctx.const(np.array(0.0, np.float32), "zero"), last])


def grid_sample_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x_name, grid_name = node.input[0], node.input[1]
    _, channels, height, width = ctx.shape(x_name)
    out = ctx.shape(node.output[0])[2:]
    grid = ctx.forward(grid_name)
    flat = ctx.ints([1, 1, out[0] * out[1]], "flat")
    along = [ctx.op("Gather", [grid, ctx.ints([axis], "axis")], axis=3) for axis in (0, 1)]
    xs, ys = _Sampler(ctx, node, along[0], width), _Sampler(ctx, node, along[1], height)
    corners: dict[tuple[int, int], tuple[str, str, str]] = {}  # (y tap, x tap) -> index, valid, weight·valid
    for yi, (ty, wy) in enumerate(ys.taps):
        for xi, (tx, wx) in enumerate(xs.taps):
            valid = ctx.op("Cast", [ctx.op("And", [ys.valid(ctx, ty), xs.valid(ctx, tx)])], to=FLOAT)
            row = ctx.op("Mul", [ys.clipped(ctx, ty), ctx.const(np.array(float(width), np.float32), "width")])
            index = ctx.op("Cast", [ctx.op("Add", [row, xs.clipped(ctx, tx)])], to=INT64)
            weight = valid if wy is None else ctx.op("Mul", [valid, ctx.op("Mul", [wy, wx])])
            corners[yi, xi] = tuple(ctx.op("Reshape", [t, flat]) for t in (index, valid, weight))  # type: ignore[assignment]
    g_flat = ctx.op("Reshape", [g, ctx.ints([-1, channels, out[0] * out[1]], "signal")])
    indices = ctx.op("Concat", [c[0] for c in corners.values()], axis=2)
    updates = ctx.op("Concat", [ctx.op("Mul", [g_flat, c[2]]) for c in corners.values()], axis=2)
    zeros = ctx.op("Reshape", [ctx.zeros_like_signal(g, x_name), ctx.ints([-1, channels, height * width], "image")])
    expanded = ctx.op("Expand", [indices, ctx.op("Shape", [updates])])
    spread = ctx.op("ScatterElements", [zeros, expanded, updates], axis=2, reduction="add")
    result: list[str | None] = [ctx.reshape_to(spread, x_name) if x_name in ctx.graph.signal else None, None]
    if grid_name in ctx.graph.signal:
        result[1] = _grid_signal(ctx, node, g_flat, corners, (xs, ys))
    return result


def _grid_signal(ctx: InverseContext, node: onnx.NodeProto, g_flat: str, corners: dict, samplers: tuple) -> str:
    """∂⟨ȳ, y⟩/∂grid, (K, h, w, 2): the slope of bilinear sampling between the four pixels."""
    grid_name = node.input[1]
    if len(corners) == 1:  # nearest: piecewise constant in the grid
        return ctx.zeros_like_signal(g_flat, grid_name)
    xs, ys = samplers
    channels = ctx.shape(node.input[0])[1]
    image = ctx.op("Reshape", [ctx.forward(node.input[0]), ctx.ints([1, channels, -1], "image")])
    by_channel = ctx.ints([1, channels, 1], "channels")
    v = {}
    for taps, (index, valid, _) in corners.items():
        picked = ctx.op("GatherElements", [image, ctx.op("Expand", [index, by_channel])], axis=2)
        v[taps] = ctx.op("Mul", [picked, valid])
    flat = ctx.ints([1, 1, -1], "flat")
    wy = [ctx.op("Reshape", [w, flat]) for _, w in ys.taps]
    wx = [ctx.op("Reshape", [w, flat]) for _, w in xs.taps]

    def blend(weights: list[str], pairs: list[tuple[tuple[int, int], tuple[int, int]]]) -> str:
        terms = [
            ctx.op("Mul", [w, ctx.op("Sub", [v[high], v[low]])]) for w, (high, low) in zip(weights, pairs, strict=True)
        ]
        return ctx.op("Add", terms)

    slope_x = blend(wy, [((0, 1), (0, 0)), ((1, 1), (1, 0))])
    slope_y = blend(wx, [((1, 0), (0, 0)), ((1, 1), (0, 1))])
    parts = []
    for sampler, slope in ((xs, slope_x), (ys, slope_y)):
        pulled = ctx.op("ReduceSum", [ctx.op("Mul", [g_flat, slope]), ctx.ints([1], "axes")], keepdims=1)
        factor = sampler.scale
        if sampler.inside is not None:
            factor = ctx.op("Mul", [ctx.op("Reshape", [sampler.inside, flat]), factor])
        parts.append(ctx.op("Mul", [pulled, factor]))
    stacked = ctx.op("Concat", parts, axis=1)  # (K, 2, h·w)
    return ctx.reshape_to(ctx.op("Transpose", [stacked], perm=[0, 2, 1]), grid_name)


def affine_grid_check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
    if len(ctx.shape(node.output[0])) != 4:
        return "it builds a volume grid (5-D); onnxviz inverts 2-D affine grids only"
    return None


def _base_axis(size: int, align: bool) -> np.ndarray:
    if align:  # onnxruntime puts a lone point at 1 (torch at 0): the forward decides
        return np.linspace(-1.0, 1.0, size) if size > 1 else np.ones(1)
    return (2.0 * np.arange(size) + 1.0) / size - 1.0


def affine_grid_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    _, height, width, _ = ctx.shape(node.output[0])  # the size input may be the image's Shape
    align = bool(int(ctx.attr(node, "align_corners", 0)))
    ys, xs = np.meshgrid(_base_axis(height, align), _base_axis(width, align), indexing="ij")
    base = np.stack([xs.reshape(-1), ys.reshape(-1), np.ones(height * width)], axis=1).astype(np.float32)
    per_point = ctx.op(
        "Transpose", [ctx.op("Reshape", [g, ctx.ints([-1, height * width, 2], "points")])], perm=[0, 2, 1]
    )
    return [ctx.op("MatMul", [per_point, ctx.const(base, "base_grid")]), None]


RULES: list[AnyRule] = [
    Rule(("GridSample",), grid_sample_rule, check=grid_sample_check),
    Rule(("AffineGrid",), affine_grid_rule, check=affine_grid_check),
]
