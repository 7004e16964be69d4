"""Gradient × sign: ∂score/∂x ⊙ sign(x), the input gradient of a target's score signed by the input.

Where the preprocessed input is negative the gradient's sign is turned round, so the map says
which pixels, as they are, raise the score. The score is a target (``onnxviz.targets``: each
image's top-1 class logit by default), and the gradient is the gradient engine's: one forward and
one run of the ``saliency`` inverse, the exact vector-Jacobian product.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from onnxviz.core.loaded import LoadedModel
from onnxviz.core.options import Options, option
from onnxviz.core.result import Result
from onnxviz.core.types import Image
from onnxviz.render import pictures as render
from onnxviz.runtime.engines import GradientKey
from onnxviz.targets.base import ResolvedTarget, seeds
from onnxviz.targets.spelling import parse_target

TARGET_HELP = "What to explain: class K, NAME[0,i,...] (an element of a tensor), or each image's top-1 class."


@dataclass(frozen=True)
class GradSignOptions(Options):
    """What gradient × sign takes beyond the image."""

    target: int | str | None = field(default=None, metadata=option(TARGET_HELP))


@dataclass
class GradSign(Result):
    """``attribution``: float32 (1, *input) in the model's input layout, for ``target``."""

    attribution: np.ndarray
    target: ResolvedTarget
    layout: str
    order: str

    def figure(self) -> np.ndarray:
        """The attribution as a picture: grey is zero, brighter raises the score."""
        return render.projection_to_rgb(self.attribution[0], self.layout, self.order)

    def summary(self) -> dict:
        """What ``--json`` prints: the target as every method reports it, and the map's totals."""
        positive = float(self.attribution[self.attribution > 0].sum())
        return {"target": self.target.summary(), "total": float(self.attribution.sum()), "positive": positive}

    def raw(self) -> np.ndarray:
        """What ``--raw`` writes: the attribution."""
        return self.attribution


def gradsign(model: LoadedModel, image: Image, options: GradSignOptions) -> GradSign:
    """Gradient × sign of the target's score for one image: which pixels, as they are, raise it."""
    x, _, shape = model.prepare(image)
    target = parse_target(options.target)
    engine = model.engines.gradient(GradientKey(target.tensor(model.graph), shape))
    resolved: list[ResolvedTarget] = []

    def seed_of(value: np.ndarray) -> np.ndarray:
        """The target fixed on the image's own forward value (its top-1 class), and its seed."""
        resolved.append(target.resolve(model.graph, value))
        return seeds(resolved, value.shape)

    _, gradient = engine.value_and_gradient(x, seed_of)
    attribution = (gradient * np.sign(x)).astype(np.float32)
    return GradSign(attribution, resolved[0], model.layout, model.preprocessing.order)
