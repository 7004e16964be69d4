"""Inputs the CLI's tests share (the photograph comes from tests/conftest.py): a model with an op that has no
inverse rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from tests.helpers import make_model


@pytest.fixture(scope="session")
def unsupported_model(tmp_path_factory) -> Path:
    """conv → Bernoulli (random: no inverse rule, a stated reason) → conv: conv2 cannot be projected, conv1 can."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="first_conv"),
        helper.make_node("Relu", ["c1"], ["r1"], name="first_relu"),
        helper.make_node("Bernoulli", ["r1"], ["up"], seed=0.0, name="coin_flips"),
        helper.make_node("Conv", ["up", "w2"], ["c2"], pads=[1, 1, 1, 1], name="second_conv"),
        helper.make_node("Relu", ["c2"], ["y"], name="second_relu"),
    ]
    inits = {
        "w1": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "w2": rng.standard_normal((4, 4, 3, 3)).astype(np.float32),
    }
    path = tmp_path_factory.mktemp("m") / "random_op.onnx"
    onnx.save(make_model(nodes, (1, 3, 8, 8), "y", inits), str(path))
    return path
