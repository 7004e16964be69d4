"""RISE (Petsiuk et al. 2018, DIANNA's method): the score under random masks, no gradient.

s = ``cells``, cell size (ch, cw) = (⌈H/s⌉, ⌈W/s⌉). N = ``masks`` grids of s × s cells, each kept
with probability ``keep`` (``rng.random((N, s, s)) < keep``); then, mask by mask, a shift dy in
[0, ch) and dx in [0, cw). Mask i is grid i as float32 resized bilinearly (``cv2.resize``) to
(s+1)·ch × (s+1)·cw and cropped to rows dy…dy+H, columns dx…dx+W. The saliency is
Σ_i score(x ⊙ M_i)·M_i / (N·keep), one (H, W) map repeated over the channels. One generator
(``default_rng(seed)``) per call, so every image gets the same masks. The draws are made at once;
the masks themselves are made a batch at a time, so 4000 masks at 224 × 224 never sit in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from onnxviz.analyses.attribute.methods import Attributed, Job


@dataclass(frozen=True)
class MaskDraws:
    """The random draws of RISE's masks, made in the contract's order, and the masks they make."""

    grids: np.ndarray  # bool (N, s, s)
    shifts: np.ndarray  # int (N, 2): dy, dx
    height: int
    width: int

    @classmethod
    def draw(cls, count: int, cells: int, keep: float, seed: int, height: int, width: int) -> MaskDraws:
        rng = np.random.default_rng(seed)
        grids = rng.random((count, cells, cells)) < keep
        cell = (math.ceil(height / cells), math.ceil(width / cells))
        shifts = np.array([(rng.integers(0, cell[0]), rng.integers(0, cell[1])) for _ in range(count)])
        return cls(grids, shifts.reshape(count, 2), height, width)

    def masks(self, start: int, stop: int) -> np.ndarray:
        """float32 (stop − start, H, W): masks start…stop − 1."""
        cells = self.grids.shape[1]
        ch, cw = math.ceil(self.height / cells), math.ceil(self.width / cells)
        made = []
        for grid, (dy, dx) in zip(self.grids[start:stop], self.shifts[start:stop], strict=True):
            upsampled = cv2.resize(grid.astype(np.float32), ((cells + 1) * cw, (cells + 1) * ch))
            made.append(upsampled[dy : dy + self.height, dx : dx + self.width])
        return np.stack(made)


def rise(job: Job) -> Attributed:
    """Each image's RISE saliency, repeated over its channels in the input's layout."""
    options, x = job.options, job.x
    nhwc = job.model.layout == "nhwc"
    height, width = (x.shape[1], x.shape[2]) if nhwc else (x.shape[2], x.shape[3])
    draws = MaskDraws.draw(options.masks, options.cells, options.keep, options.seed, height, width)
    saliency = np.zeros((len(x), height * width), np.float64)
    for start in range(0, options.masks, job.batch_size):
        masks = draws.masks(start, min(options.masks, start + job.batch_size))
        spread = masks[..., None] if nhwc else masks[:, None]
        for row in range(len(x)):
            scores = job.scores((x[row][None] * spread).astype(np.float32), np.full(len(masks), row))
            saliency[row] += scores @ masks.reshape(len(masks), -1).astype(np.float64)
        if job.progress is not None:
            job.progress(start + len(masks), options.masks)
    maps = (saliency / (options.masks * options.keep)).reshape(len(x), height, width).astype(np.float32)
    spread = maps[..., None] if nhwc else maps[:, None]
    return np.ascontiguousarray(np.broadcast_to(spread, x.shape)), None
