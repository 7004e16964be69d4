"""Feature evolution during training (Zeiler & Fergus, Fig. 4).

Checkpoints are ONNX files of one architecture in training order. At every checkpoint each
channel of a layer gets its single strongest activation over a folder of images: the ``topk``
scan with k = 1 (the same streamed folder, the same reducer, the same projection from that one
position, cropped to its receptive field), so a column of the picture is exactly what ``topk
--k 1`` shows for that checkpoint. Reading the rows left to right shows when a feature forms:
in the paper the lower layers settle within a few epochs and the upper ones only much later.

The channels shown are picked at the *last* checkpoint (the trained network's strongest, or the
ones asked for), so the last checkpoint is scanned first; every checkpoint is loaded with the same
options and its sessions are freed before the next one is loaded, so memory holds one model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from onnxviz.analyses._common import channels_field, node_field, top_field
from onnxviz.analyses.topk import DEFAULT_TOP, ChannelWinners, TopKOptions, TopKResult, topk
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.options import Options, option
from onnxviz.core.progress import Progress
from onnxviz.core.result import Result
from onnxviz.data.images import list_images
from onnxviz.data.reducers import CheckpointWinners
from onnxviz.data.scan import session
from onnxviz.data.scanner import Engine
from onnxviz.errors import OptionError, UsageError
from onnxviz.graph.receptive import receptive_fields
from onnxviz.render import pictures as render
from onnxviz.runtime.projector import seeded_tensor

Loader = Callable[[Path], LoadedModel]


@dataclass(frozen=True)
class EvolutionOptions(Options):
    """The images scanned at every checkpoint, the layer, its channels, and where the scans run."""

    images: Path | str = field(metadata=option("Folder of pictures / .npy inputs (searched recursively)."))
    node: str = node_field()
    channels: list[int] | None = channels_field("Channels: 0,5,9 or repeated.")
    top: int | None = top_field(
        f"The N channels strongest at the last checkpoint (default {DEFAULT_TOP}).", old_spelling=True
    )
    batch_size: int | None = field(default=None, metadata=option("Images per run.", min=1))
    engine: Engine | None = field(
        default=None, metadata=option("Where each checkpoint's scan runs (default: this process).", cli=False)
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.channels is not None and self.top is not None:
            raise OptionError("top", "Give either {channels} or {option}, not both.")


TILE = 96  # pixels of the square a projection is drawn in
GAP = 6
LABEL_WIDTH = 64
LABEL_HEIGHT = 22


def natural_key(name: str) -> tuple:
    """Sort key reading digit runs as numbers: ``epoch2`` before ``epoch10``.

    ``re.split`` with a group alternates text and digits starting with text, so the tuples of two
    names compare text with text and numbers with numbers."""
    parts = re.split(r"(\d+)", name.lower())
    return tuple(int(part) if i % 2 else part for i, part in enumerate(parts))


def checkpoint_files(arguments: str | Path | Sequence[str | Path]) -> list[Path]:
    """The checkpoint files in training order: files as given, a folder as its ``.onnx`` files in
    natural order. One path may be given on its own."""
    if isinstance(arguments, (str, Path)):
        arguments = [arguments]
    if not arguments:
        raise UsageError("Give at least one checkpoint (an ONNX file, or a folder of them).")
    files: list[Path] = []
    for argument in map(Path, arguments):
        if argument.is_dir():
            found = sorted((p for p in argument.glob("*.onnx") if p.is_file()), key=lambda p: natural_key(p.name))
            if not found:
                raise UsageError(f"The checkpoint folder {argument} holds no .onnx files.")
            files.extend(found)
        elif argument.is_file():
            files.append(argument)
        else:
            raise UsageError(
                f"The checkpoint {argument} does not exist.", "Give ONNX files or folders of them, in training order."
            )
    return files


@dataclass(frozen=True)
class Architecture:
    """What must agree between checkpoints for their columns to be comparable."""

    input_shape: tuple[int, ...]
    node: str
    tensor: str
    shape: tuple[int, ...]

    @classmethod
    def of(cls, model: LoadedModel, node: str) -> Architecture:
        layer = model.resolve(node)
        input_shape = model.input_shape()
        tensor = seeded_tensor(model.graph, layer.tensor)
        return cls(input_shape, layer.node, tensor, tuple(model.graph.shapes(input_shape)[tensor]))

    def describe(self) -> str:
        return f"input {list(self.input_shape)}, node '{self.node}' with output '{self.tensor}' {list(self.shape)}"


def check_architecture(load: Loader, files: list[Path], node: str) -> tuple[int, int]:
    """Refuse checkpoints of different architectures before any scan; returns the receptive
    field (height, width) of ``node``, in input pixels and clipped to the input."""
    first = load(files[0])
    expected = Architecture.of(first, node)
    for path in files[1:]:
        found = Architecture.of(load(path), node)
        if found != expected:
            raise UsageError(
                f"The checkpoints are not one architecture: {files[0].name} has {expected.describe()}, "
                f"but {path.name} has {found.describe()}.",
                "Give checkpoints of one model, saved during one training run.",
            )
    field = receptive_fields(first.graph, first.graph.shapes(expected.input_shape))[expected.tensor]
    h_axis = first.height_axis
    height, width = expected.input_shape[h_axis], expected.input_shape[h_axis + 1]
    return min(height, int(field.size[0])), min(width, int(field.size[1]))


@dataclass
class EvolutionResult(Result):
    """Per channel and checkpoint: the strongest activation, its projection and image patch."""

    node: str
    checkpoints: list[str]  # labels: the files' stems, in training order
    channels: list[int]
    rows: dict[int, list[ChannelWinners]]  # per channel, one single-winner entry per checkpoint
    winners: CheckpointWinners  # the scans' merged winners, per checkpoint file
    files: list[str]  # the checkpoint files, in training order (the keys of ``winners``)
    field: tuple[int, int]  # the receptive field the crops are cut to, in input pixels
    images: int
    skipped: list[str]

    def summary(self) -> dict:
        found = self.winners.result()
        return {
            "node": self.node,
            "checkpoints": list(self.checkpoints),
            "channels": {
                str(channel): [
                    {"checkpoint": label, **found[path][channel][0].as_dict()}
                    for label, path in zip(self.checkpoints, self.files, strict=True)
                ]
                for channel in self.channels
            },
        }

    def figure(self) -> np.ndarray:
        """One row per channel, one column per checkpoint, each cell the projection at its
        receptive field's scale (a crop clipped by the image border stays smaller)."""
        tiles = [
            render.titled_tile(self.tile(cell.projections[0]), (TILE, TILE), _caption(cell))
            for channel in self.channels
            for cell in self.rows[channel]
        ]
        body = render.grid(tiles, len(self.checkpoints), GAP)
        step_x, step_y = tiles[0].shape[1] + GAP, tiles[0].shape[0] + GAP
        top = np.full((LABEL_HEIGHT, body.shape[1], 3), render.BACKGROUND, np.uint8)
        for i, label in enumerate(self.checkpoints):
            _put_centred(top, label, GAP + i * step_x, step_x - GAP, LABEL_HEIGHT - 6)
        left = np.full((LABEL_HEIGHT + body.shape[0], LABEL_WIDTH, 3), render.BACKGROUND, np.uint8)
        for i, channel in enumerate(self.channels):
            _put_centred(left, f"ch {channel}", 0, LABEL_WIDTH, LABEL_HEIGHT + GAP + i * step_y + step_y // 2)
        picture = np.hstack([left, np.vstack([top, body])])
        title = f"{self.node}: each channel's strongest activation over {self.images} images, per checkpoint"
        return render.with_header(picture, title)

    def tile(self, crop: np.ndarray) -> np.ndarray:
        """``crop`` scaled by the factor that makes a whole receptive field fill ``TILE``, centred
        on white; a factor of at least 1 is a whole number, so pixels stay square blocks."""
        largest = max(self.field)
        factor = TILE // largest if largest <= TILE else TILE / largest
        height, width = max(1, round(crop.shape[0] * factor)), max(1, round(crop.shape[1] * factor))
        interpolation = cv2.INTER_NEAREST if factor >= 1 else cv2.INTER_AREA
        scaled = cv2.resize(crop, (width, height), interpolation=interpolation)
        canvas = np.full((TILE, TILE, 3), render.BACKGROUND, np.uint8)
        top, left = (TILE - height) // 2, (TILE - width) // 2
        canvas[top : top + height, left : left + width] = scaled
        return canvas


def _caption(cell: ChannelWinners) -> list[str]:
    entry = cell.entries[0]
    return [f"{entry.activation:.3g}", Path(entry.image).stem]


def _put_centred(canvas: np.ndarray, text: str, left: int, width: int, baseline: int) -> None:
    size = cv2.getTextSize(text, render.FONT, 0.45, 1)[0][0]
    x = left + max(0, (width - size) // 2)
    cv2.putText(canvas, text, (x, baseline), render.FONT, 0.45, render.INK, 1, cv2.LINE_AA)


def _continued(progress: Progress | None, offset: int, total: int) -> Progress | None:
    """One checkpoint's scan progress as a stretch of the whole run's (checkpoints × images)."""
    if progress is None:
        return None
    return lambda done, _: progress(offset + done, total)


def evolution(
    load: Loader,
    checkpoints: str | Path | Sequence[str | Path],
    options: EvolutionOptions,
    progress: Progress | None = None,
) -> EvolutionResult:
    """Each channel's strongest activation over ``options.images`` at every checkpoint, projected and
    cropped. ``load`` loads a checkpoint (the same options for all); ``options.top`` (default 8)
    ranks channels by their maximum at the last checkpoint; ``progress(done, total)`` counts
    checkpoints × images."""
    node = options.node
    files = checkpoint_files(checkpoints)
    field = check_architecture(load, files, node)
    folder = Path(options.images)
    names = list_images(folder)
    if not names:
        raise UsageError(f"No pictures or .npy files under {folder}.")
    total = len(files) * len(names)
    scans: dict[int, TopKResult] = {}
    chosen = options.channels
    engine = options.engine or Engine()
    with session(engine):
        for step, index in enumerate([len(files) - 1, *range(len(files) - 1)]):  # the last picks the channels
            model = load(files[index])
            picking = options.top if chosen is None else None
            counted = _continued(progress, step * len(names), total)
            scan = TopKOptions(node, chosen, picking, k=1, batch_size=options.batch_size, engine=engine)
            scans[index] = topk(model, folder, scan, counted)
            chosen = scans[index].scan.channels
            model.engines.projectors.clear()  # this checkpoint's sessions go before the next is loaded
            model.engines.sessions.clear()
    last = scans[len(files) - 1]
    rows = {c: [scans[i].winners[scans[i].scan.channels.index(c)] for i in range(len(files))] for c in chosen}
    labels = [path.stem for path in files]
    winners = CheckpointWinners(last.scan.node, list(chosen), 1)
    for index, path in enumerate(files):  # keyed by path: two folders may hold checkpoints of one name
        winners = winners.merge(CheckpointWinners(last.scan.node, list(chosen), 1, {str(path): scans[index].scan}))
    paths = [str(path) for path in files]
    return EvolutionResult(
        last.scan.node, labels, list(chosen), rows, winners, paths, field, last.images, last.scan.skipped
    )
