"""Atomic file output: a file is either fully written or not there at all, and a run's files are
written all together or not at all.

Everything goes through ``core.files`` (a temporary file beside the target, renamed over it); a
write that fails is a usage error that names the file. Inside ``all_or_nothing()`` (each command
runs in one) a file is only staged, as that temporary, and the renames happen when the block ends
normally; an error or Ctrl-C on the way removes what was staged and the folders made for it. So a
full disk or an interrupt half-way through a command's outputs leaves the earlier files as they
were, and never a mix of old and new. A record that must outlive an interrupted run (a scan's
finished shards) is written ``now``.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onnxviz.core.files import write_atomically, write_beside
from onnxviz.errors import UsageError


@dataclass
class _Staged:
    files: list[tuple[Path, Path]] = field(default_factory=list)  # (temporary, target) in write order
    folders: list[Path] = field(default_factory=list)  # made for the staged files, outermost first


_STAGED: ContextVar[_Staged | None] = ContextVar("onnxviz_staged_outputs", default=None)


@contextmanager
def all_or_nothing() -> Iterator[None]:
    """Stage every file written inside the block; rename them all into place when it ends normally,
    remove them (and the folders made for them) when it raises."""
    staged = _Staged()
    token = _STAGED.set(staged)
    try:
        yield
    except BaseException:
        for temporary, _ in staged.files:
            temporary.unlink(missing_ok=True)
        for folder in reversed(staged.folders):
            with contextlib.suppress(OSError):  # not empty: something else lives there now
                folder.rmdir()
        raise
    finally:
        _STAGED.reset(token)
    for index, (temporary, target) in enumerate(staged.files):
        try:
            os.replace(temporary, target)
        except OSError as exc:  # a folder in the way of the name: this and the later files stay unwritten
            for left, _ in staged.files[index:]:
                left.unlink(missing_ok=True)
            raise UsageError(f"Cannot write {target}: {exc.strerror or exc}.") from None


def _make_folder(folder: Path, staged: _Staged | None) -> None:
    missing = [folder, *folder.parents]
    missing = [f for f in missing if not f.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"Cannot create the folder {folder}: {exc.strerror or exc}.") from None
    if staged is not None:
        staged.folders.extend(reversed(missing))


def write_bytes(path: str | Path, data: bytes, now: bool = False) -> Path:
    """``data`` to ``path``, atomically; staged inside ``all_or_nothing`` unless ``now``."""
    path = Path(path)
    staged = None if now else _STAGED.get()
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.exists():
        _make_folder(folder, staged)
    if staged is not None and path.is_dir():  # found now, not when the files are put in place
        raise UsageError(f"Cannot write {path}: a folder of that name is in the way.")
    try:
        if staged is None:
            write_atomically(path, data)
        else:
            staged.files.append((write_beside(path, data), path))
    except OSError as exc:  # no rights, disk full, quota, a folder in the way of the target name
        raise UsageError(f"Cannot write {path}: {exc.strerror or exc}.") from None
    return path


def write_npy(path: str | Path, array: np.ndarray) -> Path:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return write_bytes(path, buffer.getvalue())


def write_text(path: str | Path, text: str, now: bool = False) -> Path:
    return write_bytes(path, text.encode("utf-8"), now)
