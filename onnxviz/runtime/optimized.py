"""onnxruntime's own optimized graphs, kept beside a graph-cache entry on the CPU.

A session's start is mostly onnxruntime optimizing the graph (fusions, constant folding, the
blocked NCHWc layouts); saved once and reopened with the optimizations off, a session starts
three to five times faster. The saved graphs depend on the onnxruntime version and the CPU, so
their names carry a tag of both (``sessions.hardware_tag``).
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from onnxviz.core.files import write_atomically
from onnxviz.errors import InferenceError
from onnxviz.runtime.checksums import file_check, file_whole
from onnxviz.runtime.sessions import Device, create_session, hardware_tag


@dataclass(frozen=True)
class OptimizedGraphs:
    """An entry's two graphs as onnxruntime optimized them for this CPU and version: opened with
    the optimizations off, a session starts three to five times faster (VGG16: 20 ms instead of
    70 for the forward, 25 instead of 120 for the inverse); saving them costs about 0.1 s once.
    They hold their weights inline (transformed: blocked layouts, folded constants) and are
    checked against a record written after both are in place. They are opened one after the
    other: two threads were no faster (VGG16 on 2 cores: 55 ms side by side, 44 ms in turn)."""

    entry: Path
    tag: str

    @classmethod
    def of(cls, entry: Path, device: Device) -> OptimizedGraphs | None:
        """None on the GPU: CUDA's optimized graphs are not saved (its kernels' choices happen at run time)."""
        if device.name != "cpu":
            return None
        return cls(entry, hardware_tag(device.providers))

    def paths(self) -> tuple[Path, Path]:
        return self.entry / f"forward.{self.tag}.onnx", self.entry / f"inverse.{self.tag}.onnx"

    @property
    def record(self) -> Path:
        return self.entry / f"optimized.{self.tag}.json"

    def temporaries(self) -> tuple[Path, Path]:
        return tuple(self.entry / f".tmp-{uuid.uuid4().hex}" for _ in range(2))

    def open(self, device: Device) -> tuple[ort.InferenceSession, ort.InferenceSession] | None:
        """Both sessions, or None (the saved graphs removed) where they are missing, damaged or refused."""
        try:
            recorded = json.loads(self.record.read_text())
            whole = all(self.unchanged(path, *recorded[path.name]) for path in self.paths())
        except (OSError, ValueError, KeyError, TypeError):
            whole = False
        if whole:  # checked before any session is made: most entries have none saved, or a sweep's never will
            try:
                return tuple(create_session(path, device, "optimized graph", True) for path in self.paths())
            except InferenceError:
                pass
        self.remove()
        return None

    @staticmethod
    def unchanged(path: Path, size: int, crc: int, modified: int, inode: int) -> bool:
        """Whether ``path`` is the file recorded: by its stat stamp (size, modification time, inode),
        as ``runtime/warm_start.py`` remembers a model's digest, else by its CRC (a file copied or
        touched since, with the same bytes, still is). Reading 100 MB for a CRC on every run cost a
        quarter of a warm VGG16 start."""
        stat = path.stat()
        if (stat.st_size, stat.st_mtime_ns, stat.st_ino) == (size, modified, inode):
            return True
        return file_whole(path, size, crc)

    def keep(self, saved: tuple[Path, Path]) -> None:
        """Move the graphs onnxruntime just saved into place, then record them."""
        with contextlib.suppress(OSError):
            record = {}
            for source, path in zip(saved, self.paths(), strict=True):
                checked = file_check(source)
                if checked is None:
                    return
                os.replace(source, path)
                stat = path.stat()
                record[path.name] = [*checked, stat.st_mtime_ns, stat.st_ino]
            write_atomically(self.record, json.dumps(record).encode())

    def remove(self) -> None:
        for path in (self.record, *self.paths()):
            path.unlink(missing_ok=True)
