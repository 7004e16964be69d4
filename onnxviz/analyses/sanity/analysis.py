"""``sanity``: do a method's maps depend on what the model learnt? Cascading model-parameter
randomisation (Adebayo et al., "Sanity Checks for Saliency Maps", 2018).

The parameterised nodes are re-drawn one more at a time from the output down (``randomise``);
at each step every method's map of every image is computed again on the randomised model, for the
target the original model chose, and compared with the original map (``similarity``): Spearman's
ρ of the absolute maps (an input-space attribution: Σ over channels of |·|; a cam: its heatmap)
and of the signed ones (Σ over channels as it is), and SSIM of the absolute maps. A step's model
lives in memory only: its graph is built from the original's with the drawn initializers, its
sessions serve every method and image of that step and go with it; the original model's sessions
(its maps, the targets) are the model's own cached ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from onnxviz.analyses._common import prepared_images
from onnxviz.analyses.faithfulness.maps import METHODS, MethodOptions, Settings, attribute_field, method_maps
from onnxviz.analyses.sanity.randomise import Parameterised, drawn_tensors, parameterised_nodes, randomised_graph
from onnxviz.analyses.sanity.similarity import spearman, ssim
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.options import option
from onnxviz.core.progress import Progress
from onnxviz.core.result import Result
from onnxviz.core.types import Image
from onnxviz.render import pictures as render
from onnxviz.runtime.engines import ForwardKey
from onnxviz.targets.base import ResolvedTarget
from onnxviz.targets.fixed import FixedTarget
from onnxviz.targets.spelling import parse_target

FIGURE_COLUMNS = 12  # steps shown in the figure beside the original (evenly spread, the last one always)
FIGURE_TILE = 96
SATURATION = 99.5  # the percentile a map's picture saturates at


@dataclass(frozen=True, kw_only=True)
class SanityOptions(MethodOptions):
    """The methods to check, ig's own options, and the judged methods' options (``seed`` also
    seeds the randomisation)."""

    method: list[str] = field(
        metadata=option("Method(s) to check: any cam or attribute method; gradcam,guided or repeated.", choices=METHODS)
    )
    steps: int = attribute_field("steps")
    baseline: str | float = attribute_field("baseline")


@dataclass
class Sanity(Result):
    """Per method float64 (N, steps) arrays aligned with ``layers`` (NaN: undefined, a constant map),
    and the absolute maps float32 (steps + 1, N, H, W), the original first."""

    layers: list[Parameterised]
    images: list[str]
    targets: list[ResolvedTarget]
    spearman: dict[str, np.ndarray]
    spearman_signed: dict[str, np.ndarray]
    ssim: dict[str, np.ndarray]
    maps: dict[str, np.ndarray] = field(repr=False)
    pictures: list[np.ndarray] = field(repr=False)

    def figure(self) -> np.ndarray:
        """The paper's Fig. 2 per image: rows = methods, columns = the original and the steps."""
        shown = _shown_steps(len(self.layers))
        size = (FIGURE_TILE, FIGURE_TILE)
        parts = []
        for row, name in enumerate(self.images):
            rows = []
            for method in self.maps:
                tiles = [render.titled_tile(_grey(self.maps[method][0, row]), size, [method, "original"])]
                for step in shown:
                    value = self.spearman[method][row, step]
                    caption = [
                        f"{step + 1}: {self.layers[step].node}",
                        "rho " + ("-" if np.isnan(value) else f"{value:.2f}"),
                    ]
                    tiles.append(render.titled_tile(_grey(self.maps[method][step + 1, row]), size, caption))
                rows.append(render.grid(tiles, len(tiles)))
            picture = render.titled_tile(self.pictures[row], size, [Path(name).name, "image"])
            parts.append(render.beside(render.grid([picture], 1), render.column(rows)))
        return render.with_header(render.column(parts), "cascading randomisation, from the output down")

    def summary(self) -> dict:
        """What ``--json`` prints: the order with the tensors drawn, and per method the measures
        as lists per image of values per step (null: undefined)."""

        def listed(values: np.ndarray) -> list[list[float | None]]:
            return [[None if np.isnan(v) else float(v) for v in row] for row in values]

        methods = {
            m: {
                "spearman": listed(self.spearman[m]),
                "spearman_signed": listed(self.spearman_signed[m]),
                "ssim": listed(self.ssim[m]),
            }
            for m in self.spearman
        }
        return {
            "layers": [layer.node for layer in self.layers],
            "tensors": [list(layer.tensors) for layer in self.layers],
            "images": {name: target.summary() for name, target in zip(self.images, self.targets, strict=True)},
            "methods": methods,
        }


def _shown_steps(count: int) -> list[int]:
    """The steps the figure shows: all of a short order, else evenly spread ones and the last."""
    if count <= FIGURE_COLUMNS:
        return list(range(count))
    return sorted({round(float(k)) for k in np.linspace(0, count - 1, FIGURE_COLUMNS)})


def _grey(plane: np.ndarray) -> np.ndarray:
    """A map as a grey picture from its minimum to its 99.5th percentile (black: a constant map), so
    one hot pixel does not leave the rest dark, as the paper draws them."""
    low, high = float(plane.min()), render.percentile(plane.ravel(), SATURATION)
    unit = np.zeros(plane.shape) if high <= low else np.clip((plane - low) / (high - low), 0, 1)
    return cv2.cvtColor((unit * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)


def sanity(
    model: LoadedModel, images: Sequence[Image], options: SanityOptions, progress: Progress | None = None
) -> Sanity:
    """Sanity checks (Adebayo et al. 2018): each method's maps as the weights are re-drawn layer by
    layer from the output down, against the original maps (Spearman's rho, SSIM).

    ``progress`` counts the steps."""
    prepared = prepared_images(model, images)
    x = prepared.inputs
    layers = parameterised_nodes(model.graph)
    resolved = _targets(model, x, options)
    settings = Settings(options, options.steps, options.baseline)
    methods = list(dict.fromkeys(options.method))
    original = {m: _maps(model, x, m, settings, resolved) for m in methods}
    maps = {m: [original[m][0].astype(np.float32)] for m in methods}
    measures = {
        kind: {m: np.full((len(x), len(layers)), np.nan) for m in methods} for kind in ("abs", "signed", "ssim")
    }
    drawn: dict[str, np.ndarray] = {}
    for step, layer in enumerate(layers):
        drawn.update(drawn_tensors(model.graph, layer, step, options.seed))
        randomised = LoadedModel(randomised_graph(model.graph, drawn), model.device, model.preprocessing)
        for method in methods:
            magnitude, signed = _maps(randomised, x, method, settings, resolved)
            maps[method].append(magnitude.astype(np.float32))  # kept for the figure only
            for row in range(len(x)):
                before, before_signed = original[method][0][row], original[method][1][row]
                measures["abs"][method][row, step] = _defined(spearman(before, magnitude[row]))
                measures["signed"][method][row, step] = _defined(spearman(before_signed, signed[row]))
                measures["ssim"][method][row, step] = _defined(ssim(before, magnitude[row]))
        if progress is not None:
            progress(step + 1, len(layers))
    return Sanity(
        layers=layers,
        images=prepared.names,
        targets=resolved,
        spearman=measures["abs"],
        spearman_signed=measures["signed"],
        ssim=measures["ssim"],
        maps={m: np.stack(maps[m]) for m in methods},
        pictures=prepared.pictures,
    )


def _defined(value: float | None) -> float:
    return np.nan if value is None else value


def _targets(model: LoadedModel, x: np.ndarray, options: SanityOptions) -> list[ResolvedTarget]:
    """Each image's target as the original model resolves it (its top-1 class by default)."""
    target = parse_target(options.target)
    runner = model.engines.forward(ForwardKey((target.tensor(model.graph),), (1, *x.shape[1:])))
    return [target.resolve(model.graph, runner.run(image[None])[0]) for image in x]


def _maps(
    model: LoadedModel, x: np.ndarray, method: str, settings: Settings, resolved: list[ResolvedTarget]
) -> tuple[np.ndarray, np.ndarray]:
    """(absolute, signed) float64 (N, H, W) maps of ``method`` on ``model``, each image explaining
    its own fixed target."""
    found = [
        method_maps(model, image[None], method, settings, FixedTarget(target))
        for image, target in zip(x, resolved, strict=True)
    ]
    return np.concatenate([f.magnitude for f in found]), np.concatenate([f.signed for f in found])
