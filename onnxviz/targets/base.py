"""The target type: a ``Target`` names a score on any image, a ``ResolvedTarget`` is that score
fixed for one image.

A resolved target is a tensor and an index into one image's value of it, the batch axis first
(always 0: a target is per image). The score is the sum of the values under the index, so a full
index scores one element (a class logit, any unit of any layer) and a partial one a whole slice
(``(0, c)``: the total activation of feature map c). The seed for the inverse is the gradient of
that sum: 1 under the index, 0 elsewhere, one row per image.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from onnxviz.errors import UsageError
from onnxviz.graph.model import ModelGraph


@dataclass(frozen=True)
class ResolvedTarget:
    """A target fixed for one image: ``tensor[index]`` summed is the score, ``score`` its value
    on the unperturbed image."""

    kind: str
    tensor: str
    index: tuple[int, ...]
    score: float
    class_index: int | None = None
    layer: str | None = None  # the layer or tensor as the caller named it; None: the model's output
    box: tuple[float, float, float, float] | None = None

    def scores(self, values: np.ndarray) -> np.ndarray:
        """The score of every row of ``values`` (a batch of the tensor's values) at this target:
        what a perturbation method reads for each perturbed copy of the image."""
        selected = values[(slice(None), *self.index[1:])]
        return selected.reshape(len(values), -1).sum(axis=1)

    def fixed_scores(self, values: np.ndarray) -> np.ndarray:
        """The score of every row of ``values`` with the target held as resolved on the
        unperturbed image (the function whose gradient the gradient methods take): for most
        kinds ``scores`` itself; a detection is not matched again."""
        return self.scores(values)

    def seed_into(self, row: np.ndarray, value: np.ndarray | None = None) -> None:
        """Write ∂score/∂tensor for one image into ``row`` (the tensor's shape without the batch
        axis, zeros): 1 under the index. ``value``, the image's forward value (batch axis of 1)
        where the caller has it, is for kinds whose score is not linear in the tensor."""
        row[self.index[1:]] = 1.0

    def drawn(self, picture: np.ndarray, names: Sequence[str] | None, input_size: tuple[int, int]) -> np.ndarray | None:
        """What the model saw for this target, drawn on ``picture`` (RGB, any size; ``input_size``
        the model input's (H, W)) to show beside the map: a detector's boxes, a segmenter's
        classes; None for kinds with nothing to draw."""
        return None

    def described(self, names: Sequence[str] | None) -> str:
        """The target in words, for a picture's title or a line of output: the class's name (from
        the model's labels ``names``, else ``class K``), or the tensor element ``NAME[0,i,...]``."""
        if self.class_index is None:
            return f"{self.layer or self.tensor}[{','.join(map(str, self.index))}]"
        if names and self.class_index < len(names):
            return names[self.class_index]
        return f"class {self.class_index}"

    def summary(self) -> dict:
        """What ``--json`` carries for the target: the same keys for every kind."""
        return {
            "kind": self.kind,
            "class": self.class_index,
            "index": list(self.index),
            "box": None if self.box is None else list(self.box),
            "score": self.score,
        }


def seeds(resolved: Sequence[ResolvedTarget], shape: Sequence[int], values: np.ndarray | None = None) -> np.ndarray:
    """The inverse's seed for a batch of images: row n is the gradient of image n's score with
    respect to the tensor (shape ``shape``, any batch), e.g. 1 under its index and 0 elsewhere;
    ``values``, the batch's forward values, where a kind's gradient depends on them."""
    seed = np.zeros((len(resolved), *shape[1:]), np.float32)
    for row, target in enumerate(resolved):
        target.seed_into(seed[row], None if values is None else values[row : row + 1])
    return seed


class Target(ABC):
    """A score that any image has: which tensor to read and how to fix the score for one image."""

    kind: ClassVar[str]

    @abstractmethod
    def tensor(self, graph: ModelGraph) -> str:
        """The tensor whose value holds the score; a ``UsageError`` if the model has none."""

    @abstractmethod
    def resolve(self, graph: ModelGraph, value: np.ndarray) -> ResolvedTarget:
        """The score fixed for one image from ``value``, the tensor's forward value for it (batch
        axis of 1); a ``UsageError`` naming the tensor's shape where the target does not fit."""


def per_image(value: np.ndarray, tensor: str, least_rank: int, hint: str) -> np.ndarray:
    """``value`` checked to be one image's value of ``tensor``: a batch axis of 1 and at least
    ``least_rank`` axes in all, or why the target cannot be read from it."""
    if value.ndim < least_rank or value.shape[0] != 1:
        raise UsageError(
            f"The tensor '{tensor}' has shape {list(value.shape)} for one image: it has no batch axis "
            f"and {least_rank - 1} more to read the target from.",
            hint,
        )
    return value
