"""Deletion and insertion curves (Petsiuk et al. 2018): the score as the pixels a map ranks first
are removed from the image, or put back into a blurred copy of it.

Pixels are ranked by the map S (H, W), descending, ties by flat index (a stable sort). Step
t = 0…steps holds the first ⌈t·H·W/steps⌉ pixels, all channels, changed: deletion sets them to the
baseline, insertion copies them from the image into its blurred copy (``cv2.GaussianBlur``, 11 × 11,
σ 5, per channel of the preprocessed tensor). Every step of every (map, image) pair is one input to
score; they are made a batch at a time, each from the previous step of its sequence (only the
newly changed pixels are written), and scored through one forward session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from onnxviz.core.progress import Progress

BLUR_SIZE = (11, 11)
BLUR_SIGMA = 5.0


def pixel_order(plane: np.ndarray) -> np.ndarray:
    """Flat pixel indices by the map's value, largest first, ties by index."""
    return np.argsort(-np.asarray(plane, np.float64).ravel(), kind="stable")


def changed_counts(pixels: int, steps: int) -> np.ndarray:
    """How many pixels step t = 0…steps has changed: ⌈t·pixels/steps⌉, in integers."""
    t = np.arange(steps + 1, dtype=np.int64)
    return (t * pixels + steps - 1) // steps


def blurred(x: np.ndarray, layout: str) -> np.ndarray:
    """One input (*input, no batch axis) blurred per channel, as insertion starts from it."""
    planes = np.moveaxis(x, -1, 0) if layout == "nhwc" else x
    out = np.stack([cv2.GaussianBlur(np.ascontiguousarray(p), BLUR_SIZE, BLUR_SIGMA) for p in planes])
    return np.ascontiguousarray(np.moveaxis(out, 0, -1) if layout == "nhwc" else out, np.float32)


@dataclass(frozen=True)
class Perturbation:
    """One curve's inputs: from ``start``, the pixels in ``order`` taken from ``end`` step by step."""

    start: np.ndarray  # (*input)
    end: np.ndarray  # (*input)
    order: np.ndarray  # flat pixel indices
    owner: int  # the image whose target scores it


def _pixel_view(x: np.ndarray, layout: str) -> np.ndarray:
    """A (channels, pixels) view of one input, writable where ``x`` is."""
    return x.reshape(-1, x.shape[-1]).T if layout == "nhwc" else x.reshape(x.shape[0], -1)


def _inputs(perturbations: list[Perturbation], counts: np.ndarray, layout: str) -> Iterator[tuple[np.ndarray, int]]:
    """Every step of every perturbation in order, as (input, owner); each step made from the last."""
    for sequence in perturbations:
        current = sequence.start.copy()
        pixels, source = _pixel_view(current, layout), _pixel_view(sequence.end, layout)
        done = 0
        for count in counts:
            changed = sequence.order[done:count]
            pixels[:, changed] = source[:, changed]
            done = count
            yield current, sequence.owner


def scored_curves(
    perturbations: list[Perturbation],
    steps: int,
    layout: str,
    score: Callable[[np.ndarray, np.ndarray], np.ndarray],
    batch_size: int,
    progress: Progress | None = None,
) -> np.ndarray:
    """float64 (len(perturbations), steps + 1): ``score(batch, owners)`` of every step, in batches."""
    shape = perturbations[0].start.shape
    counts = changed_counts(int(np.prod(shape)) // _pixel_view(perturbations[0].start, layout).shape[0], steps)
    total = len(perturbations) * len(counts)
    batch = np.empty((min(batch_size, total), *shape), np.float32)
    owners = np.empty(len(batch), np.int64)
    scores, filled = [], 0
    for made, (x, owner) in enumerate(_inputs(perturbations, counts, layout), start=1):
        batch[filled], owners[filled] = x, owner
        filled += 1
        if filled == len(batch) or made == total:
            scores.append(score(batch[:filled], owners[:filled]))
            filled = 0
            if progress is not None:
                progress(made, total)
    return np.concatenate(scores).reshape(len(perturbations), len(counts))


def area(curve: np.ndarray) -> float:
    """The area under a curve over t/steps in [0, 1], by the trapezoid rule."""
    curve = np.asarray(curve, np.float64)
    return float(((curve[1:] + curve[:-1]) / 2).sum() / (len(curve) - 1))
