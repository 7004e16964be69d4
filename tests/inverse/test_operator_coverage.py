"""Every default-domain ONNX operator that may carry a float tensor has an inverse rule, a zero
gradient, or a stated reason, and every rule has a test (``onnxviz.inverse.coverage``)."""

from __future__ import annotations

from onnxviz.inverse.coverage import float_operators, summary, support, support_table
from onnxviz.inverse.rules import RULES
from onnxviz.inverse.rules.reasons import REFUSED, ZERO_GRADIENT
from tests.inverse.rule_cases import checked_by


def test_every_float_operator_has_a_rule_a_zero_gradient_or_a_reason() -> None:
    missing = [row.op_type for row in support_table() if row.status == "missing"]
    assert missing == []


def test_the_table_comes_from_the_onnx_schemas() -> None:
    operators = float_operators()
    # Operators of every age: opset 1 (Relu), a version per attribute-to-input move (ReduceL2), new ones.
    assert operators["ReduceL2"] == (1, 11, 13, 18)
    assert {"Conv", "Attention", "RMSNormalization", "GridSample", "Swish"} <= set(operators)
    assert "StringNormalizer" not in operators  # strings only
    assert summary(support_table())["rule"] == len([op for op in operators if op in RULES])


def test_a_refused_operator_is_never_also_given_a_rule() -> None:
    assert not set(REFUSED) & set(RULES)
    assert not set(ZERO_GRADIENT) & set(RULES)
    assert support("Bernoulli").status == "refused" and "random" in support("Bernoulli").detail
    assert support("Floor").status == "zero" and support("ConvTranspose").status == "rule"


def test_every_rule_names_its_test() -> None:
    untested = [op for op in sorted(RULES) if checked_by(op) == "-"]
    assert untested == []
