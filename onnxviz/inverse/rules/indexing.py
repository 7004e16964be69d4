"""Indexing ops with constant indices: the signal goes back to the positions it came from (all modes).

Such an op moves elements without changing them, so its adjoint adds each output element's
signal back at the input position it was read from. Rather than restate each op's indexing, the
rule asks the op itself: the ONNX reference implementation (``onnx.reference``) runs the node once
at build time on the input's flat positions (1…n, 0 marking an element read from nowhere: Trilu's
zeros, CenterCropPad's padding), and the inverse is one ScatterElements adding the signal back
there. This covers GatherND, Compress, CenterCropPad and Trilu.

* ScatterElements (and the deprecated Scatter) and ScatterND write ``updates`` into ``data``:
  with ``reduction="none"`` the data's signal is the output's except where an update overwrote
  it, and each update gets the signal of the position it was written to (0 when a later update
  overwrote it); ``add``: both get the output's signal; ``mul`` (distinct positions): the data's
  is ``ȳ·u``, the update's ``ȳ·data``. ``max``/``min`` are refused.
* TopK (values): the inverse recomputes the indices with TopK on the forward input, so ties go
  where the forward sent them, and adds the signal back there.
* CumSum: the cumulative sum the other way (``reverse`` flipped, ``exclusive`` kept).
* Col2Im (PyTorch's fold) adds each column element into one image position (or the padding):
  its adjoint reads the signal back from there (PyTorch's unfold), positions computed at build time.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from onnxviz.graph.attributes import default_opset
from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.registry import AnyRule, Rule, Signals, all_of, batch_first

ON_PATH_INDICES = "its indices (or other index operands) are computed from the image, not constant"
NOT_BATCHED = "its output does not keep the batch of one image on axis 0"


def _evaluate(ctx: InverseContext, node: onnx.NodeProto, overrides: dict[int, np.ndarray]) -> np.ndarray:
    """The node's first output by the ONNX reference, every input a constant or an override."""
    inits = []
    for slot, tensor in enumerate(node.input):
        if not tensor:
            continue
        value = overrides.get(slot)
        value = ctx.constant(tensor) if value is None else value
        inits.append(numpy_helper.from_array(np.asarray(value), f"i{slot}"))
    names = [f"i{slot}" if tensor else "" for slot, tensor in enumerate(node.input)]
    copy = helper.make_node(node.op_type, names, ["out"] + [f"o{i}" for i in range(1, len(node.output))])
    copy.attribute.extend(node.attribute)
    graph = helper.make_graph([copy], "positions", [], [helper.make_tensor_value_info("out", 0, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", default_opset(ctx.graph.model))])
    return np.asarray(ReferenceEvaluator(model).run(["out"], {})[0])


def _flat_positions(size: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.arange(1, size + 1, dtype=np.float64).reshape(shape)


def scatter_back(ctx: InverseContext, g: str, positions: np.ndarray, x: str) -> str:
    """x̄ shaped like the signal of ``x``: element j of ``g`` (flat over the sample) added at flat
    position ``positions[j]`` of x's sample; −1 drops it."""
    positions = positions.reshape(-1).astype(np.int64)
    n = math.prod(ctx.sample_shape(x))
    flat = ctx.op("Reshape", [g, ctx.ints([-1, positions.size])])
    kept = np.flatnonzero(positions >= 0)
    zeros = ctx.op("Reshape", [ctx.zeros_like_signal(g, x), ctx.ints([-1, n])])
    if kept.size == 0:
        return ctx.reshape_to(zeros, x)
    if kept.size < positions.size:
        flat = ctx.op("Gather", [flat, ctx.ints(kept.tolist(), "kept")], axis=1)
    indices = ctx.op("Expand", [ctx.const(positions[kept][None, :], "positions"), ctx.op("Shape", [flat])])
    return ctx.reshape_to(ctx.op("ScatterElements", [zeros, indices, flat], axis=1, reduction="add"), x)


def gather_back(ctx: InverseContext, g: str, positions: np.ndarray, like: str) -> str:
    """The signal of ``like`` whose element j is ``g``'s at flat position ``positions[j]`` of its
    sample (0 at −1)."""
    flat_g = ctx.op("Flatten", [g], axis=1)
    positions = positions.reshape(-1).astype(np.int64)
    picked = ctx.op("Gather", [flat_g, ctx.ints(np.maximum(positions, 0).tolist(), "positions")], axis=1)
    if np.any(positions < 0):
        picked = ctx.op("Mul", [picked, ctx.const((positions >= 0).astype(np.float32)[None, :], "written")])
    return ctx.reshape_to(picked, like)


def batched_check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
    """Both the signal input and the output keep the one image on axis 0, and every other input is
    a constant."""
    signal = set(ctx.graph.signal_inputs(node))
    if any(t and i not in signal and ctx.constant(t) is None for i, t in enumerate(node.input)):
        return ON_PATH_INDICES
    if ctx.shape(node.output[0])[:1] != (1,):
        return NOT_BATCHED
    return batch_first()(ctx, node)


def moved_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    """GatherND, Compress, CenterCropPad, Trilu: x̄ adds ȳ back where each element was read."""
    x = node.input[0]
    read_from = _evaluate(ctx, node, {0: _flat_positions(math.prod(ctx.shape(x)), ctx.shape(x))}) - 1
    return [scatter_back(ctx, g, read_from, x)] + [None] * (len(node.input) - 1)


def _update_targets(ctx: InverseContext, node: onnx.NodeProto) -> np.ndarray:
    """The flat data position each update element is written to."""
    shape = ctx.shape(node.input[0])
    indices = ctx.constant(node.input[1]).astype(np.int64)
    if node.op_type == "ScatterND":
        depth = indices.shape[-1]
        prefix = np.where(indices < 0, indices + np.asarray(shape[:depth]), indices).reshape(-1, depth)
        rest = math.prod(shape[depth:])
        starts = np.ravel_multi_index(tuple(prefix.T), shape[:depth]) * rest
        return (starts[:, None] + np.arange(rest)[None, :]).reshape(-1)
    axis = int(ctx.attr(node, "axis", 0)) % len(shape)
    where = list(np.indices(indices.shape))
    where[axis] = np.where(indices < 0, indices + shape[axis], indices)
    return np.ravel_multi_index(tuple(w.reshape(-1) for w in where), shape)


def scatter_check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
    reduction = ctx.attr(node, "reduction", "none")
    if ctx.constant(node.input[1]) is None:
        return ON_PATH_INDICES
    if reduction in ("max", "min"):
        return f"reduction='{reduction}' routes the signal by the values, which this rule does not follow"
    targets = _update_targets(ctx, node)
    if reduction == "mul" and len(np.unique(targets)) < targets.size:
        return "reduction='mul' with several updates at one position"
    return batch_first()(ctx, node)


def scatter_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    data, updates = node.input[0], node.input[2]
    reduction = ctx.attr(node, "reduction", "none")
    targets = _update_targets(ctx, node)
    size = math.prod(ctx.shape(data))
    result: list[str | None] = [None, None, None]
    if reduction == "none":
        last = {int(p): j for j, p in enumerate(targets)}  # a later update overwrites an earlier one
        written = np.full(targets.size, -1, np.int64)
        written[list(last.values())] = list(last.keys())
        kept = np.arange(size)
        kept[targets] = -1
        data_g, update_positions = scatter_back(ctx, g, kept, data), written
    else:
        data_g, update_positions = g, targets
    if reduction == "mul":
        ones = ctx.const(np.ones((1, size), np.float32), "ones")
        flat_updates = ctx.op("Reshape", [ctx.forward(updates), ctx.ints([1, -1])])
        factors = ctx.op("ScatterElements", [ones, ctx.const(targets[None, :], "targets"), flat_updates], axis=1)
        data_g = ctx.op("Mul", [ctx.op("Reshape", [g, ctx.ints([-1, size])]), factors])
        data_g = ctx.reshape_to(data_g, data)
        g = ctx.op("Mul", [g, ctx.forward(data)])
    if data in ctx.graph.signal:
        result[0] = data_g
    if updates in ctx.graph.signal:
        result[2] = gather_back(ctx, g, update_positions, updates)
    return result


def _top_k(ctx: InverseContext, node: onnx.NodeProto) -> tuple[int, str]:
    rank = len(ctx.shape(node.input[0]))
    axis = int(ctx.attr(node, "axis", -1)) % rank
    k = ctx.attr(node, "k") if len(node.input) < 2 else int(np.asarray(ctx.constant(node.input[1])).reshape(-1)[0])
    return axis, ctx.ints([int(k)], "k")


def top_k_check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
    if len(node.input) > 1 and ctx.constant(node.input[1]) is None:
        return "its k is computed from the image, not constant"
    if int(ctx.attr(node, "axis", -1)) % len(ctx.shape(node.input[0])) == 0:
        return "it sorts along the batch axis"
    return None


def top_k_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    axis, k = _top_k(ctx, node)
    attrs = {"axis": axis, "largest": int(ctx.attr(node, "largest", 1)), "sorted": int(ctx.attr(node, "sorted", 1))}
    values, picked = ctx.fresh("TopK:values"), ctx.fresh("TopK:indices")
    ctx.op("TopK", [ctx.forward(node.input[0]), k], outputs=[values, picked], **attrs)
    indices = ctx.op("Expand", [picked, ctx.op("Shape", [g])])
    zeros = ctx.zeros_like_signal(g, node.input[0])
    return [ctx.op("ScatterElements", [zeros, indices, g], axis=axis, reduction="add")] + [None] * (len(node.input) - 1)


def cumsum_check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
    axis = ctx.constant(node.input[1])
    if axis is None:
        return "its axis is computed from the image, not constant"
    if int(np.asarray(axis).reshape(-1)[0]) % len(ctx.shape(node.input[0])) == 0:
        return "it sums along the batch axis"
    return None


def cumsum_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    axis = ctx.ints([int(np.asarray(ctx.constant(node.input[1])).reshape(-1)[0])], "axis")
    attrs = {"exclusive": int(ctx.attr(node, "exclusive", 0)), "reverse": 1 - int(ctx.attr(node, "reverse", 0))}
    return [ctx.op("CumSum", [g, ctx.op("Squeeze", [axis])], **attrs), None]


def _fold_targets(ctx: InverseContext, node: onnx.NodeProto) -> np.ndarray:
    """The flat image position (−1: padding) each element of Col2Im's input lands on."""
    image = [int(v) for v in ctx.constant(node.input[1])]
    block = [int(v) for v in ctx.constant(node.input[2])]
    n = len(image)
    strides, dilations = ctx.attr(node, "strides", [1] * n), ctx.attr(node, "dilations", [1] * n)
    begins = list(ctx.attr(node, "pads", [0] * 2 * n))[:n]
    ends = list(ctx.attr(node, "pads", [0] * 2 * n))[n:]
    grid = [
        (size + b + e - d * (k - 1) - 1) // s + 1
        for size, b, e, d, k, s in zip(image, begins, ends, dilations, block, strides, strict=True)
    ]
    batch, rows, _ = ctx.shape(node.input[0])
    channels = rows // math.prod(block)
    kernel = np.stack(np.unravel_index(np.arange(math.prod(block)), block), axis=1)  # (∏block, n)
    where = np.stack(np.unravel_index(np.arange(math.prod(grid)), grid), axis=1)  # (L, n)
    at = where[None, :, :] * np.asarray(strides) - np.asarray(begins) + kernel[:, None, :] * np.asarray(dilations)
    inside = np.all((at >= 0) & (at < np.asarray(image)), axis=-1)
    flat = np.ravel_multi_index(tuple(np.clip(at, 0, np.asarray(image) - 1).transpose(2, 0, 1)), image)
    per_channel = np.where(inside, flat, -1)  # (∏block, L)
    offsets = (np.arange(batch * channels) * math.prod(image))[:, None, None]
    return np.where(per_channel[None] >= 0, per_channel[None] + offsets, -1).reshape(-1)


def col2im_check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
    if any(ctx.constant(t) is None for t in node.input[1:3]):
        return "its image or block shape is computed from the image, not constant"
    return batch_first()(ctx, node)


def col2im_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    return [gather_back(ctx, g, _fold_targets(ctx, node), node.input[0]), None, None]


RULES: list[AnyRule] = [
    Rule(("GatherND", "Compress", "CenterCropPad", "Trilu"), moved_rule, check=batched_check),
    Rule(("ScatterElements", "Scatter", "ScatterND"), scatter_rule, check=scatter_check),
    Rule(("TopK",), top_k_rule, check=all_of(batch_first(), top_k_check)),
    Rule(("CumSum",), cumsum_rule, check=cumsum_check),
    Rule(("Col2Im",), col2im_rule, check=col2im_check),
]
