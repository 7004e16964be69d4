"""``attribute``: which input values raise a target's score, by one of the methods in ``METHODS``.

The images are prepared at the first one's input size, the target is fixed on each image's own
forward value (its top-1 class by default), and the method's points (the images, the path of ig,
the noisy copies, the masked images) run as batches through the model's one cached engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnxviz.analyses._common import ig_baseline, prepared_images
from onnxviz.analyses.attribute.guided_gradcam import guided_gradcam
from onnxviz.analyses.attribute.methods import GRADIENT_METHODS, Attributed, Job
from onnxviz.analyses.attribute.options import AttributeOptions
from onnxviz.analyses.attribute.rise import rise
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.progress import Progress
from onnxviz.core.result import Result
from onnxviz.core.types import Image
from onnxviz.render import pictures as render
from onnxviz.runtime.batching import batch_size_for
from onnxviz.runtime.engines import ForwardKey, GradientKey
from onnxviz.targets.base import ResolvedTarget
from onnxviz.targets.spelling import parse_target

METHODS: dict[str, Callable[[Job], Attributed]] = {
    **GRADIENT_METHODS,
    "guided-gradcam": guided_gradcam,
    "rise": rise,
}
GRADIENT_FREE = frozenset({"rise"})  # a forward session is all they need: no inverse is built


@dataclass
class Attribution(Result):
    """``attribution``: float32 (N, *input) in the model's input layout, signed, one row per image."""

    method: str
    images: list[str]
    attribution: np.ndarray
    targets: list[ResolvedTarget]
    delta: list[float] | None  # ig only: Σ attribution − (score(x) − score(x₀)) per image
    pictures: list[np.ndarray]
    layout: str
    order: str
    labels: list[str] | None = None

    def figure(self) -> np.ndarray:
        """Per image, the picture beside its attribution (grey is zero, brighter raises the score)."""
        rows = []
        for name, picture, attribution, target in zip(
            self.images, self.pictures, self.attribution, self.targets, strict=True
        ):
            shown = self._shown(picture, attribution)
            size = render.tile_size(*shown.shape[:2])
            label = target.described(self.labels)
            spatial = attribution.shape[:2] if self.layout == "nhwc" else attribution.shape[1:]
            drawn = target.drawn(picture, self.labels, spatial)
            rows.append(
                render.beside(
                    render.titled_tile(picture if drawn is None else drawn, size, [Path(name).name]),
                    render.titled_tile(shown, size, [self.method, f"{label}: {target.score:.3g}"]),
                )
            )
        return render.column(rows)

    def _shown(self, picture: np.ndarray, attribution: np.ndarray) -> np.ndarray:
        """A signed map in grey (zero) to bright; RISE's one map per image, a score, over the picture."""
        if self.method != "rise":
            return render.projection_to_rgb(attribution, self.layout, self.order)
        plane = attribution[..., 0] if self.layout == "nhwc" else attribution[0]
        return render.heatmap_overlay(picture, plane, 1, 1)

    def summary(self) -> dict:
        """What ``--json`` prints: the method and, per image as given, its target (and ig's delta)."""
        images: dict[str, dict] = {}
        for row, (name, target) in enumerate(zip(self.images, self.targets, strict=True)):
            images[name] = {"target": target.summary()}
            if self.delta is not None:
                images[name]["delta"] = self.delta[row]
        return {"method": self.method, "images": images}

    def raw(self) -> np.ndarray:
        """What ``--raw`` writes: the attributions."""
        return self.attribution


def attribute(
    model: LoadedModel, images: Sequence[Image], options: AttributeOptions, progress: Progress | None = None
) -> Attribution:
    """The attributions of ``images`` for ``options.target`` by ``options.method``; ``progress``
    counts the points (ig's path, the noisy copies, the masks) as their batches finish."""
    prepared = prepared_images(model, images)
    names, x, pictures = prepared.names, prepared.inputs, prepared.pictures
    shape = (1, *x.shape[1:])
    target = parse_target(options.target)
    tensor = target.tensor(model.graph)
    forward = _forward(model, tensor, shape, gradient=options.method not in GRADIENT_FREE)
    values = forward(x)
    resolved = [target.resolve(model.graph, values[row : row + 1]) for row in range(len(x))]
    batch = batch_size_for(model.graph, model.graph.shapes(shape), options.batch_size)
    job = Job(model, x, tensor, resolved, options, batch, ig_baseline(options.baseline, x), forward, progress)
    attribution, delta = METHODS[options.method](job)
    return Attribution(
        method=options.method,
        images=names,
        attribution=attribution,
        targets=resolved,
        delta=delta,
        pictures=pictures,
        layout=model.layout,
        order=model.preprocessing.order,
        labels=model.labels(),
    )


def _forward(
    model: LoadedModel, tensor: str, shape: tuple[int, ...], gradient: bool
) -> Callable[[np.ndarray], np.ndarray]:
    """The target tensor's value for a batch, from the cached session the method uses anyway: the
    gradient engine's forward for a gradient method, a plain forward session for RISE."""
    if gradient:
        return model.engines.gradient(GradientKey(tensor, shape)).value
    runner = model.engines.forward(ForwardKey((tensor,), shape))
    if runner.batched:
        return lambda x: runner.run(x)[0]
    return lambda x: np.concatenate([runner.run(x[k : k + 1])[0] for k in range(len(x))])
