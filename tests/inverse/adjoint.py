"""The adjoint check shared by the rule tests: the saliency inverse of a rule is the exact adjoint
of the forward op's linearisation.

Each case is checked in every emitted form (``cpu``: MaxUnpool / native ConvTranspose pads;
``portable``: ScatterElements / crop; ``standard``: one-hot taps through a ConvTranspose / crop),
and the forms must agree with each other to float precision. Hypothesis strategies shared by
several families (pool windows) live here too.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.helpers import Linearisation, adjoint_gaps

TOLERANCE = 2e-3
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_adjoint(model, target: str, x: np.ndarray, seed: int, eps: float = 1e-3) -> None:
    results = {}
    for form in ("cpu", "portable", "standard"):
        lin = Linearisation(model, target, x, "saliency", form)
        gaps = adjoint_gaps(lin, np.random.default_rng(seed), eps=eps)
        assert max(gaps) < TOLERANCE, f"{form}: adjoint gaps {gaps}"
        seeds = np.random.default_rng(seed + 1).standard_normal((2, *lin.values[target].shape[1:]))
        results[form] = lin.vjp(seeds)
    for form in ("portable", "standard"):
        np.testing.assert_allclose(results["cpu"], results[form], rtol=1e-4, atol=1e-5)


def out_size(size: int, k: int, s: int, d: int, pb: int, pe: int, ceil: bool = False) -> int:
    span = size + pb + pe - ((k - 1) * d + 1)
    return (math.ceil(span / s) if ceil else span // s) + 1


pool_cases = st.fixed_dictionaries(
    {
        "kernel": st.tuples(st.integers(2, 3), st.integers(2, 3)),
        "strides": st.tuples(st.integers(1, 3), st.integers(1, 3)),
        "pads": st.tuples(*[st.integers(0, 1)] * 4),
        "ceil_mode": st.sampled_from([0, 1]),
        "dilations": st.sampled_from([(1, 1), (1, 1), (2, 1), (2, 2)]),
        "size": st.tuples(st.integers(6, 11), st.integers(6, 11)),
        "seed": st.integers(0, 10_000),
    }
)


def pool_fits(case: dict) -> bool:
    k, s, d, p = case["kernel"], case["strides"], case["dilations"], case["pads"]
    for axis in range(2):
        if p[axis] >= k[axis] or p[axis + 2] >= k[axis]:
            return False
        out = out_size(case["size"][axis], k[axis], s[axis], d[axis], p[axis], p[axis + 2], bool(case["ceil_mode"]))
        # The last window must start inside the input or the left padding (the ONNX/PyTorch rule).
        if (out - 1) * s[axis] >= case["size"][axis] + p[axis]:
            return False
    return True
