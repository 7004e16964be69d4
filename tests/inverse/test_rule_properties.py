"""Every inverse rule is the exact adjoint of its operator's linearisation, at every opset version.

For each rule, hypothesis draws one-node models (``rule_cases.py``) over shapes, attributes and
values, and ``properties.check`` verifies ⟨J·u, v⟩ = ⟨u, Jᵀ·v⟩ with J·u from central differences
of the forward model in float64 (where the operator allows) and Jᵀ·v from the inverse graph, then
a few coordinates of Jᵀ·v against finite differences one by one, in both emitted forms.

The CI profile draws a few models per (operator, opset) pair so that the module stays well under a
minute; the ``long`` test draws many more (``python -m pytest -m long``).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.inverse.properties import NoKernel, check
from tests.inverse.rule_cases import CASES, opsets

PAIRS = [(op_type, opset) for op_type in sorted(CASES) for opset in opsets(op_type)]
CI = settings(max_examples=1, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
LONG = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def _check_drawn(op_type: str, opset: int, data: st.DataObject) -> None:
    drawn = CASES[op_type](data.draw, opset)
    try:
        check(drawn, data.draw(st.integers(0, 2**16), label="seed"))
    except NoKernel as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize(("op_type", "opset"), PAIRS, ids=[f"{op}-{v}" for op, v in PAIRS])
@CI
@given(data=st.data())
def test_rule_is_the_adjoint_of_its_operator(op_type: str, opset: int, data: st.DataObject) -> None:
    _check_drawn(op_type, opset, data)


@pytest.mark.long
@pytest.mark.parametrize(("op_type", "opset"), PAIRS, ids=[f"{op}-{v}" for op, v in PAIRS])
@LONG
@given(data=st.data())
def test_rule_is_the_adjoint_of_its_operator_over_many_draws(op_type: str, opset: int, data: st.DataObject) -> None:
    _check_drawn(op_type, opset, data)
