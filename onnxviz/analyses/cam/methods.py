"""The cam methods as one table: each a small function of A and G to a map M, before the ReLU.

A is the layer's activation and G = ∂score/∂A, both ``(N, C, h, w)`` float64; a method returns M as
``(N, h, w)``. The formulas are pytorch-grad-cam's (``DESIGN.md``, "`cam`"), so a user switching
from it gets the same arrays; eigencam is sign-corrected, as its ``get_2d_projection_with_sign_correction``.
A gradient-free method that needs the network again (scorecam, ablationcam) takes a ``rescore``
callable instead of G and is one more entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

GRADCAM_PLUS_PLUS_EPSILON = 1e-6  # pytorch-grad-cam's GradCAMPlusPlus
XGRADCAM_EPSILON = 1e-7  # pytorch-grad-cam's XGradCAM

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


@dataclass(frozen=True)
class CamMethod:
    """A cam method: its map of (A, G), and whether it reads G (else only the forward runs)."""

    map: CamMap
    gradient: bool = True


METHODS: dict[str, CamMethod] = {
    "gradcam": CamMethod(gradcam),
    "gradcam++": CamMethod(gradcam_plus_plus),
    "xgradcam": CamMethod(xgradcam),
    "layercam": CamMethod(layercam),
    "hirescam": CamMethod(hirescam),
    "eigencam": CamMethod(eigencam, gradient=False),
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
