"""``explain``: several methods side by side for one image, the figure papers show (image | gradcam |
guided | ig | smoothgrad).

Each method runs through its own analysis, ``cam`` or ``attribute``, with the same target and
layer, so a panel is exactly what that command gives: a cam's map is its ``heatmaps`` row (``cam
--raw``); an input-space attribution is reduced to one (H, W) map by Σ over channels of |·| and
normalised by the same function as a cam's (minus its min, ÷ (1e-7 + its max)), so every map is
in [0, 1] and the maps stack into one array. Which analysis a method belongs to is read from
their options' choices, so a method added to either is a choice here with nothing to change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from onnxviz.analyses._common import prepared_images
from onnxviz.analyses.attribute.analysis import attribute
from onnxviz.analyses.attribute.options import AttributeOptions
from onnxviz.analyses.cam.analysis import CamOptions, cam
from onnxviz.analyses.cam.methods import normalised
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.options import Options, declared, option
from onnxviz.core.result import Result
from onnxviz.core.types import Image
from onnxviz.render import pictures as render
from onnxviz.targets.base import ResolvedTarget
from onnxviz.targets.spelling import SPELLINGS, TargetSpelling


def _choices(options: type[Options]) -> tuple[str, ...]:
    """The methods an analysis offers: the choices its options declare for ``method``."""
    return next(spec.choices or () for f, spec in declared(options) if f.name == "method")


CAM_METHODS = _choices(CamOptions)
ATTRIBUTE_METHODS = _choices(AttributeOptions)
DEFAULT_METHODS = ("gradcam", "guided", "ig", "smoothgrad")
TARGET_HELP = f"What to explain: {SPELLINGS} (default: the image's top-1 class)."
LAYER_HELP = "The layer the cam methods read (default: the last 4-D layer with more than one position)."
CONTRAST_PERCENTILE = 99.5  # an attribution's brightest pixels saturate, so one hot pixel does not darken the rest


@dataclass(frozen=True)
class ExplainOptions(Options):
    """The methods shown side by side, the target they explain and the layer the cams read."""

    methods: tuple[str, ...] = field(
        default=DEFAULT_METHODS,
        metadata=option(
            "Methods: gradcam,guided,ig or repeated; any cam or attribute method.",
            choices=(*CAM_METHODS, *ATTRIBUTE_METHODS),
        ),
    )
    target: TargetSpelling = field(default=None, metadata=option(TARGET_HELP))
    layer: str | None = field(default=None, metadata=option(LAYER_HELP))


@dataclass
class Panel:
    """One method's map of the image: (H, W) float32 in [0, 1], the target it explains, and whether
    it is a cam (drawn over the picture) or an input-space attribution (drawn beside it)."""

    method: str
    map: np.ndarray
    target: ResolvedTarget
    over_picture: bool

    def peak(self) -> tuple[int, int]:
        """The map's strongest position (y, x) in input pixels, the first in row-major order."""
        return tuple(int(i) for i in np.unravel_index(self.map.argmax(), self.map.shape))


@dataclass
class Explanation(Result):
    """``panels``: one per method, in the order asked; ``raw()``: their maps stacked (M, H, W)."""

    image: str
    picture: np.ndarray = field(repr=False)
    panels: list[Panel]
    labels: list[str] | None = None

    def raw(self) -> np.ndarray:
        """What ``--raw`` writes: every method's (H, W) map, in the order of the methods."""
        return np.stack([panel.map for panel in self.panels]).astype(np.float32)

    def described(self, target: ResolvedTarget) -> str:
        """The target in words, named with this model's labels."""
        return target.described(self.labels)

    def drawn(self, panel: Panel) -> np.ndarray:
        """One panel as a picture: a cam over the image (jet), an attribution in grey (white: strong)."""
        height, width = self.picture.shape[:2]
        shown = cv2.resize(panel.map, (width, height))
        if panel.over_picture:
            return render.heatmap_overlay(self.picture, shown, 1, 1)
        ceiling = render.percentile(shown.ravel(), CONTRAST_PERCENTILE) or float(shown.max()) or 1.0
        grey = (np.clip(shown / ceiling, 0, 1) * 255).astype(np.uint8)
        return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)

    def seen(self) -> np.ndarray:
        """The picture as the model saw the target: with a detector's boxes or a segmenter's
        classes drawn on it, else as it is."""
        panel = self.panels[0]
        drawn = panel.target.drawn(self.picture, self.labels, panel.map.shape)
        return self.picture if drawn is None else drawn

    def figure(self) -> np.ndarray:
        """A row: the picture, then each method's panel titled with the method, target and score."""
        size = render.tile_size(*self.picture.shape[:2])
        tiles = [render.titled_tile(self.seen(), size, [Path(self.image).name, ""])]
        for panel in self.panels:
            lines = [panel.method, f"{self.described(panel.target)}: {panel.target.score:.3g}"]
            tiles.append(render.titled_tile(self.drawn(panel), size, lines))
        return render.grid(tiles, len(tiles))

    def summary(self) -> dict:
        """What ``--json`` prints: per method its target and its map's peak (y, x) in input pixels."""
        methods = {
            panel.method: {"target": panel.target.summary(), "peak": list(panel.peak())} for panel in self.panels
        }
        size = [int(v) for v in self.panels[0].map.shape]  # (H, W): where a click on the picture lands
        return {"image": self.image, "size": size, "methods": methods}


def explain(model: LoadedModel, image: Image, options: ExplainOptions) -> Explanation:
    """Several methods side by side for one image: each a cam over it or an attribution beside it."""
    prepared = prepared_images(model, [image])
    # Each method is handed the prepared input (a tensor is used as is), so the picture is read once.
    x = prepared.inputs[:1]
    panels = [_panel(model, x, method, options) for method in dict.fromkeys(options.methods)]
    return Explanation(prepared.names[0], prepared.pictures[0], panels, model.labels())


def _panel(model: LoadedModel, image: Image, method: str, options: ExplainOptions) -> Panel:
    """``method``'s map of ``image`` from its own analysis, with the target it resolved."""
    layers = None if options.layer is None else [options.layer]
    if method in CAM_METHODS:
        found = cam(model, [image], CamOptions(method=method, layer=layers, target=options.target))
        return Panel(method, found.heatmaps[0], found.targets[0], over_picture=True)
    # A method that reads a layer too (guided-gradcam) is given the cams' one.
    found = attribute(model, [image], AttributeOptions(method=method, target=options.target, layer=layers))
    channels = -1 if model.layout == "nhwc" else 0
    reduced = np.abs(found.attribution[0]).sum(axis=channels)
    return Panel(method, normalised(reduced[None])[0], found.targets[0], over_picture=False)
