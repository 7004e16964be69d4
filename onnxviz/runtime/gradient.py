"""The gradient engine: f_L(x) and the input gradient of ⟨g, f_L(x)⟩ for any g, with no framework.

Activation maximisation needs, per step, the target layer's value and the gradient of an
objective with respect to the input, for K images at once. The ``saliency`` rule's inverse graph
is the exact vector-Jacobian product of the forward, so the gradient is one inverse run seeded
with the objective's gradient at the layer, ``g = ∂objective/∂f_L``. The inverse is built
*paired*: the forward runs on the K images as one batch and seed k goes back through image k's
own switches and masks, so a step is one forward and one inverse run whatever K is.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import SEED
from onnxviz.runtime.projector import Projector
from onnxviz.runtime.sessions import Device

GRADIENT_RULE = "saliency"

SeedOf = Callable[[np.ndarray], np.ndarray]


class GradientEngine:
    """Forward to ``target`` and the input gradient of ⟨seed, f(x)⟩, for a batch of K inputs."""

    def __init__(self, graph: ModelGraph, target: str, input_shape: tuple[int, ...], device: Device) -> None:
        # A dense seed: the objective's gradient may touch every position of every channel.
        self.projector = Projector(graph, target, input_shape, GRADIENT_RULE, device, sparse=False, paired=True)
        self.input_name = graph.input_name
        self.target = target
        self.batched = not self.projector.single and self._forward_takes_batches(input_shape)

    def _forward_takes_batches(self, input_shape: tuple[int, ...]) -> bool:
        """False where an exporter wrote batch 1 into the graph (a Resize's sizes, a Reshape): the
        K inputs then cost K forward and K inverse runs, as where the inverse takes one input at a
        time (an attention block that merges the batch axis)."""
        pair = np.zeros((2, *input_shape[1:]), np.float32)
        try:
            value = self.projector.forward(pair, self.input_name)[self.target].numpy()
        except Exception:  # any refusal of batch 2 means the same: one input at a time
            return False
        return value.ndim >= 1 and value.shape[0] == 2

    def value(self, x: np.ndarray) -> np.ndarray:
        """f(x) alone (one forward run per batch the forward takes)."""
        x = np.ascontiguousarray(x, np.float32)
        runs = [x] if self.batched else [x[k : k + 1] for k in range(len(x))]
        return np.concatenate([self.projector.forward(run, self.input_name)[self.target].numpy() for run in runs])

    def value_and_gradient(self, x: np.ndarray, seed_of: SeedOf) -> tuple[np.ndarray, np.ndarray]:
        """``(f(x), Jᵀ·seed)`` where ``seed = seed_of(f(x))`` has f(x)'s shape; row k of the
        gradient is image k's."""
        x = np.ascontiguousarray(x, np.float32)
        runs = [x] if self.batched else [x[k : k + 1] for k in range(len(x))]
        forwards = [self.projector.forward(run, self.input_name) for run in runs]
        value = np.concatenate([forward[self.target].numpy() for forward in forwards])
        seed = np.asarray(seed_of(value), np.float32)
        bounds = np.cumsum([0] + [len(run) for run in runs])
        gradients = [
            self.projector.run_inverse({SEED: seed[start:stop]}, forward)
            for forward, start, stop in zip(forwards, bounds[:-1], bounds[1:], strict=True)
        ]
        return value, np.concatenate(gradients)
