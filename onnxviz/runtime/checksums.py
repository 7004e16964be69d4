"""Whether a file is the one recorded: its size and CRC-32, read without copying it."""

from __future__ import annotations

import mmap
import os
import zlib
from pathlib import Path


def file_whole(path: Path, size: int, crc: int) -> bool:
    return file_check(path) == (size, crc)


def file_check(path: Path) -> tuple[int, int] | None:
    """(size, CRC-32) of a file, read through a map (no copy; zlib lets other threads run
    meanwhile), or None where it cannot be read."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if not size:
                return 0, zlib.crc32(b"")
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return size, zlib.crc32(data)
    except (OSError, ValueError):
        return None
