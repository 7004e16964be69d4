"""MaxUnpool reading its MaxPool's indices (SegNet's decoder): the inverse reads the forward's
switches back as int64 and is the exact adjoint, in both emitted forms."""

from __future__ import annotations

import numpy as np
from onnx import helper

from tests.helpers import Linearisation, make_model, separated_input
from tests.inverse.adjoint import assert_adjoint

SHAPE = (1, 2, 6, 6)


def _segnet_step() -> tuple:
    """conv → MaxPool (values, indices) → conv → MaxUnpool(indices) → conv."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="encode"),
        helper.make_node("MaxPool", ["c1"], ["pooled", "where"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        helper.make_node("Conv", ["pooled", "w2"], ["c2"], pads=[1, 1, 1, 1], name="middle"),
        helper.make_node("MaxUnpool", ["c2", "where"], ["up"], kernel_shape=[2, 2], strides=[2, 2], name="unpool"),
        helper.make_node("Conv", ["up", "w3"], ["y"], pads=[1, 1, 1, 1], name="decode"),
    ]
    shapes = {"w1": (3, 2, 3, 3), "w2": (3, 3, 3, 3), "w3": (2, 3, 3, 3)}
    weights = {name: (rng.standard_normal(shape) * 0.4).astype(np.float32) for name, shape in shapes.items()}
    return make_model(nodes, SHAPE, "y", weights), "y"


def test_max_unpool_through_the_forward_indices_is_the_adjoint() -> None:
    model, target = _segnet_step()
    assert_adjoint(model, target, separated_input(SHAPE, np.random.default_rng(1)), seed=2)


def test_max_unpool_reads_the_signal_back_where_the_values_went() -> None:
    """With the identity after it, unpooling's adjoint picks each switch's signal: zero elsewhere."""
    nodes = [
        helper.make_node("MaxPool", ["x"], ["pooled", "where"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        helper.make_node("MaxUnpool", ["pooled", "where"], ["y"], kernel_shape=[2, 2], strides=[2, 2], name="unpool"),
    ]
    x = separated_input(SHAPE, np.random.default_rng(4))
    lin = Linearisation(make_model(nodes, SHAPE, "y"), "y", x)
    seeds = np.random.default_rng(5).standard_normal((2, *SHAPE[1:]))
    windows = x.reshape(2, 3, 2, 3, 2).transpose(0, 1, 3, 2, 4).reshape(2, 3, 3, 4)
    winners = windows == windows.max(axis=-1, keepdims=True)
    mask = winners.reshape(2, 3, 3, 2, 2).transpose(0, 1, 3, 2, 4).reshape(SHAPE)
    np.testing.assert_allclose(lin.vjp(seeds), seeds * mask, rtol=1e-6)
