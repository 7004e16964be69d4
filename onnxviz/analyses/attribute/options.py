"""The options of ``attribute``, declared once: the CLI's flags, the Python keywords and their checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from onnxviz.core.options import Options, option
from onnxviz.targets.spelling import SPELLINGS

METHODS = (
    "saliency",
    "inputxgrad",
    "ig",
    "smoothgrad",
    "smoothgrad-sq",
    "vargrad",
    "deconvnet",
    "guided",
    "guided-gradcam",
    "rise",
)
TARGET_HELP = f"What to explain: {SPELLINGS} (default: each image's top-1 class)."


@dataclass(frozen=True)
class AttributeOptions(Options):
    """What ``attribute`` takes beyond the images."""

    method: str = field(metadata=option(" | ".join(METHODS) + ".", choices=METHODS))
    target: int | str | None = field(default=None, metadata=option(TARGET_HELP))
    steps: int = field(default=50, metadata=option("ig: Gauss–Legendre steps from the baseline to the image.", min=1))
    baseline: str | float = field(
        default="zero", metadata=option("ig: zero, a number, or a .npy shaped like the input (preprocessed space).")
    )
    samples: int = field(default=50, metadata=option("smoothgrad, smoothgrad-sq, vargrad: noisy copies.", min=1))
    noise: float = field(
        default=0.15, metadata=option("smoothgrad, smoothgrad-sq, vargrad: σ as a share of the image's range.", min=0)
    )
    layer: list[str] | None = field(
        default=None,
        metadata=option("guided-gradcam: the Grad-CAM layer(s), maps averaged (default: cam's default layer)."),
    )
    masks: int = field(default=4000, metadata=option("rise: random masks.", min=1))
    cells: int = field(default=7, metadata=option("rise: grid cells per side.", min=1))
    keep: float = field(default=0.5, metadata=option("rise: chance that a cell is kept.", min=0, max=1))
    seed: int = field(default=0, metadata=option("Seed of the noise (the noise tunnel) and the masks (rise)."))
    batch_size: int | None = field(
        default=None, metadata=option("Points per run (default: as many as a quarter of free memory holds).", min=1)
    )
