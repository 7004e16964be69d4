"""Mergeable reducers: what a dataset scan keeps per channel, in memory bounded by the answer.

``TopK`` keeps, per channel, the k strongest images (one entry per image: its strongest
position, the first in row-major order on ties). Two reducers over disjoint parts of a dataset
merge into the reducer of the whole, which is what lets a scan be resumed from a state file or
split over workers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onnxviz.errors import UsageError
from onnxviz.render.outputs import write_text


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


@dataclass
class TopK:
    """The running top-k lists, and where the scan is."""

    node: str
    channels: list[int]
    k: int
    entries: dict[int, list[Entry]]
    processed: int = 0
    last_image: str | None = None
    skipped: list[str] = field(default_factory=list)

    def update(self, images: list[str], activations: np.ndarray) -> None:
        values, rows, cols = strongest_positions(activations, np.asarray(self.channels))
        for j, channel in enumerate(self.channels):
            candidates = self.entries[channel] + [
                Entry.make(image, int(rows[i, j]), int(cols[i, j]), float(values[i, j]))
                for i, image in enumerate(images)
            ]
            self.entries[channel] = sorted(candidates)[: self.k]

    def to_json(self) -> dict:
        return {"node": self.node, "channels": {str(c): [e.as_dict() for e in self.entries[c]] for c in self.channels}}

    def save_state(self, path: Path, files: int) -> None:
        state = self.to_json() | {
            "k": self.k,
            "processed": self.processed,
            "last_image": self.last_image,
            "skipped": self.skipped,
            "files": files,
        }
        write_text(path, json.dumps(state))

    @classmethod
    def load_state(cls, path: Path, node: str, k: int) -> TopK:
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"Cannot resume: {path} is missing or unreadable ({exc}).", "Run without --resume to start a new scan."
            ) from None
        if state.get("node") != node or state.get("k") != k:
            raise UsageError(
                f"Cannot resume: {path} belongs to a scan of '{state.get('node')}' with k={state.get('k')}.",
                "Use the same --node and --k, or run without --resume.",
            )
        channels = [int(c) for c in state["channels"]]
        entries = {
            int(c): [Entry.make(e["image"], e["y"], e["x"], e["activation"]) for e in items]
            for c, items in state["channels"].items()
        }
        return cls(node, channels, k, entries, state["processed"], state["last_image"], state["skipped"])

    def merge(self, other: TopK) -> TopK:
        """The top-k of both scans (over disjoint images): each channel's k best of the union."""
        if (other.node, other.channels, other.k) != (self.node, self.channels, self.k):
            raise UsageError(
                f"Cannot merge the top-{other.k} of '{other.node}' into the top-{self.k} of '{self.node}'.",
                "Merge scans of the same layer, channels and k.",
            )
        entries = {c: sorted(self.entries[c] + other.entries[c])[: self.k] for c in self.channels}
        return TopK(self.node, list(self.channels), self.k, entries, skipped=self.skipped + other.skipped)
