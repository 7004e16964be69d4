"""Atomic file output: a file is either fully written or not there at all.

Everything is written to a temporary file in the destination folder and then renamed over the
target, which is atomic on POSIX and Windows; an interrupted run leaves no half-written file.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np

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
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"Cannot write into {folder}: {exc.strerror}.") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs are ordinary files
        os.replace(tmp, path)
    except OSError as exc:  # disk full, quota, a folder in the way of the target name
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"Cannot write {path}: {exc.strerror or exc}.") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_npy(path: str | Path, array: np.ndarray) -> Path:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return write_bytes(path, buffer.getvalue())


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
