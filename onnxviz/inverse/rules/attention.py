"""The ONNX ``Attention`` operator (opset 23): its exact vector-Jacobian product in every mode.

``Y = P·V`` with ``P = softmax(S)`` over the keys, ``S = scale·Q·Kᵀ + bias`` (the mask: a float
added, a boolean's False as −∞, ``is_causal``'s keys after the query as −∞). With ``Ȳ`` the signal:

    V̄ = Pᵀ·Ȳ,   P̄ = Ȳ·Vᵀ,   S̄ = P ⊙ (P̄ − rowsum(P̄ ⊙ P)),   Q̄ = scale·S̄·K,   K̄ = scale·S̄ᵀ·Q

P is recomputed in the inverse from the forward's Q and K (batch 1), against which the K
projections broadcast. 3-D inputs (batch, sequence, heads·size) are split into heads as the
operator does. Refused: a key/value cache (``past_key``), ``softcap``, grouped heads
(``kv_num_heads`` ≠ ``q_num_heads``), a mask computed from the image, and another output on the path.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.registry import AnyRule, Rule, Signals

MASK, PAST_KEY = 3, 4


def attention_check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
    given = [i for i, t in enumerate(node.input) if t]
    if any(i >= PAST_KEY for i in given):
        return "it reads a key/value cache (past_key, past_value or nonpad_kv_seqlen)"
    if float(ctx.attr(node, "softcap", 0.0)) != 0.0:
        return "softcap is set"
    q_shape, k_shape = ctx.shape(node.input[0]), ctx.shape(node.input[1])
    heads = _heads(ctx, node)
    if heads[0] != heads[1]:
        return f"it groups {heads[0]} query heads over {heads[1]} key/value heads"
    if MASK in given and ctx.constant(node.input[MASK]) is None:
        return f"its mask '{node.input[MASK]}' is computed from the image, not constant"
    if (
        int(ctx.attr(node, "is_causal", 0))
        and q_shape[-2 if len(q_shape) == 4 else 1] != k_shape[-2 if len(k_shape) == 4 else 1]
    ):
        return "it is causal over a different number of queries and keys"
    return None


def _heads(ctx: InverseContext, node: onnx.NodeProto) -> tuple[int, int]:
    if len(ctx.shape(node.input[0])) == 4:
        return ctx.shape(node.input[0])[1], ctx.shape(node.input[1])[1]
    return int(ctx.attr(node, "q_num_heads", 1)), int(ctx.attr(node, "kv_num_heads", 1))


def _split_heads(ctx: InverseContext, tensor: str, shape: tuple[int, ...], heads: int, batch: int) -> str:
    """(batch, S, H·D) → (batch, H, S, D); 4-D tensors as they are."""
    if len(shape) == 4:
        return tensor
    split = ctx.op("Reshape", [tensor, ctx.ints([batch, shape[1], heads, shape[2] // heads])])
    return ctx.op("Transpose", [split], perm=[0, 2, 1, 3])


def _merge_heads(ctx: InverseContext, tensor: str, shape: tuple[int, ...]) -> str:
    if len(shape) == 4:
        return tensor
    merged = ctx.op("Transpose", [tensor], perm=[0, 2, 1, 3])
    return ctx.op("Reshape", [merged, ctx.ints([-1, *shape[1:]])])


def _probabilities(
    ctx: InverseContext, node: onnx.NodeProto, q: str, k: str, scale: str, sizes: tuple[int, int]
) -> str:
    scores = ctx.op("Mul", [ctx.op("MatMul", [q, ctx.op("Transpose", [k], perm=[0, 1, 3, 2])]), scale])
    minus_infinity = ctx.const(np.array(-np.inf, np.float32), "minus_infinity")
    if len(node.input) > MASK and node.input[MASK]:
        mask = ctx.constant(node.input[MASK])
        if mask.dtype == np.bool_:
            scores = ctx.op("Where", [ctx.const(mask, "mask"), scores, minus_infinity])
        else:
            scores = ctx.op("Add", [scores, ctx.const(mask.astype(np.float32), "mask")])
    if int(ctx.attr(node, "is_causal", 0)):
        allowed = np.tril(np.ones(sizes, dtype=bool))
        scores = ctx.op("Where", [ctx.const(allowed, "causal"), scores, minus_infinity])
    return ctx.op("Softmax", [scores], axis=-1)


def attention_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    q_name, k_name, v_name = node.input[:3]
    shapes = [ctx.shape(t) for t in (q_name, k_name, v_name)]
    q_heads, kv_heads = _heads(ctx, node)
    q, k, v = (
        _split_heads(ctx, ctx.forward(t), s, h, 1)
        for t, s, h in zip((q_name, k_name, v_name), shapes, (q_heads, kv_heads, kv_heads), strict=True)
    )
    head_size = shapes[0][-1] if len(shapes[0]) == 4 else shapes[0][2] // q_heads
    scale_value = ctx.attr(node, "scale")
    scale = ctx.const(np.array(1.0 / math.sqrt(head_size) if scale_value is None else scale_value, np.float32), "scale")
    sequence = lambda s: s[2] if len(s) == 4 else s[1]  # noqa: E731
    p = _probabilities(ctx, node, q, k, scale, (sequence(shapes[0]), sequence(shapes[1])))
    out_shape = ctx.shape(node.output[0])
    g4 = _split_heads(ctx, g, out_shape, q_heads, -1)
    v_bar = ctx.op("MatMul", [ctx.op("Transpose", [p], perm=[0, 1, 3, 2]), g4])
    p_bar = ctx.op("MatMul", [g4, ctx.op("Transpose", [v], perm=[0, 1, 3, 2])])
    along = ctx.op("ReduceSum", [ctx.op("Mul", [p_bar, p]), ctx.ints([-1], "axes")], keepdims=1)
    s_bar = ctx.op("Mul", [ctx.op("Mul", [p, ctx.op("Sub", [p_bar, along])]), scale])
    q_bar = ctx.op("MatMul", [s_bar, k])
    k_bar = ctx.op("MatMul", [ctx.op("Transpose", [s_bar], perm=[0, 1, 3, 2]), q])
    result: list[str | None] = [None] * len(node.input)
    for index, (tensor, bar, shape) in enumerate(
        zip((q_name, k_name, v_name), (q_bar, k_bar, v_bar), shapes, strict=True)
    ):
        if tensor in ctx.graph.signal:
            result[index] = _merge_heads(ctx, bar, shape)
    return result


RULES: list[AnyRule] = [
    Rule(
        ("Attention",),
        attention_rule,
        check=attention_check,
        other_outputs="its key/value cache or score outputs are on the image path",
    ),
]
