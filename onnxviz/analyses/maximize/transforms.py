"""What keeps activation maximisation from finding adversarial noise: random transforms each step,
and regularisers (Yosinski et al. 2015; lucid's transformation robustness).

**Transforms.** Each step, each image is jittered by up to ``jitter`` pixels, scaled by a factor
in ``scale`` and rotated by up to ``rotate`` degrees about its centre (seeded draws), read by
bilinear interpolation with mid-gray outside the image (lucid pads with gray before it jitters).
The model sees the transformed image; the gradient goes back through the transform's exact
adjoint: the bilinear weights scattered back to the pixels they were read from (``np.bincount``).
For jitter alone that is a shift back; for scale and rotation it is the transpose of the
interpolation, not an inverse warp, so no gradient is lost or double counted.

**Regularisers.** L2 decay (the objective minus decay/2·‖x‖²) and total variation (minus tv·Σ of
squared neighbour differences) enter the gradient; Gaussian blur every N steps and clipping the
pixels whose norm over channels is below a percentile (to gray) act on the pixel image between
steps, as in Yosinski et al.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# The regularisers of Yosinski et al. 2015 in three of their combinations (decay, blur σ and
# how often, norm percentile), for ``--preset``; each needs the pixel parameterisation.
PRESETS: dict[str, dict[str, float | int]] = {
    "blur": {"decay": 0.0, "blur": 0.5, "blur_every": 4, "clip_percentile": 50.0},
    "decay": {"decay": 0.3, "blur": 0.0, "blur_every": 0, "clip_percentile": 20.0},
    "smooth": {"decay": 0.0001, "blur": 1.0, "blur_every": 4, "clip_percentile": 0.0},
}


@dataclass(frozen=True)
class Sampling:
    """Bilinear reads: output pixel j of image row r is Σᵢ weights[r, i, j] · x[r, index[r, i, j]]."""

    index: np.ndarray  # (K, 4, H·W) flat source pixel, 0 where outside
    weights: np.ndarray  # (K, 4, H·W) bilinear weight, 0 where the tap is outside the image
    outside: np.ndarray  # (K, H·W) total weight of the taps outside (filled with gray)


@dataclass(frozen=True)
class Transforms:
    """The random transforms of one run: jitter in pixels, scale range, rotation in degrees."""

    jitter: int = 0
    scale: tuple[float, float] = (1.0, 1.0)
    rotate: float = 0.0

    @property
    def identity(self) -> bool:
        return self.jitter == 0 and self.scale == (1.0, 1.0) and self.rotate == 0.0

    def draw(self, count: int, height: int, width: int, rng: np.random.Generator) -> Sampling:
        """Per image: a shift, a zoom and a turn about the centre, as bilinear reads."""
        shifts, zooms, turns = self.parameters(count, rng)
        rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
        centre_y, centre_x = (height - 1) / 2, (width - 1) / 2
        dy = rows.ravel()[None] + shifts[:, :1] - centre_y
        dx = cols.ravel()[None] + shifts[:, 1:] - centre_x
        cos, sin = (np.cos(turns) / zooms)[:, None], (np.sin(turns) / zooms)[:, None]
        source_y = cos * dy - sin * dx + centre_y  # the output pixel reads the image here
        source_x = sin * dy + cos * dx + centre_x
        return bilinear_taps(source_y, source_x, height, width)

    def parameters(self, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per image: the shift (y, x) in pixels, the zoom and the turn in radians (the draws of
        one step, in the order a seeded run makes them)."""
        shifts = rng.integers(-self.jitter, self.jitter + 1, size=(count, 2))
        zooms = rng.uniform(self.scale[0], self.scale[1], size=count)
        turns = np.deg2rad(rng.uniform(-self.rotate, self.rotate, size=count))
        return shifts, zooms, turns


def bilinear_taps(source_y: np.ndarray, source_x: np.ndarray, height: int, width: int) -> Sampling:
    top, left = np.floor(source_y), np.floor(source_x)
    fy, fx = source_y - top, source_x - left
    taps = [(top, left, (1 - fy) * (1 - fx)), (top, left + 1, (1 - fy) * fx)]
    taps += [(top + 1, left, fy * (1 - fx)), (top + 1, left + 1, fy * fx)]
    index, weights = [], []
    for y, x, w in taps:
        inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
        index.append(np.where(inside, y * width + x, 0).astype(np.int64))
        weights.append(np.where(inside, w, 0.0))
    total = sum(w for _, _, w in taps)
    index_array, weight_array = np.stack(index, axis=1), np.stack(weights, axis=1)
    return Sampling(index_array, weight_array, total - weight_array.sum(axis=1))


def transform(x: np.ndarray, sampling: Sampling, gray: np.ndarray) -> np.ndarray:
    """The transformed images (K, C, H, W); taps outside read ``gray`` (1, C, 1, 1)."""
    count, channels, height, width = x.shape
    index, weights = _channel_taps(sampling, channels, height * width)
    out = (x.ravel()[index] * weights).sum(axis=1)  # (K·C, H·W)
    out = out.reshape(count, channels, -1) + sampling.outside[:, None, :] * gray.reshape(1, channels, 1)
    return out.reshape(x.shape)


def transform_adjoint(grad: np.ndarray, sampling: Sampling) -> np.ndarray:
    """The adjoint of ``transform``'s linear part: each output's gradient back to its four taps."""
    count, channels, height, width = grad.shape
    index, weights = _channel_taps(sampling, channels, height * width)
    contributions = weights * grad.reshape(count * channels, 1, -1)
    return np.bincount(index.ravel(), contributions.ravel(), minlength=grad.size).reshape(grad.shape)


def _channel_taps(sampling: Sampling, channels: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The taps of every (image, channel) row as indices into the flattened batch: (K·C, 4, H·W)."""
    count = sampling.index.shape[0]
    offsets = (np.arange(count * channels) * size).reshape(count, channels, 1, 1)
    index = (sampling.index[:, None] + offsets).reshape(count * channels, 4, size)
    weights = np.broadcast_to(sampling.weights[:, None], (count, channels, 4, size)).reshape(count * channels, 4, size)
    return index, weights


def regulariser_gradient(x: np.ndarray, decay: float, tv: float) -> np.ndarray:
    """The gradient of decay/2·‖x‖² + tv·Σ squared neighbour differences (what the ascent subtracts)."""
    gradient = decay * x
    if tv:
        down, right = np.diff(x, axis=2), np.diff(x, axis=3)
        tv_grad = np.zeros_like(x)
        tv_grad[:, :, 1:] += 2 * down
        tv_grad[:, :, :-1] -= 2 * down
        tv_grad[:, :, :, 1:] += 2 * right
        tv_grad[:, :, :, :-1] -= 2 * right
        gradient = gradient + tv * tv_grad
    return gradient


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Each channel of each image blurred by a Gaussian of ``sigma`` pixels."""
    radius = max(1, math.ceil(3 * sigma))
    kernel = (2 * radius + 1, 2 * radius + 1)
    out = np.empty_like(x)
    for k in range(x.shape[0]):
        for c in range(x.shape[1]):
            out[k, c] = cv2.GaussianBlur(x[k, c], kernel, sigma, borderType=cv2.BORDER_REFLECT)
    return out


def clip_small_norms(x: np.ndarray, percentile: float, gray: np.ndarray) -> np.ndarray:
    """Pixels whose distance from gray (norm over channels) is below the image's ``percentile``
    become gray: only what the unit needs stays (Yosinski et al.'s norm clipping)."""
    norms = np.linalg.norm(x - gray, axis=1)
    threshold = np.percentile(norms.reshape(len(x), -1), percentile, axis=1)[:, None, None]
    return np.where((norms < threshold)[:, None], np.broadcast_to(gray, x.shape), x)
