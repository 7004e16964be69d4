"""The gradient engine: f_L(x) and the gradient of ⟨g, f_L(x)⟩ for any g, with no framework, with
respect to the input or to any layer on the way (a layer gradient: Grad-CAM's A and ∂y/∂A).

Activation maximisation needs, per step, the target layer's value and the gradient of an
objective with respect to the input, for K images at once; a class activation map needs the
gradient at a layer. The ``saliency`` rule's inverse graph is the exact vector-Jacobian product of
the forward, so the gradient is one inverse run seeded with the objective's gradient at the
target, ``g = ∂objective/∂f_L``. From a layer source the inverse holds only the nodes between the
source and the target (``InverseSpec.source``), and the source's forward value comes out of the
same forward run. The inverse is built *paired*: the forward runs on the K images as one batch
and seed k goes back through image k's own switches and masks, so a step is one forward and one
inverse run whatever K is.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnxruntime as ort

from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import SEED, InverseSpec
from onnxviz.inverse.split import find_split
from onnxviz.runtime.projector import Projector
from onnxviz.runtime.sessions import Device
from onnxviz.runtime.split_projector import SplitProjector, SplitUnfit

GRADIENT_RULE = "saliency"

SeedOf = Callable[[np.ndarray], np.ndarray]


def _projector(graph: ModelGraph, spec: InverseSpec, device: Device) -> Projector | SplitProjector:
    """The inverse split at a Concat where that skips work (a detector's heads, ``inverse/split.py``),
    else one inverse. Only the exact gradient is split: its stages' sum is the gradient whatever
    the seed, where a deconvnet or guided rule's rectified sums would differ once two branches
    carry signal. The device path of maximisation (CUDA) keeps one inverse: it runs the
    projector's sessions on bound device tensors."""
    split = None
    if spec.rule == GRADIENT_RULE and device.name != "cuda":
        split = find_split(graph, spec.target, spec.source, spec.input_shape)
    if split is not None:
        try:
            return SplitProjector(graph, spec, split, device)
        except SplitUnfit:  # a stage takes one seed at a time: the single inverse handles that
            pass
    return Projector(graph, spec, device)


class GradientEngine:
    """Forward to ``target`` and the gradient of ⟨seed, f(x)⟩ with respect to ``source`` (the
    input by default, else a tensor upstream of the target), for a batch of K inputs. ``rule``
    ``deconvnet`` or ``guided`` gives those signals instead of the gradient, paired the same way."""

    def __init__(
        self,
        graph: ModelGraph,
        target: str,
        input_shape: tuple[int, ...],
        device: Device,
        source: str | None = None,
        rule: str = GRADIENT_RULE,
    ) -> None:
        # A dense seed (not ``sparse``): the objective's gradient may touch every position of every channel.
        spec = InverseSpec(target, input_shape, source=source, rule=rule, form=device.form, paired=True)
        self.projector = _projector(graph, spec, device)
        self.input_name = graph.input_name
        self.target = target
        self.source = self.projector.source
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

    def _runs(self, x: np.ndarray) -> list[np.ndarray]:
        """The input as the forward takes it: one batch, or one image per run."""
        x = np.ascontiguousarray(x, np.float32)
        return [x] if self.batched else [x[k : k + 1] for k in range(len(x))]

    def value(self, x: np.ndarray) -> np.ndarray:
        """f(x) alone (one forward run per batch the forward takes)."""
        return np.concatenate(
            [self.projector.forward(run, self.input_name)[self.target].numpy() for run in self._runs(x)]
        )

    def value_and_gradient(self, x: np.ndarray, seed_of: SeedOf) -> tuple[np.ndarray, np.ndarray]:
        """``(f(x), Jᵀ·seed)`` where ``seed = seed_of(f(x))`` has f(x)'s shape and J is the Jacobian
        with respect to the source; row k of the gradient is image k's."""
        value, _, gradient = self.value_activation_gradient(x, seed_of)
        return value, gradient

    def value_activation_gradient(self, x: np.ndarray, seed_of: SeedOf) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(f(x), a(x), ∂⟨seed, f⟩/∂a)`` for the source's value ``a(x)`` (x itself for the input
        source), ``seed = seed_of(f(x))``: one forward and one inverse run for the K images (one per
        image where the forward takes batch 1). The gradient has the activation's shape."""
        runs = self._runs(x)
        forwards = [self.projector.forward(run, self.input_name) for run in runs]
        value = np.concatenate([forward[self.target].numpy() for forward in forwards])
        activation = np.concatenate(
            [self._activation(run, forward) for run, forward in zip(runs, forwards, strict=True)]
        )
        seed = np.asarray(seed_of(value), np.float32)
        bounds = np.cumsum([0] + [len(run) for run in runs])
        gradients = [
            self.projector.run_inverse({SEED: seed[start:stop]}, forward)
            for forward, start, stop in zip(forwards, bounds[:-1], bounds[1:], strict=True)
        ]
        return value, activation, np.concatenate(gradients)

    def _activation(self, run: np.ndarray, forward: dict[str, ort.OrtValue]) -> np.ndarray:
        return run if self.source == self.input_name else forward[self.source].numpy()
