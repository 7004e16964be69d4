"""A folder's images cut into shards, and the per-shard record that lets a scan resume.

A shard is a run of consecutive paths of the sorted file list: the unit of work an engine hands
a worker, and the unit of progress and of resuming. A finished shard's partial reducer is written
to the scan's state folder the moment it arrives (atomically); ``--resume`` reads the finished
shards back and scans only the others, on any engine, since the merge does not depend on which
worker or run produced a partial.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from onnxviz.errors import UsageError
from onnxviz.render.outputs import write_text

DEFAULT_SHARD_SIZE = 256  # images: about a minute of a VGG16 conv5_3 scan on one CPU core
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Shard:
    """Consecutive paths ``names`` of the folder's sorted list; ``index`` counts shards from 0."""

    index: int
    names: tuple[str, ...]


def make_shards(images: list[str], size: int) -> list[Shard]:
    if size <= 0:
        raise UsageError(f"--shard-size must be positive; got {size}.")
    return [Shard(i, tuple(images[start : start + size])) for i, start in enumerate(range(0, len(images), size))]


def listing_digest(images: list[str]) -> str:
    """What identifies the folder's file list: a resumed scan must see the same files."""
    return hashlib.sha256("\n".join(images).encode()).hexdigest()


class ShardStore:
    """The state folder of one scan: ``manifest.json`` (what was scanned, how it was cut) and one
    ``shard_NNNNNN.json`` per finished shard."""

    def __init__(self, folder: Path, manifest: dict) -> None:
        self.folder = folder
        self.manifest = manifest

    @classmethod
    def start(cls, folder: Path, manifest: dict) -> ShardStore:
        """A new scan: earlier shard records in ``folder`` are removed."""
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.glob("shard_*.json"):
                old.unlink()
        except OSError as exc:
            raise UsageError(f"Cannot keep the scan's state in {folder}: {exc.strerror or exc}.") from None
        write_text(folder / MANIFEST, json.dumps(manifest), now=True)
        return cls(folder, manifest)

    @classmethod
    def resume(cls, folder: Path, manifest: dict) -> ShardStore:
        """The interrupted scan in ``folder``, refused unless it scanned the same thing, cut the same
        way; a ``None`` in ``manifest`` takes the interrupted scan's value."""
        try:
            found = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"Cannot resume: {folder / MANIFEST} is missing or unreadable ({exc}).",
                "Run without --resume to start a new scan.",
            ) from None
        asked = {key: value for key, value in manifest.items() if value is not None}  # None: as the scan had it
        different = sorted(key for key, value in asked.items() if found.get(key) != value)
        if different:
            what = "the folder's files" if "files" in different else ", ".join(different)
            raise UsageError(
                f"Cannot resume: {what} changed since the interrupted scan in {folder}.",
                "Use the same folder, node, channels, k and shard size, or run without --resume.",
            )
        return cls(folder, found)

    def discard(self) -> None:
        """Remove this scan's state (a scan that found nothing to keep: no output is left behind)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def path(self, index: int) -> Path:
        return self.folder / f"shard_{index:06d}.json"

    def save(self, index: int, state: dict) -> None:
        write_text(self.path(index), json.dumps(state), now=True)

    def finished(self, shards: list[Shard], load: Callable[[dict], object]) -> dict[int, object]:
        """The partials of the shards already done, by index (a torn or unreadable record: not done)."""
        done = {}
        for shard in shards:
            try:
                done[shard.index] = load(json.loads(self.path(shard.index).read_text()))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return done
