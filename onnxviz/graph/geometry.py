"""Window geometry shared by loading and the convolution and pooling rules: explicit pads,
transposed crops."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx

from onnxviz.errors import InvalidModelError
from onnxviz.graph.attributes import node_attr
from onnxviz.graph.ops import WINDOW_OPS


@dataclass(frozen=True)
class Window:
    """A sliding window along the spatial axes: its kernel, strides and dilations, and the explicit
    pads before (``begins``) and after (``ends``) each axis, as ``explicit_pads`` gives them."""

    kernel: tuple[int, ...]
    strides: list[int]
    dilations: list[int]
    begins: list[int]
    ends: list[int]

    @property
    def overlapping(self) -> bool:
        """Whether neighbouring windows share input positions (a dilated extent beyond the stride)."""
        return any((k - 1) * d + 1 > s for k, s, d in zip(self.kernel, self.strides, self.dilations, strict=True))


def window_attrs(node: onnx.NodeProto, kernel: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """Strides and dilations of a Conv/Pool node, defaulting to 1 along every spatial axis."""
    n = len(kernel)
    strides = list(node_attr(node, "strides", [1] * n))
    dilations = list(node_attr(node, "dilations", [1] * n))
    _expect_length(node, "strides", strides, n)
    _expect_length(node, "dilations", dilations, n)
    return strides, dilations


def _expect_length(node: onnx.NodeProto, what: str, values, length: int) -> None:
    """onnx.checker does not compare attribute lengths with the kernel's rank; onnxruntime does."""
    if len(values) != length:
        raise InvalidModelError(
            f"{node.op_type} node '{node.name}' has {len(values)} {what} for a {length}-D window (expected {length}).",
            "The model is invalid (onnxruntime refuses it too); re-export it.",
        )


def explicit_pads(
    node: onnx.NodeProto, in_size: tuple[int, ...], kernel: tuple[int, ...], strides: list[int], dilations: list[int]
) -> tuple[list[int], list[int]]:
    """(begins, ends) that ``auto_pad`` stands for, or the node's own ``pads``."""
    n = len(kernel)
    _expect_length(node, "input spatial sizes", in_size, n)
    auto_pad = node_attr(node, "auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for size, k, s, d in zip(in_size, kernel, strides, dilations, strict=True):
            out = math.ceil(size / s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            small, large = total // 2, total - total // 2
            begins.append(small if auto_pad == "SAME_UPPER" else large)
            ends.append(large if auto_pad == "SAME_UPPER" else small)
        return begins, ends
    if auto_pad == "VALID":
        return [0] * n, [0] * n
    pads = list(node_attr(node, "pads", [0] * (2 * n)))
    _expect_length(node, "pads", pads, 2 * n)
    return pads[:n], pads[n:]


def transposed_extent(out_size: int, kernel: int, stride: int, dilation: int) -> int:
    """Length of a transposed window sweep with no padding: what ConvTranspose(pads=0) returns."""
    return (out_size - 1) * stride + (kernel - 1) * dilation + 1


def make_pads_explicit(
    nodes: list[onnx.NodeProto],
    constants: dict[str, np.ndarray],
    shapes: dict[str, tuple[int, ...]],
) -> bool:
    """Replace ``auto_pad`` by the explicit pads the spec defines, where ``shapes`` give the size.

    onnxruntime departs from the spec on some auto_pad combinations (it refuses Conv with
    SAME_* and dilations, pads pools with SAME_* as if undilated, and keeps windows that
    overhang the input under VALID + ceil_mode); with explicit pads it follows the spec,
    and so the forward run, the shapes and the inverse all agree. Returns whether a node changed.
    """
    changed = False
    for node in auto_padded(nodes):
        weights = constants.get(node.input[1]) if len(node.input) > 1 else None
        kernel = node_attr(node, "kernel_shape") or (weights.shape[2:] if weights is not None else None)
        if node.input[0] not in shapes or kernel is None:
            continue
        kernel = tuple(kernel)
        strides, dilations = window_attrs(node, kernel)
        begins, ends = explicit_pads(node, shapes[node.input[0]][2:], kernel, strides, dilations)
        valid_ceil = node_attr(node, "auto_pad") == "VALID" and node_attr(node, "ceil_mode", 0)
        kept = [a for a in node.attribute if a.name not in ("auto_pad", "pads", "ceil_mode" if valid_ceil else "")]
        del node.attribute[:]
        node.attribute.extend(kept)
        node.attribute.append(onnx.helper.make_attribute("pads", begins + ends))
        changed = True
    return changed


def auto_padded(nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """The windowed nodes whose pads are given by ``auto_pad``."""
    return [n for n in nodes if n.op_type in WINDOW_OPS and node_attr(n, "auto_pad", "NOTSET") != "NOTSET"]
