"""The ReLU family and the other activations: where the three modes differ (``onnxviz.inverse.modes``).

Each activation only says how to compute ``f'`` from forward tensors; ReLU itself reads its
*output* (``y > 0`` iff ``x > 0``), so onnxruntime keeps fusing Conv+ReLU in the forward session.
``Max``/``Min`` with one operand on the image path and constant others are clamps (``Max(x, 0)``
is how some exporters write ReLU) and belong here too; with several operands on the path they are
routing, not activations (``elementwise.py``).

Activations exporters write as several nodes (SiLU as ``x·σ(x)``, the Erf GELU…) are recognised
by ``onnxviz.graph.composite``; ``composite_rule`` gives them the same treatment from the group's
input ``x`` and the derivative formula of the function they compute.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import onnx

from onnxviz.graph.composite import Composite
from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.modes import rectify
from onnxviz.inverse.rules.registry import AnyRule, Rule, Signals

Derivative = Callable[[InverseContext, onnx.NodeProto], str]
FLOAT = onnx.TensorProto.FLOAT
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_TANH_CUBIC = 0.044715
SELU_ALPHA = 1.67326319217681884765625
SELU_GAMMA = 1.05070102214813232421875


def _scalar(ctx: InverseContext, value: float) -> str:
    return ctx.const(np.array(value, np.float32), "scalar")


def _indicator(ctx: InverseContext, condition: str) -> str:
    return ctx.op("Cast", [condition], to=FLOAT)


def _relu(ctx: InverseContext, node: onnx.NodeProto) -> str:
    return ctx.positive(node.output[0])


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
        low = float(_constant_operand(ctx, node, 1))
    if len(node.input) > 2 and node.input[2]:
        high = float(_constant_operand(ctx, node, 2))
    inside = ctx.op(
        "And",
        [
            ctx.op("Greater", [x, _scalar(ctx, -np.inf if low is None else low)]),
            ctx.op("Less", [x, _scalar(ctx, np.inf if high is None else high)]),
        ],
    )
    return _indicator(ctx, inside)


def _constant_operand(ctx: InverseContext, node: onnx.NodeProto, index: int) -> np.ndarray:
    value = ctx.constant(node.input[index])
    if value is None:
        raise ctx.unsupported(node, f"its input '{node.input[index]}' is neither constant nor on the image path")
    return value


def _sigmoid(ctx: InverseContext, node: onnx.NodeProto) -> str:
    y = ctx.forward(node.output[0])
    return ctx.op("Mul", [y, ctx.op("Sub", [_scalar(ctx, 1.0), y])])


def _tanh(ctx: InverseContext, node: onnx.NodeProto) -> str:
    y = ctx.forward(node.output[0])
    return ctx.op("Sub", [_scalar(ctx, 1.0), ctx.op("Mul", [y, y])])


def hard_sigmoid_derivative(ctx: InverseContext, x: str, alpha: float, beta: float) -> str:
    z = ctx.op("Add", [ctx.op("Mul", [x, _scalar(ctx, alpha)]), _scalar(ctx, beta)])
    inside = ctx.op("And", [ctx.op("Greater", [z, _scalar(ctx, 0.0)]), ctx.op("Less", [z, _scalar(ctx, 1.0)])])
    return ctx.op("Mul", [_indicator(ctx, inside), _scalar(ctx, alpha)])


def _hard_sigmoid(ctx: InverseContext, node: onnx.NodeProto) -> str:
    alpha, beta = float(ctx.attr(node, "alpha", 0.2)), float(ctx.attr(node, "beta", 0.5))
    return hard_sigmoid_derivative(ctx, ctx.forward(node.input[0]), alpha, beta)


def hard_swish_derivative(ctx: InverseContext, x: str) -> str:
    """0 below −3, x/3 + ½ up to 3 (inclusive, as torch's hardswish_backward), 1 above."""
    middle = ctx.op("Add", [ctx.op("Mul", [x, _scalar(ctx, 1.0 / 3.0)]), _scalar(ctx, 0.5)])
    upper = ctx.op("Where", [ctx.op("Greater", [x, _scalar(ctx, 3.0)]), _scalar(ctx, 1.0), middle])
    return ctx.op("Where", [ctx.op("Less", [x, _scalar(ctx, -3.0)]), _scalar(ctx, 0.0), upper])


def _hard_swish(ctx: InverseContext, node: onnx.NodeProto) -> str:
    return hard_swish_derivative(ctx, ctx.forward(node.input[0]))


def _elu(ctx: InverseContext, node: onnx.NodeProto) -> str:
    x, y = ctx.forward(node.input[0]), ctx.forward(node.output[0])
    alpha = float(ctx.attr(node, "alpha", 1.0))
    return ctx.op(
        "Where", [ctx.op("Greater", [x, _scalar(ctx, 0.0)]), _scalar(ctx, 1.0), ctx.op("Add", [y, _scalar(ctx, alpha)])]
    )


def _selu(ctx: InverseContext, node: onnx.NodeProto) -> str:
    """γ for x > 0, else γ·α·eˣ = y + γ·α."""
    x, y = ctx.forward(node.input[0]), ctx.forward(node.output[0])
    alpha, gamma = float(ctx.attr(node, "alpha", SELU_ALPHA)), float(ctx.attr(node, "gamma", SELU_GAMMA))
    negative = ctx.op("Add", [y, _scalar(ctx, gamma * alpha)])
    return ctx.op("Where", [ctx.op("Greater", [x, _scalar(ctx, 0.0)]), _scalar(ctx, gamma), negative])


def _celu(ctx: InverseContext, node: onnx.NodeProto) -> str:
    """1 for x > 0, else exp(x/α)."""
    x = ctx.forward(node.input[0])
    alpha = float(ctx.attr(node, "alpha", 1.0))
    negative = ctx.op("Exp", [ctx.op("Div", [x, _scalar(ctx, alpha)])])
    return ctx.op("Where", [ctx.op("Greater", [x, _scalar(ctx, 0.0)]), _scalar(ctx, 1.0), negative])


def _thresholded_relu(ctx: InverseContext, node: onnx.NodeProto) -> str:
    x = ctx.forward(node.input[0])
    return _indicator(ctx, ctx.op("Greater", [x, _scalar(ctx, float(ctx.attr(node, "alpha", 1.0)))]))


def _softplus(ctx: InverseContext, node: onnx.NodeProto) -> str:
    return ctx.op("Sigmoid", [ctx.forward(node.input[0])])


def _softsign(ctx: InverseContext, node: onnx.NodeProto) -> str:
    """1 / (1 + |x|)²."""
    denominator = ctx.op("Add", [_scalar(ctx, 1.0), ctx.op("Abs", [ctx.forward(node.input[0])])])
    return ctx.op("Reciprocal", [ctx.op("Mul", [denominator, denominator])])


def silu_derivative(ctx: InverseContext, x: str) -> str:
    """σ(x)·(1 + x·(1 − σ(x)))."""
    s = ctx.op("Sigmoid", [x])
    one = _scalar(ctx, 1.0)
    x_times_complement = ctx.op("Mul", [x, ctx.op("Sub", [one, s])])
    return ctx.op("Mul", [s, ctx.op("Add", [one, x_times_complement])])


def mish_derivative(ctx: InverseContext, x: str) -> str:
    """With t = tanh(softplus(x)): t + x·(1 − t²)·σ(x)."""
    t = ctx.op("Tanh", [ctx.op("Softplus", [x])])
    sech2 = ctx.op("Sub", [_scalar(ctx, 1.0), ctx.op("Mul", [t, t])])
    slope = ctx.op("Mul", [ctx.op("Mul", [x, sech2]), ctx.op("Sigmoid", [x])])
    return ctx.op("Add", [t, slope])


def gelu_derivative(ctx: InverseContext, x: str) -> str:
    """Φ(x) + x·φ(x) = ½(1 + erf(x/√2)) + x·exp(−x²/2)/√(2π)."""
    erf = ctx.op("Erf", [ctx.op("Mul", [x, _scalar(ctx, math.sqrt(0.5))])])
    cdf = ctx.op("Mul", [ctx.op("Add", [erf, _scalar(ctx, 1.0)]), _scalar(ctx, 0.5)])
    bell = ctx.op("Exp", [ctx.op("Mul", [ctx.op("Mul", [x, x]), _scalar(ctx, -0.5)])])
    pdf = ctx.op("Mul", [bell, _scalar(ctx, 1.0 / math.sqrt(2.0 * math.pi))])
    return ctx.op("Add", [cdf, ctx.op("Mul", [x, pdf])])


def gelu_tanh_derivative(ctx: InverseContext, x: str) -> str:
    """With u = √(2/π)(x + 0.044715x³), t = tanh(u): ½(1 + t) + ½x·(1 − t²)·u'(x),
    u'(x) = √(2/π)(1 + 3·0.044715x²)."""
    square = ctx.op("Mul", [x, x])
    cubic = ctx.op("Mul", [ctx.op("Mul", [square, x]), _scalar(ctx, GELU_TANH_CUBIC)])
    t = ctx.op("Tanh", [ctx.op("Mul", [ctx.op("Add", [x, cubic]), _scalar(ctx, SQRT_2_OVER_PI)])])
    du = ctx.op("Mul", [square, _scalar(ctx, 3.0 * GELU_TANH_CUBIC * SQRT_2_OVER_PI)])
    du = ctx.op("Add", [du, _scalar(ctx, SQRT_2_OVER_PI)])
    sech2 = ctx.op("Sub", [_scalar(ctx, 1.0), ctx.op("Mul", [t, t])])
    half = _scalar(ctx, 0.5)
    outer = ctx.op("Mul", [ctx.op("Add", [t, _scalar(ctx, 1.0)]), half])
    inner = ctx.op("Mul", [ctx.op("Mul", [ctx.op("Mul", [x, half]), sech2]), du])
    return ctx.op("Add", [outer, inner])


def _swish(ctx: InverseContext, node: onnx.NodeProto) -> str:
    """x·σ(αx): σ(αx)·(1 + αx·(1 − σ(αx))), SiLU's derivative at αx but for the leading factor."""
    alpha = _scalar(ctx, float(ctx.attr(node, "alpha", 1.0)))
    scaled = ctx.op("Mul", [ctx.forward(node.input[0]), alpha])
    s = ctx.op("Sigmoid", [scaled])
    one = _scalar(ctx, 1.0)
    return ctx.op("Mul", [s, ctx.op("Add", [one, ctx.op("Mul", [scaled, ctx.op("Sub", [one, s])])])])


def _mish(ctx: InverseContext, node: onnx.NodeProto) -> str:
    return mish_derivative(ctx, ctx.forward(node.input[0]))


def _gelu(ctx: InverseContext, node: onnx.NodeProto) -> str:
    if ctx.attr(node, "approximate", "none") == "tanh":
        return gelu_tanh_derivative(ctx, ctx.forward(node.input[0]))
    return gelu_derivative(ctx, ctx.forward(node.input[0]))


def _clamp(ctx: InverseContext, node: onnx.NodeProto) -> str:
    """Max/Min with constants: 1 where x is strictly beyond the constant bound, 0 elsewhere, ties
    included (ReLU's convention: Relu'(0) = 0 in torch and onnxruntime; Max(x, 0) is a ReLU)."""
    signal = ctx.graph.signal_inputs(node)
    bounds = [_constant_operand(ctx, node, i) for i in range(len(node.input)) if i not in signal]
    compare = "Greater" if node.op_type == "Max" else "Less"
    combine = np.maximum if node.op_type == "Max" else np.minimum
    bound = bounds[0]
    for other in bounds[1:]:
        bound = combine(bound, other)
    x = ctx.forward(node.input[signal[0]])
    return _indicator(ctx, ctx.op(compare, [x, ctx.const(np.asarray(bound, np.float32), "bound")]))


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
    "Selu": _selu,
    "Celu": _celu,
    "ThresholdedRelu": _thresholded_relu,
    "Softplus": _softplus,
    "Softsign": _softsign,
    "Mish": _mish,
    "Gelu": _gelu,
    "Swish": _swish,
}

# The derivative of each composite kind (``onnxviz.graph.composite.KINDS``), from the group's input.
COMPOSITE_DERIVATIVES: dict[str, Callable[[InverseContext, str], str]] = {
    "silu": silu_derivative,
    "gelu": gelu_derivative,
    "gelu_tanh": gelu_tanh_derivative,
    "mish": mish_derivative,
    "hardswish": hard_swish_derivative,
    "hardsigmoid": lambda ctx, x: hard_sigmoid_derivative(ctx, x, 1.0 / 6.0, 0.5),
}


def activation_check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
    """Gelu's approximation must be one the derivative knows; the bounds of Clip and of a Max/Min
    clamp must be constants (read by the deconvnet mode too: it checks what it cannot invert)."""
    if node.op_type == "Gelu":
        approximate = ctx.attr(node, "approximate", "none")
        if approximate not in ("none", "tanh"):
            return f"approximate='{approximate}' (only 'none' and 'tanh' exist)"
    if node.op_type == "Clip":
        return _constant_operands_reason(ctx, node, [i for i in (1, 2) if i < len(node.input) and node.input[i]])
    return None


def clamp_check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
    """A Max/Min clamp's bounds (the operands off the image path) must be constants."""
    signal = ctx.graph.signal_inputs(node)
    return _constant_operands_reason(ctx, node, [i for i in range(len(node.input)) if i not in signal])


def _constant_operands_reason(ctx: InverseContext, node: onnx.NodeProto, indices: list[int]) -> str | None:
    for index in indices:
        if ctx.constant(node.input[index]) is None:
            return f"its input '{node.input[index]}' is neither constant nor on the image path"
    return None


def activation_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    rest: list[str | None] = [None] * (len(node.input) - 1)
    if node.output[0] in ctx.rectified:  # the MaxPool after it did the ReLU's part, on 4× fewer values
        return [g, *rest]
    return [rectify(ctx, g, lambda: DERIVATIVES[node.op_type](ctx, node)), *rest]


def rectified_at_pooled(ctx: InverseContext, node: onnx.NodeProto, g: str, overlapping: bool) -> str:
    """A MaxPool's output signal with the ReLU before it applied, where that ReLU feeds only this
    pool (VGG's relu1_2 → pool1), else ``g`` as it is.

    The unpooling puts each output's signal at its window's maximum, where the ReLU's output is the
    pool's output ``p``: so ``[y > 0]`` there is ``[p > 0]``, and every other position's signal is
    zero. Rectified before the unpooling, the mask is computed on the pooled map and the forward
    hands over ``p`` instead of ``y``. Exact for the gradient whatever the window; for the
    deconvnet's and guided backpropagation's ``relu(ȳ)`` only where the windows do not overlap
    (overlapping ones add two signals before the ReLU, which a rectification before would not):
    ``overlapping`` is the pool's ``Window.overlapping``."""
    producer = ctx.graph.producer.get(node.input[0])
    if producer is None or producer.op_type != "Relu" or len(ctx.graph.consumers.get(node.input[0], [])) != 1:
        return g
    if node.input[0] == ctx.source:
        return g  # the signal wanted is the ReLU output's own: no ReLU to pass back through
    if overlapping and ctx.mode != "saliency":
        return g
    ctx.rectified.add(node.input[0])
    return rectify(ctx, g, lambda: ctx.positive(node.output[0]))


def clamp_rule(ctx: InverseContext, node: onnx.NodeProto, g: str) -> Signals:
    """Max/Min with exactly one operand on the image path (called by the Max/Min rule)."""
    (index,) = ctx.graph.signal_inputs(node)
    result: list[str | None] = [None] * len(node.input)
    g = rectify(ctx, g, lambda: _clamp(ctx, node))
    result[index] = ctx.reduce_to(g, node.output[0], node.input[index])
    return result


def composite_rule(ctx: InverseContext, group: Composite, g: str) -> str:
    """The signal of a composite activation's input ``x`` from that of its output."""
    return rectify(ctx, g, lambda: COMPOSITE_DERIVATIVES[group.kind](ctx, ctx.forward(group.input)))


RULES: list[AnyRule] = [
    Rule(tuple(DERIVATIVES), activation_rule, check=activation_check),
]
