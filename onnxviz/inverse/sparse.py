"""Channel-sparse head: the first transposed conv touches only the selected channels' filters.

A projection of channel c seeds a signal that is zero in every other channel, so between the
target and the conv that made it, the signal of projection k lives in one channel, ``c_k``.
Instead of carrying (K, C, h, w) mostly-zero maps through a dense transposed conv of C input
channels, the head carries (K, 1, h, w) and computes, for each k,

    x̄_k = Σ_j W[c_k, :, j] ⊗ T_j(ḡ_k)

where j runs over the kernel taps and ``T_j`` is the transposed conv of one channel with the
one-hot kernel of tap j (strides, dilations, pads and crop as in the dense rule). ``T`` is one
small ConvTranspose producing (K, taps, H, W); the sum is one batched MatMul of the gathered
filters (K, I, taps) by those maps. The cost drops from K·C·I to K·I multiply-adds per tap
and pixel, and K stays a run-time batch size.

Applies when the target is reached from a group-1 Conv through per-channel elementwise ops
only (the activation, BatchNormalization, Identity/Dropout) — ``convN`` in almost every CNN.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from onnxviz.graph.attributes import node_attr
from onnxviz.graph.geometry import Window, explicit_pads, window_attrs
from onnxviz.graph.model import ModelGraph
from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.modes import rectify
from onnxviz.inverse.rules.activation import DERIVATIVES
from onnxviz.inverse.rules.conv import transposed_conv
from onnxviz.inverse.rules.linear import batch_norm_factor

CHANNELS = "channels"
PER_CHANNEL_OPS = frozenset({"Identity", "Dropout", "BatchNormalization", *DERIVATIVES})


def sparse_chain(graph: ModelGraph, target: str) -> list[onnx.NodeProto] | None:
    """Nodes from the target back to its group-1 Conv, or None when the head does not apply."""
    chain: list[onnx.NodeProto] = []
    tensor = target
    while True:
        node = graph.producer.get(tensor)
        if node is None:
            return None
        chain.append(node)
        if node.op_type == "Conv":
            weights = graph.constants.get(node.input[1])
            group = int(node_attr(node, "group", 1))
            return chain if weights is not None and weights.ndim == 4 and group == 1 else None
        if node.op_type not in PER_CHANNEL_OPS:
            return None
        tensor = node.input[0]


def emit_sparse_head(ctx: InverseContext, chain: list[onnx.NodeProto], seed: str, channels: str) -> str:
    """Emit the head; returns the dense signal (K, I, H, W) at the Conv's input."""
    g = seed
    for node in chain[:-1]:
        ctx.begin(node)
        g = _per_channel(ctx, node, g, channels)
    conv = chain[-1]
    ctx.begin(conv)
    return _sparse_conv(ctx, conv, g, channels)


def _gather_channels(ctx: InverseContext, tensor: str, channels: str) -> str:
    """(1, C, h, w) forward tensor → (K, 1, h, w): the selected channel of each projection."""
    picked = ctx.op("Gather", [tensor, channels], axis=1)
    return ctx.op("Transpose", [picked], perm=[1, 0, 2, 3])


def _per_channel(ctx: InverseContext, node: onnx.NodeProto, g: str, channels: str) -> str:
    if node.op_type in ("Identity", "Dropout"):
        return g
    if node.op_type == "BatchNormalization":
        factor = ctx.const(batch_norm_factor(ctx, node), "bn_factor")
        picked = ctx.op("Reshape", [ctx.op("Gather", [factor, channels], axis=0), ctx.ints([-1, 1, 1, 1])])
        return ctx.op("Mul", [g, picked])
    return rectify(ctx, g, lambda: _picked_derivative(ctx, node, channels))


def _picked_derivative(ctx: InverseContext, node: onnx.NodeProto, channels: str) -> str:
    """The activation's derivative at each projection's channel, (K, 1, h, w)."""
    derivative = DERIVATIVES[node.op_type](ctx, node)
    full = ctx.op("Expand", [derivative, ctx.ints(list(ctx.shape(node.output[0])))])
    return _gather_channels(ctx, full, channels)


def _sparse_conv(ctx: InverseContext, node: onnx.NodeProto, g: str, channels: str) -> str:
    x = node.input[0]
    weights = ctx.constant(node.input[1])
    _, in_channels, *kernel = weights.shape
    kernel = tuple(int(k) for k in kernel)
    taps = math.prod(kernel)
    strides, dilations = window_attrs(node, kernel)
    in_size = ctx.shape(x)[2:]
    window = Window(kernel, strides, dilations, *explicit_pads(node, in_size, kernel, strides, dilations))
    one_hot = ctx.const(np.eye(taps, dtype=np.float32).reshape(1, taps, *kernel), "tap_kernels")
    spread = transposed_conv(ctx, g, one_hot, (ctx.shape(node.output[0])[2:], in_size), window, 1)
    maps = ctx.op("Reshape", [spread, ctx.ints([0, taps, math.prod(in_size)])])
    picked = ctx.op("Gather", [ctx.weight(node.input[1], node), channels], axis=0)
    filters = ctx.op("Reshape", [picked, ctx.ints([-1, in_channels, taps])])
    return ctx.op("Reshape", [ctx.op("MatMul", [filters, maps]), ctx.ints([-1, in_channels, *in_size])])
