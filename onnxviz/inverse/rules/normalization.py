"""Normalisations: their exact adjoints, the same in every mode.

**Mean/variance normalisations** (LayerNormalization, InstanceNormalization, GroupNormalization,
BatchNormalization with batch statistics). Over the normalised axes A (m elements),
``x̂ = (x − μ)·r`` with ``r = 1/√(σ² + ε)``, and ``y = γ·x̂ + β``. With ``h = γ·ȳ``,

    x̄ = r · (h − mean_A(h) − x̂ · mean_A(h·x̂))

μ, σ² and r are recomputed in the inverse graph from the forward input (batch 1). The batch
axis is never reduced: the K projections ride on it, and a forward batch of 1 makes a
normalisation that includes axis 0 the same as one over the other axes of that one sample.
GroupNormalization reshapes to (N, G, C/G·spatial) and normalises over the last axis; its scale
is per group at opset 18 and per channel from opset 21, as the operator's two versions define.

**MeanVarianceNormalization** is the same with its ``axes`` (the batch dropped) and no scale;
ONNX divides by ``σ + 10⁻⁹`` where the formula has ``√(σ² + ε)``: the rule takes ε = 0, a
difference of 10⁻⁹ relative. **RMSNormalization** has no centring: with ``x̂ = x·r``,
``r = 1/√(mean(x²) + ε)``, ``x̄ = r·(h − x̂·mean(h·x̂))``. **LpNormalization**, ``y = x/‖x‖_p``
along ``axis``: ``x̄ = (ȳ − ⟨ȳ, y⟩·∂‖x‖/∂x)/‖x‖``, with ``∂‖x‖/∂x`` = ``y`` (p = 2) or ``sign(x)``
(p = 1).

**LRN**: its exact adjoint, or the paper's pass-through with ``lrn="passthrough"``.

``y_c = x_c / D_c^β`` with ``D_c = k + (α/n)·Σ_{c'∈w(c)} x_{c'}²`` and the window
``w(c) = [c − ⌊(n−1)/2⌋, c + ⌈(n−1)/2⌉]``. Differentiating,

    x̄_i = ȳ_i / D_i^β − (2αβ/n) · x_i · Σ_{c : i∈w(c)} ȳ_c · y_c / D_c

and ``i ∈ w(c)`` ⟺ ``c ∈ [i − ⌈(n−1)/2⌉, i + ⌊(n−1)/2⌋]``: the same channel-window sum with its
pads swapped. Channel-window sums are a Conv with a kernel of ones over channels laid out as a
spatial axis.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from onnxviz.graph.attributes import default_opset, node_attr
from onnxviz.graph.model import ModelGraph
from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.registry import AnyRule, Rule, Signals

FIRST_PER_CHANNEL_GROUP_NORM_OPSET = 21
FIRST_TRAINING_MODE_ATTRIBUTE_OPSET = 14
STATISTICS_USED = "its mean or variance output is used on the image path"


def lrn_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    if ctx.lrn == "passthrough":
        return [g]
    x_name = node.input[0]
    shape = ctx.shape(x_name)
    channels, spatial = shape[1], math.prod(shape[2:])
    size = int(ctx.attr(node, "size"))
    alpha, beta = float(ctx.attr(node, "alpha", 1e-4)), float(ctx.attr(node, "beta", 0.75))
    bias = float(ctx.attr(node, "bias", 1.0))
    low, high = (size - 1) // 2, math.ceil((size - 1) / 2)
    ones = ctx.const(np.ones((1, 1, size, 1), np.float32), "channel_window")
    as_plane = ctx.ints([-1, 1, channels, spatial], "as_plane")
    back = ctx.ints([-1, *shape[1:]], "as_maps")

    def window_sum(t: str, before: int, after: int) -> str:
        plane = ctx.op("Reshape", [t, as_plane])
        summed = ctx.op("Conv", [plane, ones], pads=[before, 0, after, 0], kernel_shape=[size, 1])
        return ctx.op("Reshape", [summed, back])

    x = ctx.forward(x_name)
    scalar = lambda v: ctx.const(np.array(v, np.float32), "scalar")  # noqa: E731
    squares = window_sum(ctx.op("Mul", [x, x]), low, high)
    denom = ctx.op("Add", [scalar(bias), ctx.op("Mul", [squares, scalar(alpha / size)])])
    denom_pow = ctx.op("Pow", [denom, scalar(beta)])
    y_over_d = ctx.op("Div", [ctx.op("Div", [x, denom_pow]), denom])
    direct = ctx.op("Div", [g, denom_pow])
    spread = window_sum(ctx.op("Mul", [g, y_over_d]), high, low)
    cross = ctx.op("Mul", [ctx.op("Mul", [x, spread]), scalar(2.0 * alpha * beta / size)])
    return [ctx.op("Sub", [direct, cross])]


def normalised_vjp(ctx: InverseContext, h: str, x: str, axes: list[int], epsilon: float) -> str:
    """``r·(h − mean(h) − x̂·mean(h·x̂))`` over ``axes``; ``h`` has batch K, ``x`` is the forward
    input (batch 1) laid out like ``h``."""
    mean = ctx.op("ReduceMean", [x], axes=axes, keepdims=1)
    centred = ctx.op("Sub", [x, mean])
    variance = ctx.op("ReduceMean", [ctx.op("Mul", [centred, centred])], axes=axes, keepdims=1)
    epsilon_const = ctx.const(np.array(epsilon, np.float32), "epsilon")
    inv_std = ctx.op("Reciprocal", [ctx.op("Sqrt", [ctx.op("Add", [variance, epsilon_const])])])
    normalised = ctx.op("Mul", [centred, inv_std])
    h_mean = ctx.op("ReduceMean", [h], axes=axes, keepdims=1)
    along = ctx.op("ReduceMean", [ctx.op("Mul", [h, normalised])], axes=axes, keepdims=1)
    return ctx.op("Mul", [inv_std, ctx.op("Sub", [ctx.op("Sub", [h, h_mean]), ctx.op("Mul", [normalised, along])])])


def mvn_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x = node.input[0]
    rank = len(ctx.shape(x))
    axes = sorted({int(a) % rank for a in ctx.attr(node, "axes", [0, 2, 3])} - {0})
    return [normalised_vjp(ctx, g, ctx.forward(x), axes, 0.0)]


def rms_norm_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x_name = node.input[0]
    rank = len(ctx.shape(x_name))
    axes = list(range(max(int(ctx.attr(node, "axis", -1)) % rank, 1), rank))
    x = ctx.forward(x_name)
    epsilon = ctx.const(np.array(float(ctx.attr(node, "epsilon", 1e-5)), np.float32), "epsilon")
    mean_square = ctx.op("ReduceMean", [ctx.op("Mul", [x, x])], axes=axes, keepdims=1)
    inv_rms = ctx.op("Reciprocal", [ctx.op("Sqrt", [ctx.op("Add", [mean_square, epsilon])])])
    normalised = ctx.op("Mul", [x, inv_rms])
    h = ctx.op("Mul", [g, _parameter(ctx, node, 1)])
    along = ctx.op("ReduceMean", [ctx.op("Mul", [h, normalised])], axes=axes, keepdims=1)
    return [ctx.op("Mul", [inv_rms, ctx.op("Sub", [h, ctx.op("Mul", [normalised, along])])]), None]


def lp_normalization_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x_name = node.input[0]
    axis = int(ctx.attr(node, "axis", -1)) % len(ctx.shape(x_name))
    p = int(ctx.attr(node, "p", 2))
    x, y = ctx.forward(x_name), ctx.forward(node.output[0])
    norm = ctx.op("ReduceL2" if p == 2 else "ReduceL1", [x], axes=[axis], keepdims=1)
    along = ctx.op("ReduceSum", [ctx.op("Mul", [g, y]), ctx.ints([axis], "axes")], keepdims=1)
    slope = y if p == 2 else ctx.op("Sign", [x])
    return [ctx.op("Div", [ctx.op("Sub", [g, ctx.op("Mul", [along, slope])]), norm])]


def lp_normalization_check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
    if int(ctx.attr(node, "p", 2)) not in (1, 2):
        return f"p={ctx.attr(node, 'p')} (ONNX defines only 1 and 2)"
    if int(ctx.attr(node, "axis", -1)) % len(ctx.shape(node.input[0])) == 0:
        return "it normalises along the batch axis"
    return None


def _parameter(ctx: InverseContext, node: onnx.NodeProto, index: int) -> str:
    """A scale operand: a constant, or a forward tensor that does not depend on the image."""
    tensor = node.input[index]
    if tensor in ctx.graph.signal:
        raise ctx.unsupported(node, f"its scale '{tensor}' depends on the image")
    return ctx.forward(tensor)


def _per_channel(ctx: InverseContext, node: onnx.NodeProto, index: int, rank: int) -> str:
    """A per-channel operand (C,) reshaped to (C, 1, …) so it broadcasts over (K, C, spatial…)."""
    return ctx.op("Reshape", [_parameter(ctx, node, index), ctx.ints([-1] + [1] * (rank - 2))])


def layer_norm_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x = node.input[0]
    rank = len(ctx.shape(x))
    axis = int(ctx.attr(node, "axis", -1)) % rank
    h = ctx.op("Mul", [g, _parameter(ctx, node, 1)])
    axes = list(range(max(axis, 1), rank))
    gx = normalised_vjp(ctx, h, ctx.forward(x), axes, float(ctx.attr(node, "epsilon", 1e-5)))
    return [gx] + [None] * (len(node.input) - 1)


def instance_norm_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x = node.input[0]
    rank = len(ctx.shape(x))
    h = ctx.op("Mul", [g, _per_channel(ctx, node, 1, rank)])
    gx = normalised_vjp(ctx, h, ctx.forward(x), list(range(2, rank)), float(ctx.attr(node, "epsilon", 1e-5)))
    return [gx, None, None]


def group_norm_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x = node.input[0]
    shape = ctx.shape(x)
    rank, channels = len(shape), shape[1]
    groups = int(ctx.attr(node, "num_groups"))
    if groups <= 0 or channels % groups:
        raise ctx.unsupported(node, f"num_groups={groups} does not divide its {channels} channels")
    per_channel = default_opset(ctx.graph.model) >= FIRST_PER_CHANNEL_GROUP_NORM_OPSET
    grouped = ctx.ints([-1, groups, math.prod(shape[1:]) // groups], "grouped")
    if per_channel:
        h = ctx.op("Reshape", [ctx.op("Mul", [g, _per_channel(ctx, node, 1, rank)]), grouped])
    else:
        per_group = ctx.op("Reshape", [_parameter(ctx, node, 1), ctx.ints([-1, 1], "per_group")])
        h = ctx.op("Mul", [ctx.op("Reshape", [g, grouped]), per_group])
    x_grouped = ctx.op("Reshape", [ctx.forward(x), grouped])
    gx = normalised_vjp(ctx, h, x_grouped, [2], float(ctx.attr(node, "epsilon", 1e-5)))
    return [ctx.reshape_to(gx, x), None, None]


def uses_batch_statistics(graph: ModelGraph, node: onnx.NodeProto) -> bool:
    """A BatchNormalization exported in training mode normalises with the batch's own statistics
    (onnxruntime: ``training_mode=1``, or before opset 14 any running-statistics outputs)."""
    if node.op_type != "BatchNormalization":
        return False
    if default_opset(graph.model) >= FIRST_TRAINING_MODE_ATTRIBUTE_OPSET:
        return int(node_attr(node, "training_mode", 0)) == 1
    return len([o for o in node.output if o]) > 1


def batch_statistics_vjp(ctx: InverseContext, node: onnx.NodeProto, g: str) -> list[str | None]:
    """Training-mode BatchNormalization: per channel over (batch of 1, spatial)."""
    x = node.input[0]
    rank = len(ctx.shape(x))
    if rank < 3:
        raise ctx.unsupported(node, "batch statistics of a single sample without spatial axes are undefined")
    h = ctx.op("Mul", [g, _per_channel(ctx, node, 1, rank)])
    gx = normalised_vjp(ctx, h, ctx.forward(x), list(range(2, rank)), float(ctx.attr(node, "epsilon", 1e-5)))
    return [gx] + [None] * (len(node.input) - 1)


RULES: list[AnyRule] = [
    Rule(("LRN",), lrn_rule),
    Rule(("LayerNormalization",), layer_norm_rule, other_outputs=STATISTICS_USED),
    Rule(("InstanceNormalization",), instance_norm_rule, other_outputs=STATISTICS_USED),
    Rule(("GroupNormalization",), group_norm_rule, other_outputs=STATISTICS_USED),
    Rule(("MeanVarianceNormalization",), mvn_rule),
    Rule(("RMSNormalization",), rms_norm_rule),
    Rule(("LpNormalization",), lp_normalization_rule, check=lp_normalization_check),
]
