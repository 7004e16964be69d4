"""Mergeable reducers: what a dataset scan keeps, in memory bounded by the answer.

A scan is a map over shards of a folder into partial reducers and a merge of the partials. Every
reducer has ``update(batch)`` (fold in one evaluated batch), ``merge(other)`` (the reducer of both
parts, over disjoint images) and ``result()`` (the answer). ``merge`` is associative and
commutative and every order it keeps is a total order on the images' paths, so any sharding, on
any engine, in any order of completion, gives the same answer, to the byte:

- ``TopK``: per channel, the k strongest images (one entry per image: its strongest position,
  the first in row-major order on ties; ties between images broken by path, then position);
- ``Codes``: each image's output flattened to a vector (the CNN codes), and a thumbnail, in path
  order;
- ``CheckpointWinners``: one ``TopK`` per checkpoint of a training run.

Unreadable files are skipped and counted by every reducer, kept sorted by path.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from onnxviz.errors import UsageError


@dataclass
class Evaluated:
    """One batch after the model: the readable files, their outputs, the unreadable files."""

    names: list[str]
    outputs: np.ndarray | None  # one row per name at the scanned tensor; None when no file was readable
    skipped: list[str]
    thumbnails: list[np.ndarray] | None = None  # uint8 RGB, one per name, where the scan keeps them
    checkpoint: str = ""  # the checkpoint the outputs come from (``CheckpointWinners``)


@dataclass(order=True, frozen=True)
class Entry:
    """One winner; ordering = rank (strongest first, then path, row, column)."""

    key: tuple = field(repr=False)
    image: str = field(compare=False)
    y: int = field(compare=False)
    x: int = field(compare=False)
    activation: float = field(compare=False)

    @classmethod
    def make(cls, image: str, y: int, x: int, activation: float) -> Entry:
        return cls((-activation, image, y, x), image, y, x, activation)

    def as_dict(self) -> dict:
        return {"image": self.image, "y": self.y, "x": self.x, "activation": self.activation}


def strongest_positions(activations: np.ndarray, channels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image and channel: the max value and its first (row-major) position."""
    selected = activations[:, channels]
    flat = selected.reshape(selected.shape[0], selected.shape[1], -1)
    index = flat.argmax(axis=2)
    values = np.take_along_axis(flat, index[:, :, None], axis=2)[:, :, 0]
    width = activations.shape[3]
    return values, index // width, index % width


def merged_skipped(first: list[str], second: list[str]) -> list[str]:
    return sorted(first + second)


@dataclass
class TopK:
    """The running top-k lists per channel, and how many files were read or skipped."""

    node: str
    channels: list[int]
    k: int
    entries: dict[int, list[Entry]]
    processed: int = 0  # files folded in, readable or not
    skipped: list[str] = field(default_factory=list)

    @classmethod
    def empty(cls, node: str, channels: list[int], k: int) -> TopK:
        return cls(node, list(channels), k, {c: [] for c in channels})

    def update(self, batch: Evaluated) -> None:
        self.processed += len(batch.names) + len(batch.skipped)
        self.skipped = merged_skipped(self.skipped, batch.skipped)
        if batch.outputs is None:
            return
        values, rows, cols = strongest_positions(batch.outputs, np.asarray(self.channels))
        for j, channel in enumerate(self.channels):
            candidates = self.entries[channel] + [
                Entry.make(image, int(rows[i, j]), int(cols[i, j]), float(values[i, j]))
                for i, image in enumerate(batch.names)
            ]
            self.entries[channel] = heapq.nsmallest(self.k, candidates)

    def merge(self, other: TopK) -> TopK:
        """The top-k of both scans (over disjoint images): each channel's k best of the union."""
        if (other.node, other.channels, other.k) != (self.node, self.channels, self.k):
            raise UsageError(
                f"Cannot merge the top-{other.k} of '{other.node}' into the top-{self.k} of '{self.node}'.",
                "Merge scans of the same layer, channels and k.",
            )
        entries = {c: heapq.nsmallest(self.k, self.entries[c] + other.entries[c]) for c in self.channels}
        skipped = merged_skipped(self.skipped, other.skipped)
        return TopK(self.node, list(self.channels), self.k, entries, self.processed + other.processed, skipped)

    def result(self) -> dict[int, list[Entry]]:
        return self.entries

    def to_json(self) -> dict:
        return {"node": self.node, "channels": {str(c): [e.as_dict() for e in self.entries[c]] for c in self.channels}}

    def state(self) -> dict:
        """Everything, as JSON (floats round-trip exactly): one shard's partial on disk."""
        return self.to_json() | {"k": self.k, "processed": self.processed, "skipped": self.skipped}

    @classmethod
    def from_state(cls, state: dict) -> TopK:
        entries = {
            int(c): [Entry.make(e["image"], e["y"], e["x"], e["activation"]) for e in items]
            for c, items in state["channels"].items()
        }
        return cls(state["node"], list(entries), state["k"], entries, state["processed"], list(state["skipped"]))


@dataclass
class Codes:
    """Each readable image's output, flattened to float32, and its thumbnail."""

    codes: dict[str, np.ndarray] = field(default_factory=dict)
    thumbnails: dict[str, np.ndarray] = field(default_factory=dict)
    processed: int = 0
    skipped: list[str] = field(default_factory=list)

    def update(self, batch: Evaluated) -> None:
        self.processed += len(batch.names) + len(batch.skipped)
        self.skipped = merged_skipped(self.skipped, batch.skipped)
        if batch.outputs is None:
            return
        flat = batch.outputs.reshape(len(batch.names), -1).astype(np.float32)
        for i, name in enumerate(batch.names):
            self.codes[name] = flat[i].copy()  # a copy: a view would keep the whole batch alive
            if batch.thumbnails is not None:
                self.thumbnails[name] = batch.thumbnails[i]

    def merge(self, other: Codes) -> Codes:
        overlap = self.codes.keys() & other.codes.keys()
        if overlap:
            raise UsageError(f"Cannot merge codes of overlapping scans: {sorted(overlap)[0]} is in both.")
        return Codes(
            self.codes | other.codes,
            self.thumbnails | other.thumbnails,
            self.processed + other.processed,
            merged_skipped(self.skipped, other.skipped),
        )

    def result(self) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
        """(names in path order, their codes stacked (N, D), their thumbnails; none where not kept)."""
        names = sorted(self.codes)
        stacked = np.stack([self.codes[n] for n in names]) if names else np.zeros((0, 0), np.float32)
        return names, stacked, [self.thumbnails[n] for n in names if n in self.thumbnails]


@dataclass
class CheckpointWinners:
    """One ``TopK`` per checkpoint, all of the same layer, channels and k."""

    node: str
    channels: list[int]
    k: int
    scans: dict[str, TopK] = field(default_factory=dict)

    def update(self, batch: Evaluated) -> None:
        scan = self.scans.get(batch.checkpoint) or TopK.empty(self.node, self.channels, self.k)
        scan.update(batch)
        self.scans[batch.checkpoint] = scan

    def merge(self, other: CheckpointWinners) -> CheckpointWinners:
        if (other.node, other.channels, other.k) != (self.node, self.channels, self.k):
            raise UsageError(f"Cannot merge the winners of '{other.node}' into those of '{self.node}'.")
        scans = dict(self.scans)
        for checkpoint, scan in other.scans.items():
            scans[checkpoint] = scans[checkpoint].merge(scan) if checkpoint in scans else scan
        return CheckpointWinners(self.node, list(self.channels), self.k, scans)

    def result(self) -> dict[str, dict[int, list[Entry]]]:
        return {checkpoint: scan.result() for checkpoint, scan in sorted(self.scans.items())}
