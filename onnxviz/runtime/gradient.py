"""The gradient engine: f_L(x) and the input gradient of ⟨g, f_L(x)⟩ for any g, with no framework.

Activation maximisation needs, per step, the target layer's value and the gradient of an
objective with respect to the input. The ``saliency`` rule's inverse graph is the exact
vector-Jacobian product of the forward, so the gradient is one inverse run seeded with the
objective's gradient at the layer, ``g = ∂objective/∂f_L``, batched like the projections.
"""

from __future__ import annotations

import numpy as np

from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import SEED
from onnxviz.runtime.projector import Projector
from onnxviz.runtime.sessions import Device

GRADIENT_RULE = "saliency"


class GradientEngine:
    """Forward to ``target`` and the input gradient of ⟨seed, f(x)⟩, for a batch of one."""

    def __init__(self, graph: ModelGraph, target: str, input_shape: tuple[int, ...], device: Device) -> None:
        # A dense seed: the objective's gradient may touch every position of every channel.
        self.projector = Projector(graph, target, input_shape, GRADIENT_RULE, device, sparse=False)
        self.input_name = graph.input_name

    def value_and_gradient(self, x: np.ndarray, seed_of) -> tuple[np.ndarray, np.ndarray]:
        """``(f(x), Jᵀ·seed)`` where ``seed = seed_of(f(x))`` has f(x)'s shape (batch K ≥ 1 of seeds)."""
        forward = self.projector.forward(x, self.input_name)
        value = forward[self.projector.target].numpy()
        seed = np.asarray(seed_of(value), np.float32)
        return value, self.projector.run_inverse({SEED: seed}, forward)
