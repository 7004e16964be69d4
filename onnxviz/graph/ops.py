"""Op families: the one place that says which ONNX ops onnxviz treats alike, and why.

Loading, aliases, the inverse rules and the analyses all ask "is this an activation?", "does this
carry the image's signal?", "does this node only pass its input on?". Each family is written here
once, so two modules cannot drift apart on the answer.
"""

from __future__ import annotations

# Ops whose output does not carry the image's signal even when an input does.
NON_DIFFERENTIABLE_OPS = frozenset(
    {
        "Shape",
        "Size",
        "NonZero",
        "ArgMax",
        "ArgMin",
        "ConstantOfShape",
        "EyeLike",
        "RandomNormalLike",
        "RandomUniformLike",
        "Greater",
        "Less",
        "Equal",
        "GreaterOrEqual",
        "LessOrEqual",
        "Not",
        "And",
        "Or",
        "Xor",
        "IsNaN",
        "IsInf",
        "Sign",
        "Round",
        "Floor",
        "Ceil",
        "Hardmax",
    }
)
# Ops whose output is (part of) their input's shape: evaluated from static shapes when folding.
SHAPE_READER_OPS = frozenset({"Shape", "Size"})
# Ops never folded even when all inputs are constant: random, or with subgraphs.
NON_FOLDABLE_OPS = frozenset(
    {
        "RandomNormal",
        "RandomUniform",
        "RandomNormalLike",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
        "If",
        "Loop",
        "Scan",
    }
)
# Element-wise activations: ``convN`` names the output of the one that follows a convolution.
ACTIVATION_OPS = frozenset(
    {
        "Relu",
        "LeakyRelu",
        "PRelu",
        "Clip",
        "Sigmoid",
        "HardSigmoid",
        "HardSwish",
        "Tanh",
        "Elu",
        "Selu",
        "Softplus",
        "Celu",
        "ThresholdedRelu",
        "Mish",
        "Gelu",
        "Softsign",
    }
)
# Ops that, at inference, hand their input on unchanged or per-channel affine: an alias looks
# through them for the activation that follows, and analyses treat them as part of the layer.
PASS_THROUGH_OPS = frozenset({"Identity", "Dropout", "BatchNormalization"})
# Windowed ops whose ``auto_pad`` is made explicit at load, and those with a ``ceil_mode``.
WINDOW_OPS = frozenset({"Conv", "MaxPool", "AveragePool", "LpPool"})
CEIL_MODE_OPS = frozenset({"MaxPool", "AveragePool", "LpPool"})

# MaxPool gained its ``Indices`` output (the switches) in opset 8.
MIN_OPSET_FOR_SWITCHES = 8
# The opset older graphs are upgraded to first (then 11, then 8, whichever converts).
UPGRADE_OPSET = 13
