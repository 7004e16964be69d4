"""How alike two saliency maps are: Spearman's rank correlation and SSIM, from their definitions.

Spearman's ρ is Pearson's correlation of the ranks, ties given their average rank (as
``scipy.stats.spearmanr``). SSIM is ``skimage.metrics.structural_similarity`` with its defaults
on two maps each min-max normalised, ``data_range`` 1: a uniform 7 × 7 window, K1 = 0.01,
K2 = 0.03, the sample covariance (× 49/48), the mean over the positions whose window lies inside
the map. scikit-image is not a dependency of onnxviz, so it is written out here and tested
against it. Either measure of a constant map (a dead gradient) is undefined: None.
"""

from __future__ import annotations

import cv2
import numpy as np

WINDOW = 7
K1, K2 = 0.01, 0.03


def ranks(values: np.ndarray) -> np.ndarray:
    """float64 ranks 1…n of the flattened ``values``, tied values given their average rank."""
    flat = np.asarray(values, np.float64).ravel()
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(ordered)) + 1])
    stops = np.concatenate([starts[1:], [flat.size]])
    found = np.empty(flat.size, np.float64)
    found[order] = np.repeat((starts + stops + 1) / 2, stops - starts)
    return found


def spearman(first: np.ndarray, second: np.ndarray) -> float | None:
    """Spearman's ρ of two maps of one shape; None where either is constant."""
    a, b = ranks(first), ranks(second)
    a, b = a - a.mean(), b - b.mean()
    scale = float(np.sqrt((a @ a) * (b @ b)))
    return None if scale == 0 else float(a @ b / scale)


def normalised(plane: np.ndarray) -> np.ndarray | None:
    """``plane`` min-max normalised to [0, 1] in float64; None where it is constant."""
    plane = np.asarray(plane, np.float64)
    low, high = float(plane.min()), float(plane.max())
    return None if high == low else (plane - low) / (high - low)


def ssim(first: np.ndarray, second: np.ndarray) -> float | None:
    """SSIM of two (H, W) maps each min-max normalised; None (undefined) where either is constant,
    or where the maps are smaller than the 7 × 7 window (a model with a tiny input), which
    ``skimage.metrics.structural_similarity`` refuses too."""
    x, y = normalised(first), normalised(second)
    if x is None or y is None or min(x.shape) < WINDOW:
        return None

    def mean(values: np.ndarray) -> np.ndarray:
        return cv2.blur(values, (WINDOW, WINDOW), borderType=cv2.BORDER_REFLECT)

    covariance = WINDOW * WINDOW / (WINDOW * WINDOW - 1)
    ux, uy = mean(x), mean(y)
    vx = covariance * (mean(x * x) - ux * ux)
    vy = covariance * (mean(y * y) - uy * uy)
    vxy = covariance * (mean(x * y) - ux * uy)
    c1, c2 = K1**2, K2**2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = (WINDOW - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean())
