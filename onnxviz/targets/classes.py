"""Class targets: class K of the classifier output, or each image's own top-1 class.

The score is the class's logit. A Softmax (or LogSoftmax) at the output is skipped, as
``project`` skips it, so that a gradient is not squashed by a saturated probability; methods that
report probabilities (``occlude``) take the softmax of the logits themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from onnxviz.errors import UsageError
from onnxviz.graph.model import ModelGraph
from onnxviz.runtime.projector import seeded_tensor
from onnxviz.targets.base import ResolvedTarget, Target, per_image


@dataclass(frozen=True)
class ClassTarget(Target):
    """Class ``class_index`` of the model's first output (its elements of one image in row-major
    order); ``None``: each image's own top-1."""

    class_index: int | None = None
    kind: ClassVar[str] = "class"

    def __post_init__(self) -> None:
        if self.class_index is not None and self.class_index < 0:
            raise UsageError(f"Class {self.class_index} does not exist: classes count from 0.")

    def tensor(self, graph: ModelGraph) -> str:
        if not graph.output_names:
            raise UsageError(
                "The model declares no outputs, so there is no class to score.",
                "Score an element of a tensor instead: NAME[0,i,...].",
            )
        return seeded_tensor(graph, graph.output_names[0])

    def resolve(self, graph: ModelGraph, value: np.ndarray) -> ResolvedTarget:
        tensor = self.tensor(graph)
        value = per_image(value, tensor, 2, "Score an element of another tensor instead: NAME[0,i,...].")
        logits = value.reshape(-1)
        chosen = int(logits.argmax()) if self.class_index is None else self.class_index
        if chosen >= logits.size:
            raise UsageError(
                f"Class {chosen} does not exist: the model has classes 0…{logits.size - 1} "
                f"(its output '{tensor}' has shape {list(value.shape)}).",
                f"Pick a class in 0…{logits.size - 1}, or leave the target out for each image's top-1.",
            )
        index = (0, *(int(i) for i in np.unravel_index(chosen, value.shape[1:])))
        return ResolvedTarget(self.kind, tensor, index, float(logits[chosen]), class_index=chosen)
