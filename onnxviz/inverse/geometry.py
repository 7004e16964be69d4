"""Window geometry shared by convolution and pooling rules: explicit pads, transposed crops."""

from __future__ import annotations

import math

import onnx

from onnxviz.errors import InvalidModelError
from onnxviz.model import node_attr


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
