"""Atomic file output: a file is either fully written or not there at all.

Everything goes through ``core.files.write_atomically`` (a temporary file beside the target,
renamed over it); a write that fails is a usage error that names the file.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from onnxviz.core.files import write_atomically
from onnxviz.errors import UsageError


def write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"Cannot create the folder {folder}: {exc.strerror}.") from None
    try:
        write_atomically(path, data)
    except OSError as exc:  # no rights, disk full, quota, a folder in the way of the target name
        raise UsageError(f"Cannot write {path}: {exc.strerror or exc}.") from None
    return path


def write_npy(path: str | Path, array: np.ndarray) -> Path:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return write_bytes(path, buffer.getvalue())


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))
