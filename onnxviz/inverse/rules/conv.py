"""Conv → transposed convolution with the same weights, no bias (all three modes).

For ``y = conv(x, W)`` the vector-Jacobian product is ``x̄ = conv_transpose(ȳ, W)`` with the same
strides, dilations and groups, cropped to the forward input's padded frame ``[pad_begin,
pad_begin + H)``. Two exact emissions:

* stride 1 (and pads no larger than the dilated kernel): a plain Conv with the weights
  transposed per group and flipped spatially, padded by ``d·(k−1) − pad``. onnxruntime runs Conv
  markedly faster than ConvTranspose on the CPU, and it stays on the GPU.
* otherwise ConvTranspose. The ``cpu`` form uses ConvTranspose's own asymmetric pads and
  ``output_padding``; the ``portable`` form pads nothing and crops with Slice (+Pad), because the
  CUDA provider sends asymmetric ConvTranspose pads to the CPU.

ConvTranspose → Conv with the same weights, strides, dilations and groups: ``y`` is the full
transposed sweep (extent ``(n−1)·s + (k−1)·d + 1``, then ``output_padding`` zeros) with ``b``
cropped at the start, so ``x̄`` is the strided correlation of ``ȳ`` padded back by ``b`` at the
start and by what remains at the end (a trailing slice where ``output_padding`` left more). The
weights (C_in, C_out/group, k…) are already laid out as that Conv's.
"""

from __future__ import annotations

import onnx

from onnxviz.graph.attributes import node_attr
from onnxviz.graph.geometry import Window, explicit_pads, transposed_extent, window_attrs
from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.registry import AnyRule, Rule, Signals, all_of, batch_first, constant_input

INT64_MIN = -(2**63)
WEIGHTS_FROM_IMAGE = "its weights are computed from the image, not constant"


def conv_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x, w = node.input[0], node.input[1]
    weights = ctx.constant(w)
    if weights is None:
        raise ctx.unsupported(node, WEIGHTS_FROM_IMAGE)
    group = int(ctx.attr(node, "group", 1))
    kernel = tuple(int(k) for k in weights.shape[2:])
    strides, dilations = window_attrs(node, kernel)
    in_size = ctx.shape(x)[2:]
    begins, ends = explicit_pads(node, in_size, kernel, strides, dilations)
    w_name = ctx.weight(w, node)
    reach = [(k - 1) * d for k, d in zip(kernel, dilations, strict=True)]
    if all(s == 1 for s in strides) and all(p <= r for p, r in zip(begins + ends, reach + reach, strict=True)):
        flipped = _transposed_flipped(ctx, w_name, tuple(weights.shape), group)
        pads = [r - b for r, b in zip(reach, begins, strict=True)] + [r - e for r, e in zip(reach, ends, strict=True)]
        gx = ctx.op("Conv", [g, flipped], pads=pads, dilations=dilations, group=group, kernel_shape=list(kernel))
    else:
        window = Window(kernel, strides, dilations, begins, ends)
        gx = transposed_conv(ctx, g, w_name, (ctx.shape(node.output[0])[2:], in_size), window, group)
    return [gx] + [None] * (len(node.input) - 1)


def transposed_conv(
    ctx: InverseContext,
    g: str,
    w_name: str,
    sizes: tuple[tuple[int, ...], tuple[int, ...]],
    window: Window,
    group: int,
) -> str:
    """ConvTranspose of ``g`` landing exactly on the forward input frame (shared with pooling);
    ``sizes``: the forward output's and input's spatial sizes."""
    (out_size, in_size), kernel = sizes, window.kernel
    strides, dilations, begins = window.strides, window.dilations, window.begins
    extents = [transposed_extent(o, k, s, d) for o, k, s, d in zip(out_size, kernel, strides, dilations, strict=True)]
    common = {"strides": strides, "dilations": dilations, "group": group, "kernel_shape": list(kernel)}
    if ctx.form == "cpu":
        tail = [e - b - n for e, b, n in zip(extents, begins, in_size, strict=True)]
        out_pad = [max(0, -t) for t in tail]
        if all(op < max(s, d) for op, s, d in zip(out_pad, strides, dilations, strict=True)):
            return ctx.op(
                "ConvTranspose",
                [g, w_name],
                pads=begins + [max(0, t) for t in tail],
                output_padding=out_pad if any(out_pad) else None,
                **common,
            )
    full = ctx.op("ConvTranspose", [g, w_name], **common)
    return crop_to_frame(ctx, full, extents, in_size, begins)


def crop_to_frame(
    ctx: InverseContext, full: str, extents: list[int], in_size: tuple[int, ...], begins: list[int]
) -> str:
    """Keep ``[begin, begin + size)`` of an unpadded transposed sweep along each spatial axis,
    zero-filling where the sweep stopped short of the frame's end."""
    n = len(in_size)
    axes = list(range(2, 2 + n))
    stops = [min(e, b + s) for e, b, s in zip(extents, begins, in_size, strict=True)]
    if any(b > 0 for b in begins) or any(st < e for st, e in zip(stops, extents, strict=True)):
        full = ctx.op("Slice", [full, ctx.ints(begins, "starts"), ctx.ints(stops, "ends"), ctx.ints(axes, "axes")])
    short = [b + s - st for b, s, st in zip(begins, in_size, stops, strict=True)]
    if any(short):
        full = ctx.op("Pad", [full, ctx.ints([0] * (n + 2) + [0, 0, *short], "pads")])
    return full


def _transposed_flipped(ctx: InverseContext, w_name: str, shape: tuple[int, ...], group: int) -> str:
    """W (O, I/g, k…) → (I, O/g, k…) flipped in space: the kernel of the adjoint stride-1 conv.

    Emitted as graph ops on the shared initializer; onnxruntime folds them when the session loads.
    """
    out_ch, in_per_group, *kernel = shape
    rank = len(shape)
    if group == 1:
        swapped = ctx.op("Transpose", [w_name], perm=[1, 0, *range(2, rank)])
    else:
        split = ctx.op("Reshape", [w_name, ctx.ints([group, out_ch // group, in_per_group, *kernel])])
        swapped5 = ctx.op("Transpose", [split], perm=[0, 2, 1, *range(3, rank + 1)])
        swapped = ctx.op("Reshape", [swapped5, ctx.ints([group * in_per_group, out_ch // group, *kernel])])
    spatial = list(range(2, rank))
    return ctx.op(
        "Slice",
        [
            swapped,
            ctx.ints([-1] * len(spatial), "starts"),
            ctx.ints([INT64_MIN] * len(spatial), "ends"),
            ctx.ints(spatial, "axes"),
            ctx.ints([-1] * len(spatial), "steps"),
        ],
    )


def _transposed_begins(
    node: onnx.NodeProto, sizes: tuple[tuple[int, ...], tuple[int, ...]], window: Window
) -> list[int]:
    """How much of the full sweep a ConvTranspose crops at the start of each spatial axis:
    its ``pads``, or what ``output_shape``/``auto_pad`` make of the total (the ONNX rule)."""
    in_size, out_size = sizes
    auto_pad = node_attr(node, "auto_pad", "NOTSET")
    pads = node_attr(node, "pads")
    if pads is not None and auto_pad in ("NOTSET", "VALID") and node_attr(node, "output_shape") is None:
        return [int(p) for p in pads[: len(in_size)]]
    padding = node_attr(node, "output_padding", [0] * len(in_size))
    begins = []
    for n, o, k, s, d, extra in zip(
        in_size, out_size, window.kernel, window.strides, window.dilations, padding, strict=True
    ):
        total = max(0, s * (n - 1) + extra + (k - 1) * d + 1 - o)
        begins.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
    return begins


def conv_transpose_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    x, w = node.input[0], node.input[1]
    weights = ctx.constant(w)
    kernel = tuple(int(k) for k in weights.shape[2:])
    strides, dilations = window_attrs(node, kernel)
    in_size, out_size = ctx.shape(x)[2:], ctx.shape(node.output[0])[2:]
    window = Window(kernel, strides, dilations, [], [])
    begins = _transposed_begins(node, (in_size, out_size), window)
    ends = [
        (n - 1) * s + (k - 1) * d + 1 - o - b
        for n, s, k, d, o, b in zip(in_size, strides, kernel, dilations, out_size, begins, strict=True)
    ]
    if any(e < 0 for e in ends):  # output_padding beyond the sweep: those positions see no input
        stops = [o + min(e, 0) for o, e in zip(out_size, ends, strict=True)]
        axes = list(range(2, 2 + len(stops)))
        g = ctx.op("Slice", [g, ctx.ints([0] * len(stops), "starts"), ctx.ints(stops, "ends"), ctx.ints(axes, "axes")])
    pads = begins + [max(e, 0) for e in ends]
    group = int(ctx.attr(node, "group", 1))
    gx = ctx.op(
        "Conv",
        [g, ctx.weight(w, node)],
        pads=pads,
        strides=strides,
        dilations=dilations,
        group=group,
        kernel_shape=list(kernel),
    )
    return [gx] + [None] * (len(node.input) - 1)


RULES: list[AnyRule] = [
    Rule(("Conv",), conv_rule, check=all_of(batch_first(), constant_input(1, WEIGHTS_FROM_IMAGE))),
    Rule(("ConvTranspose",), conv_transpose_rule, check=all_of(batch_first(), constant_input(1, WEIGHTS_FROM_IMAGE))),
]
