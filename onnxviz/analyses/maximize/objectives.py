"""The objectives of activation maximisation: which channels, and ∂objective/∂layer as seeds.

Each objective but ``class`` is linear in the layer's value, objective k = ⟨seeds[k], f_L(x_k)⟩,
so its gradient at the layer is the constant seed; ``class`` (logit plus log-probability) has the
seed 2·one-hot − softmax, recomputed from the value each step. ``analysis.py`` holds the rationale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxviz.analyses._common import checked_channels
from onnxviz.core.loaded import LoadedModel
from onnxviz.errors import OptionError

DEFAULT_CHANNELS = 8
OBJECTIVES = ("channel", "neuron", "joint", "class")


@dataclass(frozen=True)
class Target:
    """The layer, its seeded tensor, its shape, the chosen channels and their seeds."""

    alias: str
    tensor: str
    shape: tuple[int, ...]  # the layer's shape for one image
    channels: list[int]
    objective: str
    seeds: np.ndarray  # (images, *shape[1:]): objective k = ⟨seeds[k], f(x_k)⟩ (``class``: the one-hots)
    logits: bool  # a 1-D layer read by a Softmax or given out: probabilities mean something

    def values(self, value: np.ndarray) -> np.ndarray:
        """The objective of each image from the layer's value."""
        linear = (value * self.seeds).reshape(len(self.seeds), -1).sum(axis=1)
        if self.objective == "class":
            return linear + (log_softmax(value) * self.seeds).sum(axis=1)
        return linear

    def gradient_seeds(self, value: np.ndarray) -> np.ndarray:
        """∂objective/∂f_L: the seeds of the inverse run."""
        if self.objective == "class":
            return (2 * self.seeds - softmax(value)).astype(np.float32)
        return self.seeds


def choose_channels(channels: list[int] | None, top: int | None, count: int, alias: str) -> list[int]:
    chosen = checked_channels(channels, top, count, alias)
    if chosen is not None:
        return chosen
    if top is not None and not 1 <= top <= count:
        raise OptionError("top", f"{{option}} must be between 1 and {count} ({alias}'s channel count); got {top}.")
    return list(range(min(DEFAULT_CHANNELS, count)))


def objective_seeds(layer_shape: tuple[int, ...], channels: list[int], objective: str, weights) -> np.ndarray:
    """∂objective/∂f_L per image: 1/(H·W) over a channel's map, 1 at its centre, or the weighted
    sum of channel means in one image."""
    sample = layer_shape[1:]
    spatial = int(np.prod(sample[1:])) if len(sample) > 1 else 1
    if objective == "joint":
        seed = np.zeros((1, *sample), np.float32)
        for channel, weight in zip(channels, weights or [1.0] * len(channels), strict=True):
            seed[0, channel] += np.float32(weight / spatial)
        return seed
    seeds = np.zeros((len(channels), *sample), np.float32)
    for k, channel in enumerate(channels):
        if objective == "neuron" and len(sample) > 1:
            seeds[(k, channel, *(n // 2 for n in sample[1:]))] = 1.0
        else:
            seeds[k, channel] = 1.0 / spatial
    return seeds


def is_logits(model: LoadedModel, tensor: str, layer_shape: tuple[int, ...]) -> bool:
    if len(layer_shape) != 2:
        return False
    readers = model.graph.consumers.get(tensor, [])
    return tensor in model.graph.output_names or any(n.op_type == "Softmax" for n in readers)


def log_softmax(value: np.ndarray) -> np.ndarray:
    shifted = value.astype(np.float64) - value.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(value: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(value))


def probabilities(value: np.ndarray, target: Target) -> list[float]:
    probabilities = softmax(value)
    if len(target.seeds) == 1 and len(target.channels) > 1:  # joint: each channel's probability
        return [float(probabilities[0, c]) for c in target.channels]
    return [float(probabilities[k, c]) for k, c in enumerate(target.channels)]
