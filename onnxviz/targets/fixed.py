"""A target fixed from another run: the same tensor and index, scored anew on every image.

The sanity checks explain the original model's target on models whose weights were re-drawn: the
class (or element, or matched box) is the one the original model chose for the image, not the
randomised model's own top-1, so each step explains the same score.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from onnxviz.graph.model import ModelGraph
from onnxviz.targets.base import ResolvedTarget, Target, per_image


@dataclass(frozen=True)
class FixedTarget(Target):
    """``resolved``'s tensor and index on any model with that tensor; the score read from the
    value given (the target keeps its kind, class and box)."""

    resolved: ResolvedTarget
    kind: ClassVar[str] = "fixed"

    def tensor(self, graph: ModelGraph) -> str:
        return self.resolved.tensor

    def resolve(self, graph: ModelGraph, value: np.ndarray) -> ResolvedTarget:
        value = per_image(value, self.resolved.tensor, len(self.resolved.index), "Fix a target of this tensor.")
        return replace(self.resolved, score=float(self.resolved.scores(value)[0]))
