"""Warped inputs for the invariance curves: the model's input translated, rotated or scaled.

Zeiler & Fergus (Fig. 5) move, turn and zoom an image and watch how far the features move and
how the class probability changes. The warp acts on the preprocessed input tensor at the model's
input size, so the curves measure the network and not a second resize of the picture. Every
channel goes through ``cv2.warpAffine`` (bilinear, constant border 0: what the warp uncovers is
zero in preprocessed space, the mean colour for a mean-subtracting model) with the matrix

* ``translate`` A: ``[[1, 0, 0], [0, 1, A]]``, down by A pixels (negative: up);
* ``rotate`` A: ``cv2.getRotationMatrix2D(centre, A, 1)``, A degrees counter-clockwise;
* ``scale`` A: ``cv2.getRotationMatrix2D(centre, 0, A)``, a zoom by A (below 1: smaller);

both about the centre ((W−1)/2, (H−1)/2). The sweep is every amount of every image; ``Warps``
makes any batch of it on demand, so a long sweep never holds more than one batch of inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from onnxviz.errors import UsageError

TRANSFORMS = ("translate", "rotate", "scale")


def check_transform(transform: str) -> None:
    if transform not in TRANSFORMS:
        raise UsageError(f"Unknown transform '{transform}'.", f"Use one of: {', '.join(TRANSFORMS)}.")


def check_amounts(transform: str, amounts: Sequence[float]) -> list[float]:
    """The amounts as floats: at least one, all finite, and a zoom only by a positive factor."""
    check_transform(transform)
    values = [float(a) for a in amounts]
    if not values:
        raise UsageError(f"Give at least one amount to {transform} by.")
    if not all(math.isfinite(a) for a in values):
        raise UsageError(f"The amounts must be finite numbers; got {', '.join(f'{a:g}' for a in values)}.")
    if transform == "scale" and min(values) <= 0:
        raise UsageError(
            f"A scale amount must be a positive zoom factor; got {min(values):g}.",
            "Use factors such as 0.5,1,1.5 (1: unchanged).",
        )
    return values


def warp_matrix(transform: str, amount: float, height: int, width: int) -> np.ndarray:
    """The 2×3 affine matrix ``cv2.warpAffine`` applies for ``transform`` by ``amount``."""
    check_transform(transform)
    if transform == "translate":
        return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, amount]])
    centre = ((width - 1) / 2, (height - 1) / 2)
    if transform == "rotate":
        return cv2.getRotationMatrix2D(centre, amount, 1.0)
    return cv2.getRotationMatrix2D(centre, 0.0, amount)


def warp(tensor: np.ndarray, layout: str, matrix: np.ndarray) -> np.ndarray:
    """``tensor`` (1, …) in ``layout`` with every channel warped by ``matrix`` (same shape)."""
    planes = tensor[0] if layout == "nhwc" else tensor[0].transpose(1, 2, 0)
    height, width, channels = planes.shape
    warped = np.empty_like(planes, dtype=np.float32)
    for channel in range(channels):
        warped[:, :, channel] = cv2.warpAffine(
            np.ascontiguousarray(planes[:, :, channel], dtype=np.float32),
            matrix,
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0.0,
        )
    return (warped if layout == "nhwc" else warped.transpose(2, 0, 1))[None]


class Warps:
    """Every amount of every image as one sweep: item ``i`` is image ``i // len(amounts)`` warped
    by ``amounts[i % len(amounts)]``."""

    def __init__(self, inputs: list[np.ndarray], layout: str, transform: str, amounts: Sequence[float]) -> None:
        self.inputs = inputs
        self.layout = layout
        self.amounts = check_amounts(transform, amounts)
        h_axis = 1 if layout == "nhwc" else 2
        height, width = inputs[0].shape[h_axis], inputs[0].shape[h_axis + 1]
        self.matrices = [warp_matrix(transform, a, height, width) for a in self.amounts]

    @property
    def count(self) -> int:
        return len(self.inputs) * len(self.amounts)

    def image_of(self, indices: Sequence[int]) -> np.ndarray:
        """The image index of each sweep item."""
        return np.asarray(indices, np.int64) // len(self.amounts)

    def item(self, index: int) -> np.ndarray:
        """One warped input (1, …)."""
        image, amount = divmod(index, len(self.amounts))
        return warp(self.inputs[image], self.layout, self.matrices[amount])

    def batch(self, indices: Sequence[int]) -> np.ndarray:
        """The warped inputs of ``indices`` stacked on the batch axis (B, …)."""
        return np.concatenate([self.item(i) for i in indices])
