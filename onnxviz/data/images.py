"""Image sets on disk: every picture or .npy file under a folder, in sorted order.

A dataset analysis (top-k, evolution, embeddings) reads a folder recursively in sorted order; the
scan (``data/scan.py``) cuts the list into shards, loads each file through the model's
preprocessing, skips and counts files that cannot be read as an input, and hands the model one
batch at a time, so memory does not grow with the folder.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from onnxviz.errors import UsageError

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


def thumbnail(picture: np.ndarray, side: int) -> np.ndarray:
    """``picture`` resized so that its longer side is ``side`` pixels, keeping its aspect."""
    h, w = picture.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(picture, size, interpolation=interpolation))
