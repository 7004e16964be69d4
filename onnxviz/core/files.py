"""Writing a file whole or not at all: the one atomic write every layer uses."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

TEMPORARY_PREFIX = ".tmp-"  # then 32 hex digits: the graph cache sweeps such names a crash left behind


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a fresh temporary file beside it, renamed over ``path``.

    The rename is atomic on POSIX and Windows, so a reader sees the old file or the new one, and
    an interrupted run leaves no half-written file (the temporary never outlives the call). The
    file gets ordinary permissions (0666 less the umask). Raises ``OSError``: each caller decides
    whether a failed write is the user's problem (an output) or only a lost memo (a cache).
    """
    temporary = write_beside(path, data)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_beside(path: Path, data: bytes) -> Path:
    """``data`` written whole to a fresh temporary file beside ``path`` (same folder, so a rename
    onto ``path`` is atomic); its path. Nothing is left behind when the write fails."""
    temporary = path.with_name(f"{TEMPORARY_PREFIX}{uuid.uuid4().hex}")
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        with os.fdopen(os.open(temporary, flags, 0o666), "wb") as handle:
            handle.write(data)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary
