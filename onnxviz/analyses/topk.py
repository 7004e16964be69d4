"""Top-k activations per feature map over a folder of images (Zeiler & Fergus, Fig. 2).

The scan streams the folder in batches (``data/images.py``) and keeps, per channel, only the k
best entries (``data/reducers.py``): each image contributes at most one entry per channel (its
strongest position, the first in row-major order on ties), so the k winners are k different
images. Memory is O(channels × k) whatever the folder's size; a state file written after every
batch lets an interrupted scan continue where it stopped. Each winner is then projected by the
deconvnet *from that single position* (every other activation zeroed) and cropped, with the
image patch, to the position's receptive field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnxviz.analyses.loaded import LoadedModel
from onnxviz.analyses.result import Result
from onnxviz.data.images import batches, list_images
from onnxviz.data.preprocess import picture_from_tensor
from onnxviz.data.reducers import Entry, TopK
from onnxviz.errors import UsageError
from onnxviz.graph.receptive import receptive_fields
from onnxviz.render import pictures as render
from onnxviz.render.outputs import write_text
from onnxviz.render.pages import topk_index
from onnxviz.runtime.batching import batch_size_for
from onnxviz.runtime.projector import seeded_tensor

STATE_FILE = "topk_state.json"
Progress = Callable[[int, int], None]


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
    for batch in batches(images, folder, load, batch_size, state.processed):
        state.skipped.extend(batch.skipped)
        if batch.tensors is not None:
            state.update(batch.names, activations_of(batch.tensors))
        state.processed, state.last_image = batch.end, images[batch.end - 1]
        if state_path is not None:
            state.save_state(state_path, len(images))
        if progress is not None:
            progress(batch.end, len(images))
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
class TopKResult(Result):
    """The scan's winners and, per channel, their projections and patches."""

    scan: TopK
    winners: list[ChannelWinners]
    images: int

    def to_json(self) -> dict:
        return self.scan.to_json()

    def summary(self) -> dict:
        return self.to_json()

    def figure(self) -> np.ndarray:
        """Every channel's projections and patches, one channel under the other."""
        if not self.winners:
            raise UsageError("The scan was run without projections: there is nothing to draw.")
        return render.column([w.figure(self.scan.node) for w in self.winners])

    def save(self, folder: Path) -> list[Path]:
        """One PNG per channel, ``topk.json`` and an ``index.html`` linking them."""
        written = []
        for winners in self.winners:
            path = folder / f"channel_{winners.channel:04d}.png"
            render.save_png(winners.figure(self.scan.node), path)
            written.append(path)
        write_text(folder / "topk.json", json.dumps(self.to_json(), indent=1))
        page = topk_index(
            self.scan.node,
            self.scan.k,
            self.images,
            len(self.scan.skipped),
            [
                (w.channel, path.name, [(e.image, e.activation) for e in w.entries])
                for w, path in zip(self.winners, written, strict=True)
            ],
        )
        write_text(folder / "index.html", page)
        return written


def topk(
    model: LoadedModel,
    folder: str | Path,
    node: str,
    channels: list[int] | None = None,
    top_channels: int | None = None,
    k: int = 9,
    state_dir: str | Path | None = None,
    resume: bool = False,
    batch_size: int | None = None,
    project: bool = True,
    progress: Progress | None = None,
) -> TopKResult:
    """The k images that activate each channel of ``node`` most (one entry per image), with
    deconvnet projections from the winning position and the matching image patches."""
    folder = Path(folder)
    if k <= 0:
        raise UsageError(f"--k must be positive; got {k}.")
    if channels is not None and top_channels is not None:
        raise UsageError("Give either --channels or --top-channels, not both.")
    if resume and state_dir is None:
        raise UsageError("--resume needs --out: the scan state lives in the output folder.")
    images = list_images(folder)
    if not images:
        raise UsageError(f"No pictures or .npy files under {folder}.")
    layer = model.resolve(node)
    tensor = seeded_tensor(model.graph, layer.tensor)
    shape = model.input_shape()
    shapes = model.graph.shapes(shape)
    if len(shapes[tensor]) != 4:
        raise UsageError(f"'{node}' has no spatial feature maps (shape {list(shapes[tensor])}).")
    count = shapes[tensor][1]
    bad = [c for c in channels or [] if not 0 <= c < count]
    if bad:
        raise UsageError(f"Channel {bad[0]} does not exist: '{node}' has channels 0…{count - 1}.")
    runner = model.forward_runner(tensor, shape)
    size = batch_size_for(model.graph, shapes, batch_size) if runner.batched else 1
    state_path = Path(state_dir) / STATE_FILE if state_dir is not None else None
    if resume:
        state = TopK.load_state(state_path, layer.alias, k)
    else:
        scanned = channels if channels is not None else list(range(count))
        state = TopK(layer.alias, scanned, k, {c: [] for c in scanned})

    def load(path: Path) -> np.ndarray:
        return model.prepare(path)[0]

    scan(images, folder, load, lambda batch: runner.run(batch)[0], state, size, state_path, progress)
    if channels is None:
        wanted = top_channels if top_channels is not None else min(8, count)
        if not 1 <= wanted <= count:
            raise UsageError(f"--top-channels must be between 1 and {count}; got {wanted}.")
        ranked = sorted(state.channels, key=lambda c: state.entries[c][0].key if state.entries[c] else (math.inf,))
        state.channels = sorted(ranked[:wanted])
        state.entries = {c: state.entries[c] for c in state.channels}
    winners = [_winners(model, folder, tensor, c, state.entries[c], shape) for c in state.channels] if project else []
    return TopKResult(state, winners, len(images))


def _winners(
    model: LoadedModel, folder: Path, tensor: str, channel: int, entries: list[Entry], shape: tuple[int, ...]
) -> ChannelWinners:
    """Each winner projected from its single position, cropped with its patch to the receptive field."""
    projector = model.projector(tensor, "deconvnet", shape)
    field = receptive_fields(model.graph, model.graph.shapes(shape))[tensor]
    h_axis = model.height_axis
    height, width = shape[h_axis], shape[h_axis + 1]
    projections, patches = [], []
    for entry in entries:
        x, picture, _ = model.prepare(folder / entry.image)
        projection = projector.project_position(x, model.graph.input_name, channel, entry.y, entry.x)
        if picture is None:
            picture = picture_from_tensor(x[0], model.layout, model.preprocessing)
        top, left, bottom, right = field.box(entry.y, entry.x, height, width)
        shown = render.projection_to_rgb(projection, model.layout, model.preprocessing.order)
        projections.append(np.ascontiguousarray(shown[top:bottom, left:right]))
        patches.append(np.ascontiguousarray(picture[top:bottom, left:right]))
    return ChannelWinners(channel, entries, projections, patches)
