"""How the inverse treats every default-domain ONNX operator that may carry a float tensor.

The list of operators comes from the ONNX package's own schemas (every opset version it defines),
not from the models seen so far, so a new ONNX release that adds an operator shows up here as
``missing`` until it gets a rule or a reason. ``scripts/operator_coverage.py`` prints the table,
the docs build renders it (``docs/hooks/operators.py``) and a test fails on any ``missing`` row.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import onnx.defs

from onnxviz.inverse.modes import rectify
from onnxviz.inverse.rules import RULES
from onnxviz.inverse.rules.reasons import REFUSED, ZERO_GRADIENT

FLOAT_TYPES = frozenset({"tensor(float)", "tensor(double)", "tensor(float16)", "tensor(bfloat16)"})
DEFAULT_DOMAINS = ("", "ai.onnx")
STATUSES = ("rule", "zero", "refused", "missing")
CLAMPS = ("Max", "Min")


@dataclass(frozen=True)
class OperatorSupport:
    """One operator: the opset versions ONNX defines for it, and what the inverse does with it
    (``status`` one of ``STATUSES``; ``detail`` says how, or why not)."""

    op_type: str
    versions: tuple[int, ...]
    status: str
    detail: str


def float_operators() -> dict[str, tuple[int, ...]]:
    """Default-domain operators with a float type constraint in some version, with all their
    versions (ascending)."""
    versions: dict[str, set[int]] = {}
    floating: set[str] = set()
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain not in DEFAULT_DOMAINS:
            continue
        versions.setdefault(schema.name, set()).add(schema.since_version)
        if any(FLOAT_TYPES & set(c.allowed_type_strs) for c in schema.type_constraints):
            floating.add(schema.name)
    return {name: tuple(sorted(versions[name])) for name in sorted(floating)}


def support(op_type: str, versions: tuple[int, ...] = ()) -> OperatorSupport:
    """What the inverse does with ``op_type``."""
    rule = RULES.get(op_type)
    if rule is not None:
        module = rule.emit.__module__
        family = module.rsplit(".", 1)[-1]
        # The modes differ exactly where a rule family calls ``modes.rectify``.
        if getattr(sys.modules[module], "rectify", None) is rectify:
            how = "deconvnet and guided: the ReLU-family treatment; saliency: the exact gradient"
        elif op_type in CLAMPS:
            how = "a clamp (one operand on the path) as an activation; otherwise the exact gradient"
        else:
            how = "the exact vector-Jacobian product in every mode"
        return OperatorSupport(op_type, versions, "rule", f"{family}: {how}")
    if op_type in ZERO_GRADIENT:
        detail = "zero gradient: its output carries no signal (piecewise constant, boolean or integer)"
        return OperatorSupport(op_type, versions, "zero", detail)
    if op_type in REFUSED:
        return OperatorSupport(op_type, versions, "refused", REFUSED[op_type])
    return OperatorSupport(op_type, versions, "missing", "neither a rule nor a stated reason")


def support_table() -> list[OperatorSupport]:
    """Every default-domain float operator, by name."""
    return [support(name, versions) for name, versions in float_operators().items()]


def summary(table: list[OperatorSupport]) -> dict[str, int]:
    """How many operators have each status."""
    return {status: sum(row.status == status for row in table) for status in STATUSES}
