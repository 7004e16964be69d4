"""The op rules, one list per op family, concatenated here: adding an op is one rule in its
family's ``RULES`` (a new family: one module and one line below) and one test."""

from onnxviz.inverse.rules import (
    activation,
    attention,
    conv,
    deform_conv,
    einsum,
    elementwise,
    indexing,
    linear,
    lp_pool,
    normalization,
    pad,
    pool,
    quantize,
    reduce,
    resize,
    roi_align,
    sampling,
    shape,
    trigonometry,
    unpool,
)
from onnxviz.inverse.rules.registry import AnyRule, OutputsRule, Rule, Signals, by_op_type

ALL_RULES: list[AnyRule] = [
    *activation.RULES,
    *attention.RULES,
    *conv.RULES,
    *deform_conv.RULES,
    *einsum.RULES,
    *elementwise.RULES,
    *indexing.RULES,
    *linear.RULES,
    *lp_pool.RULES,
    *normalization.RULES,
    *pad.RULES,
    *pool.RULES,
    *quantize.RULES,
    *reduce.RULES,
    *resize.RULES,
    *roi_align.RULES,
    *sampling.RULES,
    *shape.RULES,
    *trigonometry.RULES,
    *unpool.RULES,
]
RULES: dict[str, AnyRule] = by_op_type(ALL_RULES)

__all__ = ["ALL_RULES", "RULES", "AnyRule", "OutputsRule", "Rule", "Signals"]
