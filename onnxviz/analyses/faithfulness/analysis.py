"""``faithfulness``: do the pixels a map ranks first carry the score? Deletion and insertion
curves and their areas (Petsiuk et al. 2018) for any cam or attribute method, and ``random``.

Each method's map is computed by its own analysis (``maps.method_maps``) for all images at once;
the ``random`` map is ``rng.random((H, W))`` per image in the order given, from one
``default_rng(seed)`` per call. The curves (``curves``) of every method and image are scored as
one stream of batches through one cached forward session. The score is the softmax probability of
a class target, the target's score itself for any other kind. AUC: the trapezoid rule over t/steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onnxviz.analyses._common import prepared_images, softmax
from onnxviz.analyses.faithfulness.curves import Perturbation, area, blurred, pixel_order, scored_curves
from onnxviz.analyses.faithfulness.maps import METHODS, MethodOptions, Settings, method_maps
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.options import option
from onnxviz.core.progress import Progress
from onnxviz.core.result import Result
from onnxviz.core.types import Image
from onnxviz.errors import OptionError
from onnxviz.render import pictures as render
from onnxviz.render.lineplot import line_plot
from onnxviz.runtime.batching import batch_size_for
from onnxviz.runtime.engines import ForwardKey
from onnxviz.targets.base import ResolvedTarget
from onnxviz.targets.classes import ClassTarget
from onnxviz.targets.spelling import parse_target

RANDOM = "random"
METRICS = ("deletion", "insertion")


@dataclass(frozen=True, kw_only=True)
class FaithfulnessOptions(MethodOptions):
    """The methods to judge, the metric, its steps and deletion's baseline, and the methods' options."""

    method: list[str] = field(
        metadata=option(
            "Method(s) to judge: any cam or attribute method, or random; gradcam,ig or repeated.",
            choices=(*METHODS, RANDOM),
        )
    )
    metric: str = field(default="deletion", metadata=option("deletion | insertion.", choices=METRICS))
    steps: int = field(default=100, metadata=option("Steps of the curve (pixels change in steps of H·W/steps).", min=1))
    baseline: str | float = field(
        default="zero",
        metadata=option("deletion: the value removed pixels get, zero or a number (preprocessed space)."),
    )
    ig_steps: int = field(default=50, metadata=option("ig: Gauss–Legendre steps from zero to the image.", min=1))


@dataclass
class Faithfulness(Result):
    """``curves[M]``: float64 (N, steps + 1) scores per image; ``aucs[M]``: (N,) their areas."""

    metric: str
    steps: int
    images: list[str]
    curves: dict[str, np.ndarray]
    aucs: dict[str, np.ndarray]
    targets: list[ResolvedTarget]
    measure: str  # what the curve reads: "probability" of a class, or "score"

    def figure(self) -> np.ndarray:
        """Per image, one curve per method over the share of pixels changed, its AUC in the legend."""
        plots = []
        for row, name in enumerate(self.images):
            curves = np.stack([self.curves[m][row] for m in self.curves])
            labels = [f"{m} (AUC {self.aucs[m][row]:.3f})" for m in self.curves]
            title = f"{self.metric}: {Path(name).name}"
            plot = line_plot(curves, labels, title, f"step (of {self.steps})", self.measure)
            plots.append(plot)
        return render.column(plots)

    def summary(self) -> dict:
        """What ``--json`` prints: the metric and per method each image's AUC and curve."""
        methods = {
            m: {"auc": [float(a) for a in self.aucs[m]], "curve": [[float(v) for v in c] for c in self.curves[m]]}
            for m in self.curves
        }
        targets = {name: target.summary() for name, target in zip(self.images, self.targets, strict=True)}
        return {"metric": self.metric, "steps": self.steps, "images": targets, "methods": methods}


def faithfulness(
    model: LoadedModel, images: Sequence[Image], options: FaithfulnessOptions, progress: Progress | None = None
) -> Faithfulness:
    """Deletion or insertion curves (Petsiuk et al. 2018): the score as the pixels each method ranks
    first are removed, or restored into a blurred copy; their areas, against a random ranking.

    ``progress`` counts the scored inputs as their batches finish."""
    prepared = prepared_images(model, images)
    x, shape = prepared.inputs, prepared.shape
    target = parse_target(options.target)
    tensor = target.tensor(model.graph)
    runner = model.engines.forward(ForwardKey((tensor,), shape))

    def values(batch: np.ndarray) -> np.ndarray:
        runs = [batch] if runner.batched else [batch[k : k + 1] for k in range(len(batch))]
        return np.concatenate([runner.run(run)[0] for run in runs])

    resolved = [target.resolve(model.graph, value[None]) for value in values(x)]
    classes = all(t.kind == ClassTarget.kind for t in resolved)  # a detection has a class, but no softmax

    def score(batch: np.ndarray, owners: np.ndarray) -> np.ndarray:
        found = values(batch)
        if classes:
            probabilities = softmax(found.reshape(len(found), -1).astype(np.float64))
            return probabilities[np.arange(len(found)), [resolved[o].class_index for o in owners]]
        return np.array([resolved[o].scores(found[k : k + 1])[0] for k, o in enumerate(owners)], np.float64)

    methods = list(dict.fromkeys(options.method))
    ends = _ends(model, x, options)  # first: a bad baseline is refused before any map is made
    planes = _planes(model, x, methods, options)
    perturbations = [
        Perturbation(start, end, pixel_order(plane), row)
        for method in methods
        for row, (plane, (start, end)) in enumerate(zip(planes[method], ends, strict=True))
    ]
    batch = batch_size_for(model.graph, model.graph.shapes(shape), options.batch_size)
    scored = scored_curves(perturbations, options.steps, model.layout, score, batch, progress)
    curves = dict(zip(methods, scored.reshape(len(methods), len(x), -1), strict=True))
    aucs = {m: np.array([area(c) for c in curves[m]]) for m in curves}
    measure = "probability" if classes else "score"
    return Faithfulness(options.metric, options.steps, prepared.names, curves, aucs, resolved, measure)


def _planes(
    model: LoadedModel, x: np.ndarray, methods: list[str], options: FaithfulnessOptions
) -> dict[str, np.ndarray]:
    """Each method's (N, H, W) ranking map: Σ over channels of |attribution|, a cam's heatmap, or
    the random draws."""
    settings = Settings(options, options.ig_steps)
    axis = model.height_axis
    size = (x.shape[axis], x.shape[axis + 1])
    planes = {}
    for method in methods:
        if method == RANDOM:
            rng = np.random.default_rng(options.seed)
            planes[method] = np.stack([rng.random(size) for _ in range(len(x))])
        else:
            planes[method] = method_maps(model, x, method, settings, options.target).magnitude
    return planes


def _ends(model: LoadedModel, x: np.ndarray, options: FaithfulnessOptions) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per image, where its curve starts and what its changed pixels become: the image and the
    baseline (deletion), or the blurred image and the image (insertion)."""
    if options.metric == "insertion":
        return [(blurred(image, model.layout), image) for image in x]
    fill = _baseline(options.baseline)
    return [(image, np.full_like(image, fill)) for image in x]


def _baseline(baseline: str | float) -> float:
    """Deletion's value for removed pixels: zero or a number."""
    text = str(baseline).strip()
    if text == "zero":
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise OptionError("baseline", f"{{option}} '{text}' is neither zero nor a finite number.")
    return value
