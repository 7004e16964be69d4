"""Why an operator has no inverse rule: the reasons the "no inverse rule" error, ``check`` and
``layers`` give, and the support table in the docs shows.

Every default-domain ONNX operator that may carry a float tensor has a rule (``rules/__init__.py``),
is a zero-gradient operator (``ZERO_GRADIENT``: its output carries no signal, so the path never
goes through it and the gradient there is zero), or is refused here with the reason and what to
pick instead. ``tests/inverse/test_operator_coverage.py`` fails when an operator has none of the
three; ``scripts/operator_coverage.py`` prints the table.
"""

from __future__ import annotations

from onnxviz.graph.ops import NON_DIFFERENTIABLE_OPS

# The operators whose output carries no signal even when an input does (graph/ops.py): piecewise
# constant (Floor, Round, Sign, Hardmax…), boolean (comparisons), integer (ArgMax, Shape…) or
# independent of the input's values (RandomNormalLike). Their gradient is zero; a Where reading a
# comparison of the image routes the signal by the forward's own condition.
ZERO_GRADIENT = NON_DIFFERENTIABLE_OPS

_EARLIER = "project from a layer before it"
_RANDOM = f"its output is random, so it has no gradient to carry back; export the model in eval mode, or {_EARLIER}"
_SEQUENCE = f"it works on a sequence of tensors, which onnxviz does not follow; {_EARLIER}"
_GENERATOR = "it takes no image tensor (its output is made from sizes or attributes), so it is never on the image path"
_CONTROL_FLOW = (
    f"its subgraph runs a number of times (or a branch) chosen by the data, which an inverse graph cannot fix "
    f"in advance; {_EARLIER}"
)
_RECURRENT = f"recurrent cells are not inverted (their state runs over a data-length sequence); {_EARLIER}"
_LOSS = "it is a training loss that needs labels; pick the logits (the node before it) as the target instead"
_INTEGER = f"it works on integer or string tensors, not on a float signal; {_EARLIER}"
_NOT_YET = "onnxviz has no inverse rule for it yet"
_REGIONS = f"{_NOT_YET}: it pools regions given by boxes (detection heads); {_EARLIER}"
_CACHE = f"it updates a key/value cache of a decoder, which has no image signal to carry back; {_EARLIER}"

REFUSED: dict[str, str] = {
    "Bernoulli": _RANDOM,
    "Multinomial": _RANDOM,
    "RandomNormal": _GENERATOR,
    "RandomUniform": _GENERATOR,
    "Constant": _GENERATOR,
    "Range": _GENERATOR,
    "BlackmanWindow": _GENERATOR,
    "HammingWindow": _GENERATOR,
    "HannWindow": _GENERATOR,
    "MelWeightMatrix": _GENERATOR,
    "ConcatFromSequence": _SEQUENCE,
    "SequenceAt": _SEQUENCE,
    "SequenceConstruct": _SEQUENCE,
    "SequenceInsert": _SEQUENCE,
    "SequenceMap": _SEQUENCE,
    "SplitToSequence": _SEQUENCE,
    "Optional": f"it wraps a tensor in an optional value, which onnxviz does not follow; {_EARLIER}",
    "OptionalGetElement": f"it unwraps an optional value, which onnxviz does not follow; {_EARLIER}",
    "OptionalHasElement": _GENERATOR,
    "If": _CONTROL_FLOW,
    "Loop": _CONTROL_FLOW,
    "Scan": _CONTROL_FLOW,
    "RNN": _RECURRENT,
    "GRU": _RECURRENT,
    "LSTM": _RECURRENT,
    "NegativeLogLikelihoodLoss": _LOSS,
    "SoftmaxCrossEntropyLoss": _LOSS,
    "TfIdfVectorizer": _INTEGER,
    "QLinearMatMul": f"it multiplies quantised integer tensors; export the model with QDQ pairs, or {_EARLIER}",
    "DynamicQuantizeLinear": (
        f"its scale and zero point are computed from the image itself, a staircase of a data-dependent step; "
        f"export static QDQ pairs, or {_EARLIER}"
    ),
    "BitCast": f"it reinterprets the bits of a tensor as another type, which has no derivative; {_EARLIER}",
    "Unique": f"its output's size depends on the values of the image; {_EARLIER}",
    "OneHot": f"its indices are integers and its values a pair of constants; {_EARLIER}",
    "TensorScatter": _CACHE,
    "LinearAttention": f"its recurrent state runs over the sequence like a recurrent cell; {_EARLIER}",
    "CausalConvWithState": f"its carried state belongs to streaming decoders, not to images; {_EARLIER}",
    "DFT": f"its output is complex-valued (real and imaginary pairs), which onnxviz does not follow; {_EARLIER}",
    "STFT": f"its output is complex-valued (real and imaginary pairs), which onnxviz does not follow; {_EARLIER}",
    "Det": f"its gradient needs the matrix inverse, which ONNX has no operator for; {_EARLIER}",
    "MaxRoiPool": _REGIONS,
    "CumProd": f"{_NOT_YET}: its gradient needs the products on both sides of each element; {_EARLIER}",
    "ReverseSequence": (
        f"it reverses each batch entry by its own length, and the projections ride on the batch axis; {_EARLIER}"
    ),
    "RotaryEmbedding": f"{_NOT_YET}: it rotates a language model's queries and keys by position; {_EARLIER}",
    "SwiGLU": (
        "it is first defined at opset 28, beyond the opsets onnxruntime runs, so no model using it can be loaded; "
        "export with Swish and Mul"
    ),
}


def refusal(op_type: str) -> str | None:
    """The stated reason ``op_type`` cannot be inverted, or None."""
    return REFUSED.get(op_type)
