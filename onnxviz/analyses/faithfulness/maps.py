"""The saliency map of any cam or attribute method as one (H, W) plane per image, and the options
those methods take, declared once for the analyses that judge them (``faithfulness``, ``sanity``).

A method is run through its own analysis (``cam.analysis.cam``, ``attribute.analysis.attribute``)
with the options it would get from its own command, so no arithmetic of a method is repeated here.
The plane is the contract's: a cam's ``--raw`` heatmap, or an input-space attribution summed over
the channels, of its absolute values (``magnitude``) and as it is (``signed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onnxviz.analyses.attribute.analysis import attribute
from onnxviz.analyses.attribute.options import METHODS as ATTRIBUTE_METHODS
from onnxviz.analyses.attribute.options import AttributeOptions
from onnxviz.analyses.cam.analysis import CamOptions, cam
from onnxviz.analyses.cam.methods import METHODS as CAM_TABLE
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.options import Options, option
from onnxviz.targets.base import ResolvedTarget
from onnxviz.targets.spelling import TargetSpelling

CAM_METHODS = tuple(CAM_TABLE)
METHODS = (*CAM_METHODS, *ATTRIBUTE_METHODS)
TARGET_HELP = "What to explain: class K, NAME[0,i,...] (an element of a tensor), or each image's top-1 class."
CAM_BATCH = 8  # cam's own default: images per run, copies per run for scorecam and ablationcam


def attribute_field(name: str) -> Any:
    """``attribute``'s own declaration of option ``name``: its default, help and bounds, not copied."""
    declared = AttributeOptions.__dataclass_fields__[name]
    return field(default=declared.default, metadata=declared.metadata)


@dataclass(frozen=True)
class MethodOptions(Options):
    """The options of the judged methods, as ``cam`` and ``attribute`` take them."""

    target: TargetSpelling = field(default=None, metadata=option(TARGET_HELP))
    layer: list[str] | None = field(
        default=None, metadata=option("cam methods, guided-gradcam: the layer(s) (default: cam's default layer).")
    )
    samples: int = attribute_field("samples")
    noise: float = attribute_field("noise")
    masks: int = attribute_field("masks")
    cells: int = attribute_field("cells")
    keep: float = attribute_field("keep")
    seed: int = field(default=0, metadata=option("Seed of every draw (the noise tunnel, rise, the randomisation)."))
    batch_size: int | None = attribute_field("batch_size")


@dataclass(frozen=True)
class Settings:
    """What a method reads besides the images and the target: the options, and ig's own two."""

    options: MethodOptions
    ig_steps: int
    ig_baseline: str | float = "zero"


@dataclass
class Maps:
    """One method's planes for N images: float64 (N, H, W) each, and the targets it explained."""

    magnitude: np.ndarray
    signed: np.ndarray
    targets: list[ResolvedTarget]


def method_maps(
    model: LoadedModel, inputs: np.ndarray, method: str, settings: Settings, target: TargetSpelling
) -> Maps:
    """``method``'s planes of ``inputs`` (N, *input), prepared tensors in the model's layout."""
    given = settings.options
    if method in CAM_METHODS:
        batch = given.batch_size or CAM_BATCH
        found = cam(model, list(inputs), CamOptions(method=method, layer=given.layer, target=target, batch_size=batch))
        heatmaps = found.heatmaps.astype(np.float64)
        return Maps(heatmaps, heatmaps, found.targets)
    options = AttributeOptions(
        method=method,
        target=target,
        steps=settings.ig_steps,
        baseline=settings.ig_baseline,
        samples=given.samples,
        noise=given.noise,
        layer=given.layer,
        masks=given.masks,
        cells=given.cells,
        keep=given.keep,
        seed=given.seed,
        batch_size=given.batch_size,
    )
    found = attribute(model, list(inputs), options)
    channel_axis = 3 if model.layout == "nhwc" else 1
    values = found.attribution.astype(np.float64)
    return Maps(np.abs(values).sum(axis=channel_axis), values.sum(axis=channel_axis), found.targets)
