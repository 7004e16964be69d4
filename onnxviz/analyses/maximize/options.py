"""The options of ``maximize``, declared once: what is maximised, how the image is written, moved
and regularised, and how long the ascent runs. The CLI's flags and the facade's keywords come
from these fields; a bad value is an ``OptionError`` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from onnxviz.analyses._common import channels_field, node_field, top_field
from onnxviz.analyses.maximize.objectives import DEFAULT_CHANNELS, OBJECTIVES
from onnxviz.analyses.maximize.parameterisations import PARAMETERISATIONS
from onnxviz.analyses.maximize.transforms import PRESETS, Transforms
from onnxviz.core.options import Options, option
from onnxviz.errors import OptionError

CHANNELS_HELP = f"Channel(s) or classes: 3,7 or repeated (default 0…{DEFAULT_CHANNELS - 1})."
JITTER_SHARE = 28  # the default jitter is a 28th of the input's side: 8 px at 224, as lucid's


@dataclass(frozen=True)
class MaximizeOptions(Options):
    """The layer and channels, the objective, and every setting of the ascent."""

    node: str = node_field()
    channels: list[int] | None = channels_field(CHANNELS_HELP)
    top: int | None = top_field("The K channels a gray image drives most.")
    objective: str | None = field(
        default=None, metadata=option(f"{' | '.join(OBJECTIVES)} (default: class on logits).", choices=OBJECTIVES)
    )
    weights: tuple[float, ...] | None = field(
        default=None, metadata=option("Joint objective: one weight per channel, 1,-0.5 or repeated.")
    )
    steps: int = field(default=256, metadata=option("Gradient ascent steps.", min=1))
    lr: float = field(default=0.05, metadata=option("Adam's learning rate.", min=0))
    param: str = field(default="fft", metadata=option(" | ".join(PARAMETERISATIONS), choices=PARAMETERISATIONS))
    decorrelate: bool = field(
        default=True, metadata=option("fft: lucid's colour decorrelation.", flag="--decorrelate/--no-decorrelate")
    )
    jitter: int | None = field(
        default=None, metadata=option(f"Random shift per step, pixels (default: side/{JITTER_SHARE}).", min=0)
    )
    zoom: tuple[float, float] = field(default=(0.95, 1.05), metadata=option("Random scale per step LO,HI.", min=0))
    rotate: float = field(default=5.0, metadata=option("Random rotation per step, ± degrees.", min=0))
    decay: float = field(default=0.0, metadata=option("L2 decay weight.", min=0))
    tv: float = field(default=0.0, metadata=option("Total variation weight.", min=0))
    blur: float = field(default=0.0, metadata=option("Gaussian blur sigma (pixel param).", min=0))
    blur_every: int = field(default=0, metadata=option("Blur every N steps.", min=0))
    clip_percentile: float = field(
        default=0.0, metadata=option("Gray out pixels whose norm is below this percentile.", min=0)
    )
    regularise: str | None = field(
        default=None,
        metadata=option(f"Yosinski et al.'s regularisers (pixel param): {' | '.join(PRESETS)}.", choices=PRESETS),
    )
    seed: int = field(default=0, metadata=option("Seed of the start images and transforms.", min=0))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.lr > 0:
            raise OptionError("lr", f"{{option}} must be positive; got {self.lr:g}.")
        if len(self.zoom) != 2 or not 0 < self.zoom[0] <= self.zoom[1]:
            shown = ",".join(f"{z:g}" for z in self.zoom)
            raise OptionError("zoom", f"{{option}} needs two numbers LO,HI with 0 < LO ≤ HI; got {shown}.")
        if self.clip_percentile >= 100:
            raise OptionError("clip_percentile", f"{{option}} must be below 100; got {self.clip_percentile:g}.")
        if self.regularise is None and self.param == "fft" and (self.blur or self.clip_percentile):
            raise OptionError(
                "blur" if self.blur else "clip_percentile",
                "{option} changes pixels between steps; the fft parameterisation has none.",
                "Add {param} pixel ({regularise} does).",
            )

    def regularised(self) -> MaximizeOptions:
        """The options in effect: a ``regularise`` preset's values in place (on the pixel
        parameterisation), else these."""
        if self.regularise is None:
            return self
        return replace(self, regularise=None, param="pixel", **PRESETS[self.regularise])  # type: ignore[arg-type]

    def transforms(self, height: int) -> Transforms:
        jitter = max(1, round(height / JITTER_SHARE)) if self.jitter is None else self.jitter
        return Transforms(jitter=jitter, scale=self.zoom, rotate=self.rotate)
