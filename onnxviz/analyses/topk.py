"""Top-k activations per feature map over a folder of images (Zeiler & Fergus, Fig. 2).

The scan maps shards of the folder to partial top-k lists and merges them (``data/scan.py``, on the
local engine or on Ray): per channel only the k best entries are kept (``data/reducers.py``), each
image contributing at most one entry per channel (its strongest position, the first in row-major
order on ties), so the k winners are k different images. Memory is O(channels × k) whatever the
folder's size; each finished shard is recorded under ``--out`` so that an interrupted scan
continues where it stopped. Each winner is then projected by the
deconvnet *from that single position* (every other activation zeroed) and cropped, with the
image patch, to the position's receptive field.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onnxviz.analyses._common import channels_field, node_field, top_field
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.options import Options, option
from onnxviz.core.progress import Progress
from onnxviz.core.result import Result
from onnxviz.data.images import list_images
from onnxviz.data.preprocess import picture_from_tensor
from onnxviz.data.reducers import Entry, TopK
from onnxviz.data.scan import run_scan
from onnxviz.data.scanner import Engine, ScanTask
from onnxviz.data.shards import ShardStore, listing_digest
from onnxviz.errors import OptionError, UsageError
from onnxviz.graph.receptive import receptive_fields
from onnxviz.render import pictures as render
from onnxviz.render.outputs import write_text
from onnxviz.render.pages import topk_index
from onnxviz.runtime.batching import batch_size_for
from onnxviz.runtime.projector import seeded_tensor

STATE_FOLDER = "scan"  # under --out: the manifest and one record per finished shard
DEFAULT_TOP = 8  # channels ranked by their strongest winner, when none are named


@dataclass(frozen=True)
class TopKOptions(Options):
    """Which channels of which layer, how many winners each, and where the scan runs and keeps its state."""

    node: str = node_field()
    channels: list[int] | None = channels_field("Channels: 0,5,9 or repeated.")
    top: int | None = top_field(
        f"The N channels with the strongest winners (default {DEFAULT_TOP}).", old_spelling=True
    )
    k: int = field(default=9, metadata=option("Winners per channel.", min=1))
    batch_size: int | None = field(default=None, metadata=option("Images per run.", min=1))
    resume: bool = field(default=False, metadata=option("Continue an interrupted scan in --out."))
    state_dir: Path | str | None = field(
        default=None,
        metadata=option("Folder for the grids, topk.json, index.html and the resumable scan state.", flag="--out"),
    )
    project: bool = field(
        default=True, metadata=option("Project each winner and crop its patch (off: the scan only).", cli=False)
    )
    engine: Engine | None = field(
        default=None, metadata=option("Where the scan runs (default: this process).", cli=False)
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.channels is not None and self.top is not None:
            raise OptionError("top", "Give either {channels} or {option}, not both.")
        if self.resume and self.state_dir is None:
            raise OptionError("resume", "{option} needs {state_dir}: the scan state lives in the output folder.")


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


def topk(model: LoadedModel, folder: str | Path, options: TopKOptions, progress: Progress | None = None) -> TopKResult:
    """The k images that activate each channel of ``options.node`` most (one entry per image), with
    deconvnet projections from the winning position and the matching image patches."""
    folder, engine = Path(folder), options.engine or Engine()
    node, channels, k = options.node, options.channels, options.k
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
        raise OptionError("channels", f"Channel {bad[0]} does not exist: '{node}' has channels 0…{count - 1}.")
    wanted = options.top if options.top is not None else min(DEFAULT_TOP, count)
    if channels is None and not 1 <= wanted <= count:  # checked before the scan leaves any state
        raise OptionError("top", f"{{option}} must be between 1 and {count}; got {wanted}.")
    manifest = {"node": layer.alias, "channels": channels, "k": k, "shard_size": engine.shard_size}
    store = _store(options.state_dir, options.resume, manifest | {"files": listing_digest(images)}, count)
    scanned = store.manifest["channels"] if store is not None else channels or list(range(count))
    size = batch_size_for(model.graph, shapes, options.batch_size)
    task = ScanTask(folder, tensor, shape, size, functools.partial(TopK.empty, layer.alias, scanned, k))
    resumed = TopK.from_state if options.resume else None  # a new scan has no finished shards to read back
    state = run_scan(model, task, images, engine, model.opener(), store, resumed, progress)
    _refuse_unreadable(state, folder, shape, store if not options.resume else None)
    if channels is None:
        ranked = sorted(state.channels, key=lambda c: state.entries[c][0].key if state.entries[c] else (math.inf,))
        state.channels = sorted(ranked[:wanted])
        state.entries = {c: state.entries[c] for c in state.channels}
    winners = (
        [_winners(model, folder, tensor, c, state.entries[c], shape) for c in state.channels] if options.project else []
    )
    return TopKResult(state, winners, len(images))


def _refuse_unreadable(state: TopK, folder: Path, shape: tuple[int, ...], started: ShardStore | None) -> None:
    """Why there are no winners when no file could be read as the model's input (the state a new
    scan left goes with the error: no output is left behind)."""
    if len(state.skipped) < state.processed:
        return
    if started is not None:
        started.discard()
    names = ", ".join(state.skipped[:3]) + (", …" if len(state.skipped) > 3 else "")
    raise UsageError(
        f"topk needs at least one readable image; {folder} has 0 ({len(state.skipped)} unreadable, skipped: {names}).",
        f"Give pictures, or float32 .npy arrays of the model's input shape {list(shape)}.",
    )


def _store(state_dir: str | Path | None, resume: bool, manifest: dict, count: int) -> ShardStore | None:
    """Where finished shards are recorded: none without ``--out``; the interrupted scan's with ``--resume``."""
    if state_dir is None:
        return None
    folder = Path(state_dir) / STATE_FOLDER
    if resume:
        return ShardStore.resume(folder, manifest)
    return ShardStore.start(folder, manifest | {"channels": manifest["channels"] or list(range(count))})


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
