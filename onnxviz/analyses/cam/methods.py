"""The cam methods as one table: each a small function of A and G to a map M, before the ReLU.

A is the layer's activation and G = ∂score/∂A, both ``(N, C, h, w)`` float64; a method returns M as
``(N, h, w)``. The formulas are pytorch-grad-cam's (``DESIGN.md``, "`cam`"), so a user switching
from it gets the same arrays; eigencam is sign-corrected, as its ``get_2d_projection_with_sign_correction``.
A gradient-free method that needs the network again (scorecam, ablationcam) gives channel weights
from one image's A and a ``Rescorer`` instead of a map of (A, G): the rescorer runs the network on
changed inputs or changed activations, in batches, and reports the target's score for each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from onnxviz.errors import UsageError

GRADCAM_PLUS_PLUS_EPSILON = 1e-6  # pytorch-grad-cam's GradCAMPlusPlus
XGRADCAM_EPSILON = 1e-7  # pytorch-grad-cam's XGradCAM
SCORECAM_EPSILON = 1e-8  # pytorch-grad-cam's ScoreCAM, in its min-max normalisation

CamMap = Callable[[np.ndarray, np.ndarray | None], np.ndarray]


def weighted(weights: np.ndarray, activation: np.ndarray) -> np.ndarray:
    """M = Σ_c w_c·A_c for weights ``(N, C)``: the form every weighted-channel method shares."""
    return np.einsum("nc,nchw->nhw", weights, activation)


def gradcam(a: np.ndarray, g: np.ndarray | None) -> np.ndarray:
    """Selvaraju et al. 2017: w_c = mean_hw G_c."""
    return weighted(g.mean(axis=(2, 3)), a)


def hirescam(a: np.ndarray, g: np.ndarray | None) -> np.ndarray:
    """Draelos & Carin 2020: M = Σ_c G_c ⊙ A_c, the gradient kept per position."""
    return (g * a).sum(axis=1)


def gradcam_plus_plus(a: np.ndarray, g: np.ndarray | None) -> np.ndarray:
    """Chattopadhay et al. 2018: w_c = Σ_hw ReLU(G_c)·α_c, α = G² / (2G² + (Σ_hw A_c)·G³ + ε), 0 where G = 0."""
    squared = g**2
    total = a.sum(axis=(2, 3), keepdims=True)
    alpha = squared / (2 * squared + total * squared * g + GRADCAM_PLUS_PLUS_EPSILON)
    alpha = np.where(g != 0, alpha, 0.0)
    return weighted((np.maximum(g, 0) * alpha).sum(axis=(2, 3)), a)


def xgradcam(a: np.ndarray, g: np.ndarray | None) -> np.ndarray:
    """Fu et al. 2020: w_c = Σ_hw (G_c ⊙ A_c) / (Σ_hw A_c + ε)."""
    total = a.sum(axis=(2, 3))
    return weighted((g * a).sum(axis=(2, 3)) / (total + XGRADCAM_EPSILON), a)


def layercam(a: np.ndarray, g: np.ndarray | None) -> np.ndarray:
    """Jiang et al. 2021: M = Σ_c ReLU(G_c) ⊙ A_c."""
    return (np.maximum(g, 0) * a).sum(axis=1)


def eigencam(a: np.ndarray, g: np.ndarray | None) -> np.ndarray:
    """Muhammad & Yeasin 2020: A as (h·w, C), each column centred, projected on its first right
    singular vector; negated where the negative side is the larger, since an SVD's sign is arbitrary."""
    maps = []
    for activation in a:
        channels, height, width = activation.shape
        positions = activation.reshape(channels, -1).T
        positions = positions - positions.mean(axis=0)
        _, _, vt = np.linalg.svd(positions, full_matrices=False)
        projection = positions @ vt[0]
        if abs(projection.min()) > abs(projection.max()):
            projection = -projection
        maps.append(projection.reshape(height, width))
    return np.stack(maps)


class Rescorer(Protocol):
    """The network asked again about one image: its target's score on changed copies of it."""

    score: float  # the target's score on the image itself
    size: tuple[int, int]  # the input's (H, W)
    batch_size: int  # how many copies one run takes: a method hands them over that many at a time

    def masked(self, masks: np.ndarray) -> np.ndarray:
        """The scores of the image times each mask ``(K, H, W)``, broadcast over its channels."""

    def ablated(self, activations: np.ndarray) -> np.ndarray:
        """The scores of the network run from the layer on, fed ``(K, C, h, w)`` activations."""


RescoredWeights = Callable[[np.ndarray, Rescorer], np.ndarray]


def upsampled(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(C, h, w)`` resized to ``(C, H, W)`` bilinearly with align_corners=True (torch's
    ``UpsamplingBilinear2d``, which ScoreCAM uses): output row i reads input row i·(h−1)/(H−1)."""
    rows, columns = _interpolation(a.shape[1], size[0]), _interpolation(a.shape[2], size[1])
    # Two matrix products (columns first, then rows): a three-operand einsum runs as one naive
    # loop over all five indices, 65× slower for 16 maps of 7 × 7 to 224 × 224.
    return rows @ (a @ columns.T)


def _interpolation(source: int, target: int) -> np.ndarray:
    """The ``(target, source)`` matrix of 1-D linear interpolation with the end points aligned."""
    position = np.arange(target) * ((source - 1) / (target - 1) if target > 1 else 0.0)
    below = np.minimum(np.floor(position).astype(int), source - 1)
    above = np.minimum(below + 1, source - 1)
    matrix = np.zeros((target, source))
    np.add.at(matrix, (np.arange(target), below), 1 - (position - below))
    np.add.at(matrix, (np.arange(target), above), position - below)
    return matrix


def scorecam(a: np.ndarray, rescorer: Rescorer) -> np.ndarray:
    """Wang et al. 2020: each channel upsampled to the input and min-max normalised is a mask;
    s_c = the score of the image under mask c; w = softmax_c(s)."""
    channels = len(a)
    scores = []
    for start in range(0, channels, rescorer.batch_size):
        masks = upsampled(a[start : start + rescorer.batch_size], rescorer.size)
        low = masks.min(axis=(1, 2), keepdims=True)
        high = masks.max(axis=(1, 2), keepdims=True)
        scores.append(rescorer.masked(((masks - low) / (high - low + SCORECAM_EPSILON)).astype(np.float32)))
    s = np.concatenate(scores).astype(np.float64)
    exp = np.exp(s - s.max())
    return exp / exp.sum()


def ablationcam(a: np.ndarray, rescorer: Rescorer) -> np.ndarray:
    """Desai & Ramaswamy 2020: s_c = the score with channel c set to 0, the network re-run from the
    layer on; w_c = (s − s_c)/s."""
    if rescorer.score == 0:
        raise UsageError(
            "ablationcam weighs each channel by the share of the target's score it carries, and the "
            "target's score is 0 on this image.",
            "Explain another target (a class logit is rarely 0), or use another --method.",
        )
    channels = len(a)
    scores = []
    for start in range(0, channels, rescorer.batch_size):
        stop = min(channels, start + rescorer.batch_size)
        copies = np.repeat(a[None].astype(np.float32), stop - start, axis=0)
        copies[np.arange(stop - start), np.arange(start, stop)] = 0
        scores.append(rescorer.ablated(copies))
    ablated = np.concatenate(scores).astype(np.float64)
    return (rescorer.score - ablated) / rescorer.score


@dataclass(frozen=True)
class CamMethod:
    """A cam method: its map of (A, G) and whether it reads G (else only the forward runs); or, for
    a method that asks the network again, its channel weights from one image's A and a rescorer,
    and whether it feeds the layer (then the graph must be cut there)."""

    map: CamMap | None = None
    gradient: bool = True
    rescored: RescoredWeights | None = None
    feeds_layer: bool = False


METHODS: dict[str, CamMethod] = {
    "gradcam": CamMethod(gradcam),
    "gradcam++": CamMethod(gradcam_plus_plus),
    "xgradcam": CamMethod(xgradcam),
    "layercam": CamMethod(layercam),
    "hirescam": CamMethod(hirescam),
    "eigencam": CamMethod(eigencam, gradient=False),
    "scorecam": CamMethod(gradient=False, rescored=scorecam),
    "ablationcam": CamMethod(gradient=False, rescored=ablationcam, feeds_layer=True),
}


def normalised(maps: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """pytorch-grad-cam's ``scale_cam_image``: each map minus its min, ÷ (1e-7 + its max), then
    resized to ``size`` (H, W) by ``cv2.resize`` (INTER_LINEAR) where given; float32."""
    scaled = []
    for m in np.asarray(maps, np.float32):
        m = m - m.min()
        m = m / (1e-7 + m.max())
        scaled.append(m if size is None else cv2.resize(m, (size[1], size[0])))
    return np.asarray(scaled, np.float32)
