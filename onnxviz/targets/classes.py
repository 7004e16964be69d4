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
        _check_classifier(value, tensor)
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


def _check_classifier(value: np.ndarray, tensor: str) -> None:
    """A class is one number per class: an output with more than one axis of size > 1 (a
    detector's boxes, a segmenter's pixels) has no class to pick, so say which target fits."""
    wide = [size for size in value.shape[1:] if size > 1]
    if len(wide) <= 1:
        return
    if value.ndim == 4:
        hint = f"A (1, C, h, w) output is a segmenter's: --target mask:predicted:K (K in 0…{value.shape[1] - 1})."
    elif value.ndim == 3:
        hint = "A (1, 4+nc, N) or (1, N, 5+nc) output is a detector's: --target detection:0 or box:X1,Y1,X2,Y2[:K]."
    else:
        hint = "Score one element instead: NAME[0,i,...]."
    raise UsageError(
        f"A class target reads a classifier's output (1, classes), but '{tensor}' has shape {list(value.shape)}.",
        hint,
    )
