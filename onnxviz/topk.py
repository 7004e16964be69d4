"""Top-k activations per feature map over a folder of images (Zeiler & Fergus, Fig. 2).

The scan streams the folder in batches and keeps, per channel, only the k best entries: each
image contributes at most one entry per channel (its strongest position, the first in
row-major order on ties), so the k winners are k different images. Memory is O(channels × k)
whatever the folder's size; a state file written after every batch lets an interrupted scan
continue where it stopped. Each winner is then projected by the deconvnet *from that single
position* (every other activation zeroed) and cropped, with the image patch, to the position's
receptive field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onnxviz import render
from onnxviz.errors import ImageError, UsageError
from onnxviz.markup import fill, join, url
from onnxviz.outputs import write_text

PICTURE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".npy"})
STATE_FILE = "topk_state.json"
Progress = Callable[[int, int], None]


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


def list_images(folder: Path) -> list[str]:
    """Every file with a picture or .npy suffix under ``folder``, as sorted relative paths."""
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder of images.")
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES
    )


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


def scan(
    images: list[str],
    folder: Path,
    load: Callable[[Path], np.ndarray],
    activations_of: Callable[[np.ndarray], np.ndarray],
    state: TopK,
    batch_size: int,
    state_path: Path | None,
    progress: Progress | None = None,
) -> TopK:
    """Stream ``images`` (from ``state.processed`` on) through the model, batch by batch."""
    if state.processed and (state.processed > len(images) or images[state.processed - 1] != state.last_image):
        raise UsageError(
            "Cannot resume: the folder's files changed since the interrupted scan.",
            "Run without --resume to start a new scan.",
        )
    position = state.processed
    while position < len(images):
        chunk = images[position : position + batch_size]
        tensors, names = [], []
        for name in chunk:
            try:
                tensors.append(load(folder / name))
                names.append(name)
            except ImageError:
                state.skipped.append(name)
        if tensors:
            state.update(names, activations_of(np.concatenate(tensors)))
        position += len(chunk)
        state.processed, state.last_image = position, chunk[-1]
        if state_path is not None:
            state.save_state(state_path, len(images))
        if progress is not None:
            progress(position, len(images))
    return state


@dataclass
class ChannelWinners:
    """The k projections and image patches of one channel, cropped to the receptive fields."""

    channel: int
    entries: list[Entry]
    projections: list[np.ndarray]  # uint8 RGB crops
    patches: list[np.ndarray]  # uint8 RGB crops

    def figure(self, node: str) -> np.ndarray:
        size = (96, 96)
        columns = math.ceil(math.sqrt(len(self.entries)))
        tiles_p = [
            render.titled_tile(p, size, [f"{e.activation:.3g}"])
            for p, e in zip(self.projections, self.entries, strict=True)
        ]
        tiles_i = [
            render.titled_tile(p, size, [Path(e.image).name]) for p, e in zip(self.patches, self.entries, strict=True)
        ]
        body = render.beside(render.grid(tiles_p, columns), render.grid(tiles_i, columns))
        return render.with_header(body, f"{node} channel {self.channel}: top {len(self.entries)} projections | patches")


@dataclass
class TopKResult:
    """The scan's winners and, per channel, their projections and patches."""

    scan: TopK
    winners: list[ChannelWinners]
    images: int

    def to_json(self) -> dict:
        return self.scan.to_json()

    def save(self, folder: Path) -> list[Path]:
        """One PNG per channel, ``topk.json`` and an ``index.html`` linking them."""
        written = []
        for winners in self.winners:
            path = folder / f"channel_{winners.channel:04d}.png"
            render.save_png(winners.figure(self.scan.node), path)
            written.append(path)
        write_text(folder / "topk.json", json.dumps(self.to_json(), indent=1))
        rows = join(
            (
                fill(
                    '<h2>channel {channel}</h2><img src="{src}" alt="channel {channel}"><p>{winners}</p>',
                    channel=w.channel,
                    src=url(p.name),
                    winners=", ".join(f"{e.image} ({e.activation:.3g})" for e in w.entries),
                )
                for w, p in zip(self.winners, written, strict=True)
            ),
            "\n",
        )
        page = fill(
            "<!doctype html><html><head><meta charset='utf-8'><title>top-{k} of {node}</title></head><body>"
            "<h1>top {k} activations of {node}</h1><p>{images} images scanned, {skipped} unreadable skipped</p>"
            "{rows}</body></html>",
            k=self.scan.k,
            node=self.scan.node,
            images=self.images,
            skipped=len(self.scan.skipped),
            rows=rows,
        )
        write_text(folder / "index.html", page)
        return written
