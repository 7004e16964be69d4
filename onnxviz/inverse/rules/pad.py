"""Pad's inverse (all modes): constant padding → Slice (zeros where negative pads had cropped);
reflect/edge/wrap → the border folded back onto the interior (a sum), the copy pattern read from
onnxruntime's own Pad so its border rules are the ones the forward ran.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import onnx

from onnxviz.graph.emit import GraphEmitter
from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.registry import AnyRule, Rule, Signals, all_of, batch_first, constant_input
from onnxviz.inverse.rules.shape import INT64_MIN

PADS_FROM_IMAGE = "its pads are not constant"
AXES_FROM_IMAGE = "its axes are not constant"


def pad_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    mode = ctx.attr(node, "mode", "constant")
    shape = ctx.shape(node.input[0])
    rank = len(shape)
    if len(node.input) > 1 and node.input[1]:
        pads = ctx.constant(node.input[1])
        if pads is None:
            raise ctx.unsupported(node, PADS_FROM_IMAGE)
        pads = pads.tolist()
    else:
        pads = list(ctx.attr(node, "pads"))
    axes = list(range(rank))
    if len(node.input) > 3 and node.input[3]:
        given = ctx.constant(node.input[3])
        if given is None:
            raise ctx.unsupported(node, AXES_FROM_IMAGE)
        axes = [int(a) % rank for a in given.tolist()]
    n = len(axes)
    widths = {axis: (int(pads[i]), int(pads[i + n])) for i, axis in enumerate(axes)}
    if any(widths.get(0, (0, 0))):
        raise ctx.unsupported(node, "it pads the batch axis")
    widths.pop(0, None)
    if mode == "constant":
        return [_unpad_constant(ctx, g, shape, widths)] + [None] * (len(node.input) - 1)
    if mode not in ("reflect", "edge", "wrap"):
        raise ctx.unsupported(node, f"mode '{mode}'")
    dims = list(ctx.shape(node.output[0]))
    for axis, (begin, end) in widths.items():
        if not begin and not end:
            continue
        sources = _pad_sources(mode, shape[axis], begin, end)
        if sources is None:
            raise ctx.unsupported(
                node, f"onnxruntime cannot pad an axis of {shape[axis]} by ({begin}, {end}) in {mode} mode"
            )
        g = _fold_back(ctx, g, sources, axis, rank, shape[axis])
        dims[axis] = shape[axis]
    return [g] + [None] * (len(node.input) - 1)


def _unpad_constant(ctx: InverseContext, g: str, shape: tuple[int, ...], widths: dict[int, tuple[int, int]]) -> str:
    """Constant padding: keep the interior (Slice); zeros where negative pads had cropped (Pad)."""
    rank = len(shape)
    starts, ends, sliced_axes, restore_before, restore_after = [], [], [], [0] * rank, [0] * rank
    for axis, (b, e) in widths.items():
        kept = shape[axis] - max(-b, 0) - max(-e, 0)
        starts.append(max(b, 0))
        ends.append(max(b, 0) + kept)
        sliced_axes.append(axis)
        restore_before[axis], restore_after[axis] = max(-b, 0), max(-e, 0)
    if sliced_axes:
        g = ctx.op("Slice", [g, ctx.ints(starts, "starts"), ctx.ints(ends, "ends"), ctx.ints(sliced_axes, "axes")])
    if any(restore_before) or any(restore_after):
        g = ctx.op("Pad", [g, ctx.ints(restore_before + restore_after, "pads")])
    return g


@lru_cache(maxsize=256)
def _pad_sources(mode: str, length: int, begin: int, end: int) -> tuple[int, ...] | None:
    """For each position of a padded axis, the input position onnxruntime copies there (−1: none).

    Read from onnxruntime's own Pad on ``1…length``, so its border rules (reflect without the
    edge, large pads, negative pads) are the ones the forward ran.
    """
    import onnxruntime as ort

    probe = GraphEmitter("one_axis_pad", opset=19)
    probe.op(
        "Pad",
        [probe.input("x", [length]), probe.initializer("pads", np.array([begin, end], np.int64))],
        outputs=[probe.output("y")],
        mode=mode,
    )
    model = probe.model(ir_version=9)
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        out = session.run(None, {"x": np.arange(1, length + 1, dtype=np.float32)})[0]
    except Exception:
        return None
    return tuple(int(v) - 1 for v in out)


def _fold_back(ctx: InverseContext, g: str, sources: tuple[int, ...], axis: int, rank: int, length: int) -> str:
    """The adjoint of copying input position ``sources[p]`` to output position ``p`` along ``axis``:
    each input position receives the *sum* of the signal at every position copied from it.

    The copy pattern is cut into runs that step by +1 (interior, wrap), −1 (reflected borders) or
    0 (edge borders); each run is one Slice (reversed, or summed) padded into place.
    """
    terms = []
    p = 0
    while p < len(sources):
        if sources[p] < 0:
            p += 1
            continue
        q = p + 1
        step = 1
        if q < len(sources) and sources[q] >= 0 and sources[q] - sources[p] in (-1, 0, 1):
            step = sources[q] - sources[p]
            while q < len(sources) and sources[q] >= 0 and sources[q] - sources[q - 1] == step:
                q += 1
        piece = g
        if (p, q) != (0, len(sources)):
            piece = ctx.op("Slice", [g, ctx.ints([p], "starts"), ctx.ints([q], "ends"), ctx.ints([axis], "axes")])
        if step == -1:
            piece = ctx.op(
                "Slice",
                [
                    piece,
                    ctx.ints([-1], "starts"),
                    ctx.ints([INT64_MIN], "ends"),
                    ctx.ints([axis], "axes"),
                    ctx.ints([-1], "steps"),
                ],
            )
            low, width = sources[q - 1], q - p
        elif step == 0:
            if q - p > 1:
                piece = ctx.op("ReduceSum", [piece, ctx.ints([axis], "axes")], keepdims=1)
            low, width = sources[p], 1
        else:
            low, width = sources[p], q - p
        if low or length - low - width:
            pads = [0] * (2 * rank)
            pads[axis], pads[rank + axis] = low, length - low - width
            piece = ctx.op("Pad", [piece, ctx.ints(pads, "pads")])
        terms.append(piece)
        p = q
    return ctx.add_all(terms)


RULES: list[AnyRule] = [
    Rule(
        ("Pad",),
        pad_rule,
        check=all_of(
            batch_first(),
            constant_input(1, PADS_FROM_IMAGE),
            constant_input(3, AXES_FROM_IMAGE),
        ),
    ),
]
