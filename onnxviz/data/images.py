"""Image sets on disk: every picture or .npy file under a folder, streamed in batches.

A dataset analysis (top-k, and the next ones: evolution, embeddings) reads a folder recursively
in sorted order, loads each file through the model's preprocessing, skips and counts files that
cannot be read as an input, and hands the model one batch at a time, so memory does not grow
with the folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnxviz.errors import ImageError, UsageError

PICTURE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".npy"})


def list_images(folder: Path) -> list[str]:
    """Every file with a picture or .npy suffix under ``folder``, as sorted relative paths."""
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder of images.")
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES
    )


@dataclass
class Batch:
    """One step of a stream: the readable files' names and stacked inputs, the unreadable ones."""

    names: list[str]
    tensors: np.ndarray | None  # None when no file of the step could be read
    skipped: list[str]
    end: int  # files consumed so far, counting this batch


def batches(
    images: list[str], folder: Path, load: Callable[[Path], np.ndarray], batch_size: int, start: int = 0
) -> Iterator[Batch]:
    """``images[start:]`` in batches of ``batch_size`` files, each loaded by ``load``."""
    for position in range(start, len(images), batch_size):
        chunk = images[position : position + batch_size]
        tensors, names, skipped = [], [], []
        for name in chunk:
            try:
                tensors.append(load(folder / name))
                names.append(name)
            except ImageError:
                skipped.append(name)
        yield Batch(names, np.concatenate(tensors) if tensors else None, skipped, position + len(chunk))
