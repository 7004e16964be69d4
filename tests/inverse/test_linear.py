"""Linear ops (Gemm, Mul by a constant or by another signal) invert to their exact adjoint in every
mode."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from onnx import helper

from tests.helpers import Linearisation, adjoint_gaps, make_model
from tests.inverse.adjoint import SETTINGS, TOLERANCE, assert_adjoint


@SETTINGS
@given(st.integers(0, 1), st.sampled_from([1.0, 0.5, 2.0]), st.integers(0, 10_000))
def test_gemm_saliency_is_the_adjoint(trans_b: int, alpha: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((5, 7) if trans_b else (7, 5)).astype(np.float32)
    c = rng.standard_normal(5).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w", "c"], ["y"], name="fc", transB=trans_b, alpha=alpha),
    ]
    model = make_model(nodes, (1, 7, 1, 1), "y", {"w": w, "c": c})
    lin = Linearisation(model, "y", rng.standard_normal((1, 7, 1, 1)).astype(np.float32))
    assert max(adjoint_gaps(lin, rng)) < TOLERANCE


def test_product_of_two_signals_uses_the_product_rule() -> None:
    """SiLU as x·sigmoid(x), the way exporters write it."""
    rng = np.random.default_rng(11)
    nodes = [
        helper.make_node("Sigmoid", ["x"], ["s"], name="sigmoid"),
        helper.make_node("Mul", ["x", "s"], ["y"], name="silu"),
    ]
    model = make_model(nodes, (1, 2, 4, 4), "y")
    assert_adjoint(model, "y", rng.standard_normal((1, 2, 4, 4)).astype(np.float32), 12)
