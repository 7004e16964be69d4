"""The ReLU family: the one place where the three modes differ.

With ``f'`` the activation's derivative at the forward input:

* ``deconvnet`` (Zeiler & Fergus): ``relu(ȳ)``; the forward input is ignored;
* ``guided`` (Springenberg et al.): ``relu(ȳ)·[f'(x) > 0]``;
* ``saliency``: the true gradient ``ȳ·f'(x)``.

Each activation only says how to compute ``f'`` from forward tensors; ReLU itself reads its
*output* (``y > 0`` iff ``x > 0``), so onnxruntime keeps fusing Conv+ReLU in the forward session.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx

from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules.registry import register

Derivative = Callable[[InverseContext, onnx.NodeProto], str]


def _scalar(ctx: InverseContext, value: float) -> str:
    return ctx.const(np.array(value, np.float32), "scalar")


def _relu(ctx: InverseContext, node: onnx.NodeProto) -> str:
    return ctx.op(
        "Cast", [ctx.op("Greater", [ctx.forward(node.output[0]), _scalar(ctx, 0.0)])], to=onnx.TensorProto.FLOAT
    )


def _leaky_relu(ctx: InverseContext, node: onnx.NodeProto) -> str:
    x = ctx.forward(node.input[0])
    alpha = float(ctx.attr(node, "alpha", 0.01))
    return ctx.op("Where", [ctx.op("Greater", [x, _scalar(ctx, 0.0)]), _scalar(ctx, 1.0), _scalar(ctx, alpha)])


def _prelu(ctx: InverseContext, node: onnx.NodeProto) -> str:
    x = ctx.forward(node.input[0])
    slope = ctx.forward(node.input[1])
    return ctx.op("Where", [ctx.op("Greater", [x, _scalar(ctx, 0.0)]), _scalar(ctx, 1.0), slope])


def _clip(ctx: InverseContext, node: onnx.NodeProto) -> str:
    x = ctx.forward(node.input[0])
    low, high = ctx.attr(node, "min"), ctx.attr(node, "max")
    if len(node.input) > 1 and node.input[1]:
        low = float(ctx.constant(node.input[1]))
    if len(node.input) > 2 and node.input[2]:
        high = float(ctx.constant(node.input[2]))
    inside = ctx.op(
        "And",
        [
            ctx.op("Greater", [x, _scalar(ctx, -np.inf if low is None else low)]),
            ctx.op("Less", [x, _scalar(ctx, np.inf if high is None else high)]),
        ],
    )
    return ctx.op("Cast", [inside], to=onnx.TensorProto.FLOAT)


def _sigmoid(ctx: InverseContext, node: onnx.NodeProto) -> str:
    y = ctx.forward(node.output[0])
    return ctx.op("Mul", [y, ctx.op("Sub", [_scalar(ctx, 1.0), y])])


def _tanh(ctx: InverseContext, node: onnx.NodeProto) -> str:
    y = ctx.forward(node.output[0])
    return ctx.op("Sub", [_scalar(ctx, 1.0), ctx.op("Mul", [y, y])])


def _hard_sigmoid(ctx: InverseContext, node: onnx.NodeProto) -> str:
    x = ctx.forward(node.input[0])
    alpha, beta = float(ctx.attr(node, "alpha", 0.2)), float(ctx.attr(node, "beta", 0.5))
    z = ctx.op("Add", [ctx.op("Mul", [x, _scalar(ctx, alpha)]), _scalar(ctx, beta)])
    inside = ctx.op("And", [ctx.op("Greater", [z, _scalar(ctx, 0.0)]), ctx.op("Less", [z, _scalar(ctx, 1.0)])])
    return ctx.op("Mul", [ctx.op("Cast", [inside], to=onnx.TensorProto.FLOAT), _scalar(ctx, alpha)])


def _hard_swish(ctx: InverseContext, node: onnx.NodeProto) -> str:
    x = ctx.forward(node.input[0])
    middle = ctx.op("Add", [ctx.op("Mul", [x, _scalar(ctx, 1.0 / 3.0)]), _scalar(ctx, 0.5)])
    upper = ctx.op("Where", [ctx.op("Greater", [x, _scalar(ctx, 3.0)]), _scalar(ctx, 1.0), middle])
    return ctx.op("Where", [ctx.op("Less", [x, _scalar(ctx, -3.0)]), _scalar(ctx, 0.0), upper])


def _elu(ctx: InverseContext, node: onnx.NodeProto) -> str:
    x, y = ctx.forward(node.input[0]), ctx.forward(node.output[0])
    alpha = float(ctx.attr(node, "alpha", 1.0))
    return ctx.op(
        "Where", [ctx.op("Greater", [x, _scalar(ctx, 0.0)]), _scalar(ctx, 1.0), ctx.op("Add", [y, _scalar(ctx, alpha)])]
    )


def _softplus(ctx: InverseContext, node: onnx.NodeProto) -> str:
    return ctx.op("Sigmoid", [ctx.forward(node.input[0])])


DERIVATIVES: dict[str, Derivative] = {
    "Relu": _relu,
    "LeakyRelu": _leaky_relu,
    "PRelu": _prelu,
    "Clip": _clip,
    "Sigmoid": _sigmoid,
    "Tanh": _tanh,
    "HardSigmoid": _hard_sigmoid,
    "HardSwish": _hard_swish,
    "Elu": _elu,
    "Softplus": _softplus,
}


@register(*DERIVATIVES)
def activation_rule(ctx: InverseContext, node: onnx.NodeProto, grads: list[str | None]) -> list[str | None]:
    g = grads[0]
    assert g is not None
    rest: list[str | None] = [None] * (len(node.input) - 1)
    if ctx.mode == "deconvnet":
        return [ctx.op("Relu", [g]), *rest]
    derivative = DERIVATIVES[node.op_type](ctx, node)
    if ctx.mode == "guided":
        positive = ctx.op("Greater", [derivative, _scalar(ctx, 0.0)])
        return [ctx.op("Where", [positive, ctx.op("Relu", [g]), _scalar(ctx, 0.0)]), *rest]
    return [ctx.op("Mul", [g, derivative]), *rest]
