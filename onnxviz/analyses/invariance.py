"""Invariance curves (Zeiler & Fergus §4.4, Fig. 5): how far features move as the image moves.

Each image is translated, rotated or scaled by every amount (``runtime/warps.py``: the
preprocessed input tensor warped at the model's input size). For layer L and amount A:

    distance = ‖f_L(T_A x) − f_L(x)‖₂ over the whole tensor,   relative = distance / ‖f_L(x)‖₂

and ``probability`` is the softmax of the logits at the target class (default: each image's
untransformed top-1), ``top_class`` the most probable class at each amount. The layers default
to the first conv layer and the code layer (the paper's layers 1 and 7). One forward session cut
at every layer and the logits runs all amounts of all images in batches; each batch is reduced
to its distances at once, so a sweep never holds more than one batch of feature maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onnxviz.analyses._common import prepared_images, softmax
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.options import Options, option
from onnxviz.core.progress import Progress
from onnxviz.core.result import Result
from onnxviz.core.types import Image
from onnxviz.data.preprocess import picture_from_tensor
from onnxviz.errors import OptionError
from onnxviz.graph.aliases import Layer
from onnxviz.render.curves import Panel, Thumbnails, curves_figure
from onnxviz.runtime.batching import batch_size_for, run_in_batches
from onnxviz.runtime.engines import ForwardKey
from onnxviz.runtime.forward import ForwardRunner
from onnxviz.runtime.projector import seeded_tensor
from onnxviz.runtime.warps import TRANSFORMS, Warps, check_transform

TRANSLATE_STEPS = 13
THUMBNAILS = 5
IDENTITY = {"translate": 0.0, "rotate": 0.0, "scale": 1.0}
AXIS_LABELS = {"translate": "shift down (pixels)", "rotate": "rotation (degrees)", "scale": "scale factor"}


def default_amounts(transform: str, height: int) -> list[float]:
    """translate −¼H…¼H in 13 steps (rounded), rotate 0…350 by 10, scale 0.5…1.8 by 0.1."""
    check_transform(transform)
    if transform == "translate":
        return [float(a) for a in np.round(np.linspace(-height / 4, height / 4, TRANSLATE_STEPS))]
    if transform == "rotate":
        return [float(a) for a in range(0, 360, 10)]
    return [round(tenths / 10, 1) for tenths in range(5, 19)]


@dataclass
class InvarianceCurves(Result):
    """The curves of every image; arrays are indexed (layer,) image, amount."""

    transform: str
    amounts: list[float]
    layers: list[str]
    images: list[str]
    distance: np.ndarray  # float64 (layers, images, amounts)
    relative: np.ndarray  # float64 (layers, images, amounts); NaN where the layer is all zeros
    target_class: list[int] | None  # per image; None: the model has no class vector to follow
    probability: np.ndarray | None  # float64 (images, amounts)
    top_class: np.ndarray | None  # int (images, amounts)
    thumbnails: np.ndarray  # uint8 (images, k, H, W, 3): the inputs at ``thumbnail_amounts``
    thumbnail_amounts: list[float]
    labels: list[str] | None = None
    note: str = ""

    def label(self, index: int) -> str:
        if self.labels and 0 <= index < len(self.labels):
            return self.labels[index]
        return str(index)

    def summary(self) -> dict:
        """``invariance --json``; ``target_class`` maps each image to the class followed."""
        images = {}
        for i, name in enumerate(self.images):
            images[name] = {
                "distance": {layer: _numbers(self.distance[k, i]) for k, layer in enumerate(self.layers)},
                "relative": {layer: _numbers(self.relative[k, i]) for k, layer in enumerate(self.layers)},
                "probability": _numbers(self.probability[i]) if self.probability is not None else None,
                "top_class": [int(c) for c in self.top_class[i]] if self.top_class is not None else None,
            }
        targets = None if self.target_class is None else dict(zip(self.images, self.target_class, strict=True))
        return {
            "transform": self.transform,
            "amounts": list(self.amounts),
            "layers": list(self.layers),
            "target_class": targets,
            "images": images,
        }

    def figure(self) -> np.ndarray:
        panels = [
            Panel(f"{layer}: feature distance", "‖f(Tx) − f(x)‖₂", self.distance[k])
            for k, layer in enumerate(self.layers)
        ]
        names = [Path(name).name for name in self.images]
        if self.probability is not None:
            panels.append(Panel("probability of the class", "p(class | Tx)", self.probability, unit_range=True))
            names = [f"{name} ({self.label(c)})" for name, c in zip(names, self.target_class, strict=True)]
        thumbnails = Thumbnails(self.thumbnails, [f"{a:g}" for a in self.thumbnail_amounts])
        title = f"invariance to {self.transform}: {len(self.images)} image(s), {len(self.amounts)} amounts"
        return curves_figure(title, AXIS_LABELS[self.transform], self.amounts, names, panels, thumbnails)


def _numbers(values: np.ndarray) -> list[float | None]:
    """JSON numbers; a value that is not finite (a relative distance to an all-zero layer) is null."""
    return [float(v) if np.isfinite(v) else None for v in values]


@dataclass(frozen=True)
class Sweep:
    """What one forward session reads: the layers' tensors and, for a classifier, the logits."""

    layers: list[Layer]
    tensors: list[str]
    logits: str | None


@dataclass(frozen=True)
class InvarianceOptions(Options):
    """The transform and its amounts, the layers followed and the class whose probability is drawn."""

    transform: str = field(metadata=option("translate | rotate | scale.", choices=TRANSFORMS, aliases=("-t",)))
    amounts: list[float] | None = field(
        default=None,
        metadata=option("Pixels down, degrees counter-clockwise or zoom factors: -8,0,8 or repeated."),
    )
    layers: list[str] | None = field(
        default=None,
        metadata=option("Layers to follow: conv1,fc7 or repeated (default: conv1 and the code layer)."),
    )
    target_class: int | None = field(
        default=None, metadata=option("Class to follow (default: each image's top-1).", min=0)
    )


def invariance(
    model: LoadedModel, images: Sequence[Image], options: InvarianceOptions, progress: Progress | None = None
) -> InvarianceCurves:
    """The invariance curves of ``images`` under ``options.transform`` (see the module docstring)."""
    transform, amounts, layers, target_class = options.transform, options.amounts, options.layers, options.target_class
    prepared = prepared_images(model, images)
    names, inputs, shape = prepared.names, [x[None] for x in prepared.inputs], prepared.shape
    if amounts is None:
        amounts = default_amounts(transform, shape[model.height_axis])
    warps = Warps(inputs, model.layout, transform, amounts)
    chosen = warps.amounts
    sweep = _sweep(model, layers)
    runner = model.engines.forward(ForwardKey(tuple(sweep.tensors), shape))
    baseline = [dict(zip(sweep.tensors, runner.run(x), strict=True)) for x in inputs]
    targets = _targets(sweep, baseline, target_class)
    size = batch_size_for(model.graph, model.graph.shapes(shape), None) if runner.batched else 1
    values = run_in_batches(_evaluator(runner, sweep, warps, baseline), warps.count, size, progress)
    distance, probability, top_class = _curves(values, sweep, len(inputs), len(chosen), targets)
    norms = [[np.linalg.norm(b[layer.tensor].astype(np.float64)) for b in baseline] for layer in sweep.layers]
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = distance / np.array(norms)[:, :, None]
    shown = _thumbnail_amounts(transform, chosen)
    return InvarianceCurves(
        transform=transform,
        amounts=chosen,
        layers=[layer.alias for layer in sweep.layers],
        images=names,
        distance=distance,
        relative=relative,
        target_class=targets,
        probability=probability,
        top_class=top_class,
        thumbnails=_thumbnails(model, inputs, transform, shown),
        thumbnail_amounts=shown,
        labels=model.labels(),
        note=runner.note,
    )


def _sweep(model: LoadedModel, layers: Sequence[str] | None) -> Sweep:
    """The layers (default: the first conv layer and the code layer) and the tensors to read."""
    graph = model.graph
    chosen = [model.resolve(name) for name in layers] if layers else [*graph.conv_layers()[:1], graph.code_layer()]
    unique = list({layer.tensor: layer for layer in chosen}.values())
    logits = seeded_tensor(graph, graph.output_names[0]) if graph.output_names else None
    tensors = list(dict.fromkeys([*(layer.tensor for layer in unique), *([logits] if logits else [])]))
    return Sweep(unique, tensors, logits)


def _targets(sweep: Sweep, baseline: list[dict[str, np.ndarray]], target_class: int | None) -> list[int] | None:
    """The class followed in each image: ``target_class``, else its untransformed top-1. None for a
    model without a class vector (then only a requested ``target_class`` is an error: the
    distances need no class)."""
    shape = baseline[0][sweep.logits].shape if sweep.logits is not None else None
    is_vector = shape is not None and len(shape) >= 2 and shape[0] == 1 and max(shape[1:]) == np.prod(shape[1:])
    if not is_vector or np.prod(shape[1:]) < 2:
        if target_class is None:
            return None
        shown = f"'{sweep.logits}' has shape {list(shape)}" if shape is not None else "declares no output"
        raise OptionError(
            "target_class",
            f"{{option}} needs a class vector, but the model's output {shown}: there is no class probability.",
            "Leave out {option} for the layers' distance curves alone.",
        )
    logits = np.concatenate([b[sweep.logits].reshape(1, -1) for b in baseline])
    if target_class is None:
        return [int(row.argmax()) for row in logits]
    if not 0 <= target_class < logits.shape[1]:
        raise OptionError(
            "target_class",
            f"Class {target_class} does not exist: the model has classes 0…{logits.shape[1] - 1}.",
        )
    return [target_class] * len(baseline)


def _evaluator(runner: ForwardRunner, sweep: Sweep, warps: Warps, baseline: list[dict[str, np.ndarray]]):
    """Per batch of sweep items: their distance to the untransformed features in every layer, then
    their logits, as one float64 row each; the feature maps are dropped with the batch."""
    originals = {
        layer.tensor: np.concatenate([b[layer.tensor].reshape(1, -1) for b in baseline]).astype(np.float64)
        for layer in sweep.layers
    }

    def evaluate(indices: list[int]) -> np.ndarray:
        outputs = dict(zip(sweep.tensors, runner.run(warps.batch(indices), "invariance sweep"), strict=True))
        images = warps.image_of(indices)
        columns = []
        for layer in sweep.layers:
            moved = outputs[layer.tensor].reshape(len(indices), -1).astype(np.float64)
            columns.append(np.linalg.norm(moved - originals[layer.tensor][images], axis=1)[:, None])
        if sweep.logits is not None:
            columns.append(outputs[sweep.logits].reshape(len(indices), -1).astype(np.float64))
        return np.concatenate(columns, axis=1)

    return evaluate


def _curves(
    values: np.ndarray, sweep: Sweep, images: int, amounts: int, targets: list[int] | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(distance (layers, images, amounts), probability, top class (images, amounts))."""
    count = len(sweep.layers)
    distance = values[:, :count].T.reshape(count, images, amounts)
    if targets is None:
        return distance, None, None
    probabilities = softmax(values[:, count:]).reshape(images, amounts, -1)
    probability = np.stack([probabilities[i, :, target] for i, target in enumerate(targets)])
    return distance, probability, probabilities.argmax(axis=2)


def _thumbnail_amounts(transform: str, amounts: list[float]) -> list[float]:
    """A few amounts spread over the sweep, its ends included, in the sweep's order; the
    untransformed input (shift 0, angle 0, zoom 1) among them where the sweep has it."""
    picks = np.round(np.linspace(0, len(amounts) - 1, min(THUMBNAILS, len(amounts)))).astype(int)
    identity = IDENTITY[transform]
    if identity in amounts and identity not in [amounts[i] for i in picks]:
        index = amounts.index(identity)
        picks[np.abs(picks - index).argmin()] = index
    return [amounts[i] for i in sorted(set(picks.tolist()))]


def _thumbnails(model: LoadedModel, inputs: list[np.ndarray], transform: str, amounts: list[float]) -> np.ndarray:
    """The transformed inputs as pictures (images, k, H, W, 3), as the model sees them."""
    warps = Warps(inputs, model.layout, transform, amounts)
    pictures = [picture_from_tensor(warps.item(i)[0], model.layout, model.preprocessing) for i in range(warps.count)]
    return np.stack(pictures).reshape(len(inputs), len(amounts), *pictures[0].shape)
