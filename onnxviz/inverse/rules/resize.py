"""Resize and Upsample: the adjoint of a resize is its transposed sampling (all modes).

Every mode onnxruntime runs (nearest with any ``nearest_mode``, linear, cubic, with or without
``antialias``) under every ``coordinate_transformation_mode`` resamples each axis on its own:
along axis ``a``, ``y = A_a·x`` with ``A_a`` an (out × in) matrix that depends only on that
axis's lengths, scale and roi (linear and cubic weights of several axes are products of per-axis
weights). So ``x̄`` is ``ȳ`` multiplied by ``A_aᵀ`` along each resized axis: one MatMul per axis.

``A_a`` is not re-derived from the spec. At build time a one-axis resize with the node's own op
version and attributes runs under onnxruntime on the identity basis (plus a zero row, so that
tf_crop_and_resize's constant ``extrapolation_value`` drops out of the linear part): the weights
are exactly those of the kernel the forward runs, with its rounding of nearest indices, its
border clamping and its antialias filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import onnx
from onnx import helper

from onnxviz.graph.attributes import default_opset, node_attr
from onnxviz.graph.emit import GraphEmitter
from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.registry import AnyRule, Rule, Signals, batch_first
from onnxviz.inverse.rules.shape import matmul_along_axis

# Attributes that describe all axes at once; the one-axis resize gets its own values instead.
_WHOLE_NODE_ATTRS = frozenset({"axes", "keep_aspect_ratio_policy", "scales"})


@dataclass(frozen=True)
class AxisResize:
    """What one axis's sampling depends on: lengths, and the scale or target size, and the roi."""

    length_in: int
    length_out: int
    scale: float | None  # given scale (None when sizes are given)
    size: int | None  # given output size (None when scales are given)
    roi: tuple[float, float]  # (start, end), only read by tf_crop_and_resize


def resize_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x, y = node.input[0], node.output[0]
    opset = default_opset(ctx.graph.model)
    axes = _axis_resizes(ctx, node, opset, ctx.shape(x), ctx.shape(y))
    attrs = tuple(a.SerializeToString() for a in node.attribute if a.name not in _WHOLE_NODE_ATTRS)
    rank = len(axes)
    if not _is_identity(node, axes[0]):
        raise ctx.unsupported(node, "it resizes the batch axis")
    for axis in range(1, rank):
        if _is_identity(node, axes[axis]):
            continue
        matrix = axis_sampling_matrix(node.op_type, opset, attrs, axes[axis])
        if matrix is None:
            raise ctx.unsupported(
                node,
                f"its sampling along axis {axis} ({axes[axis].length_in} → {axes[axis].length_out}) cannot be "
                "reproduced by a one-axis resize in onnxruntime",
            )
        if matrix.shape[0] == matrix.shape[1] and np.array_equal(matrix, np.eye(matrix.shape[0], dtype=np.float32)):
            continue
        g = matmul_along_axis(ctx, g, matrix, axis, rank)
    return [g] + [None] * (len(node.input) - 1)


def _is_identity(node: onnx.NodeProto, axis: AxisResize) -> bool:
    """An axis the node leaves alone: same length, scale 1, and no crop."""
    crop = node_attr(node, "coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize"
    same = axis.length_in == axis.length_out and (axis.scale is None or axis.scale == 1.0)
    return same and (not crop or axis.roi == (0.0, 1.0))


def _axis_resizes(
    ctx: InverseContext, node: onnx.NodeProto, opset: int, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> list[AxisResize]:
    """Per-axis lengths, scales/sizes and roi, whichever way (attribute, input, ``axes``) the node says them."""
    rank = len(in_shape)
    inputs = list(node.input) + [""] * (4 - len(node.input))
    roi_name, scales_name, sizes_name = "", "", ""
    if node.op_type == "Upsample" and opset < 9:
        scales = list(node_attr(node, "scales", []))
    else:
        if node.op_type == "Upsample" or opset < 11:
            scales_name = inputs[1]
        else:
            roi_name, scales_name, sizes_name = inputs[1], inputs[2], inputs[3]
        scales = _constant_list(ctx, node, scales_name, "scales")
    sizes: list | None = None
    if sizes_name:
        if node_attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
            raise ctx.unsupported(node, "keep_aspect_ratio_policy other than 'stretch' is not supported")
        constant = ctx.constant(sizes_name)
        # Sizes made by shape arithmetic say no more than the output shape does.
        sizes = list(out_shape) if constant is None else [int(v) for v in constant.reshape(-1)]
    elif scales is None:
        raise ctx.unsupported(node, "its scales are computed from the image, not constant")
    roi = _constant_list(ctx, node, roi_name, "roi") if roi_name else None
    axes = [int(a) % rank for a in node_attr(node, "axes", range(rank))]
    full_scales: list[float | None] = [None if sizes else 1.0] * rank
    full_sizes: list[int | None] = [in_shape[a] if sizes else None for a in range(rank)]
    starts, ends = [0.0] * rank, [1.0] * rank
    listed = len(axes)
    for i, a in enumerate(axes):
        if sizes:
            full_sizes[a] = int(sizes[i])
        elif scales:
            full_scales[a] = float(np.float32(scales[i]))
        if roi:
            starts[a], ends[a] = float(roi[i]), float(roi[i + listed])
    return [
        AxisResize(in_shape[a], out_shape[a], full_scales[a], full_sizes[a], (starts[a], ends[a])) for a in range(rank)
    ]


def _constant_list(ctx: InverseContext, node: onnx.NodeProto, name: str, what: str) -> list | None:
    """A constant input as a list, None when absent or empty (the spec's "not given")."""
    if not name:
        return None
    value = ctx.constant(name)
    if value is None:
        if what == "scales":
            return None
        raise ctx.unsupported(node, f"its {what} are computed from the image, not constant")
    return value.reshape(-1).tolist() or None


@lru_cache(maxsize=256)
def axis_sampling_matrix(op_type: str, opset: int, attrs: tuple[bytes, ...], axis: AxisResize) -> np.ndarray | None:
    """The (out × in) matrix onnxruntime's own kernel applies along one axis, or None when
    onnxruntime will not run the one-axis resize or it does not give the model's output length
    (the node's sizing cannot be reproduced on one axis)."""
    n = axis.length_in
    basis = np.concatenate([np.eye(n, dtype=np.float32), np.zeros((1, n), np.float32)]).reshape(n + 1, 1, 1, n)
    probe = GraphEmitter("one_axis_resize", opset=opset)
    inputs = [probe.input("x", list(basis.shape))]
    if (op_type == "Upsample" and opset >= 9) or (op_type == "Resize" and opset < 11):
        inputs.append(probe.initializer("scales", np.array([1, 1, 1, axis.scale], np.float32)))
    elif op_type == "Resize":
        start, end = axis.roi
        inputs.append(probe.initializer("roi", np.array([0, 0, 0, start, 1, 1, 1, end], np.float32)))
        if axis.size is not None:
            inputs.append(probe.initializer("scales", np.zeros(0, np.float32)))
            inputs.append(probe.initializer("sizes", np.array([n + 1, 1, 1, axis.size], np.int64)))
        else:
            inputs.append(probe.initializer("scales", np.array([1, 1, 1, axis.scale], np.float32)))
    probe.op(op_type, inputs, outputs=[probe.output("y")], name="")
    resize = probe.nodes[-1]
    resize.attribute.extend(onnx.AttributeProto.FromString(a) for a in attrs)
    if op_type == "Upsample" and opset < 9:
        resize.attribute.append(helper.make_attribute("scales", [1.0, 1.0, 1.0, float(axis.scale or 1.0)]))
    model = probe.model(ir_version=8)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: a refusal here is reported (or handled) by onnxviz
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        out = session.run(None, {"x": basis})[0].reshape(n + 1, -1)
    except Exception:  # onnxruntime refuses these attributes on one axis: the caller says so
        return None
    if out.shape[1] != axis.length_out:
        return None
    return np.ascontiguousarray((out[:n] - out[n]).T.astype(np.float32))


RULES: list[AnyRule] = [
    Rule(("Resize", "Upsample"), resize_rule, check=batch_first()),
]
