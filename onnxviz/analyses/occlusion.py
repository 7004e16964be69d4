"""Occlusion sensitivity (Zeiler & Fergus §4.2): slide a square over the image, watch a score.

For every top-left corner (0, S, 2S, … while the patch fits) the patch is filled in
preprocessed-input space and the model is run; the score is the softmax probability of the
target class (default: the unoccluded top-1), or, with a node and channel, the total
activation of that feature map. Positions run in batches: the occluded images are made on the
device by the perturbation engine and scored by the forward runner, or, where it applies, the
incremental engine recomputes only the region each patch changes (same scores).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from onnxviz.analyses._common import fill_values, softmax
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.progress import Progress
from onnxviz.core.result import Result
from onnxviz.core.types import Image
from onnxviz.data.preprocess import Preprocessing, picture_from_tensor
from onnxviz.errors import UsageError
from onnxviz.graph.model import ModelGraph
from onnxviz.render import pictures as render
from onnxviz.runtime.batching import batch_size_for, run_in_batches
from onnxviz.runtime.engines import OccluderKey
from onnxviz.runtime.forward import ForwardRunner
from onnxviz.runtime.incremental import IncrementalKey, IncrementalOcclusion
from onnxviz.runtime.projector import seeded_tensor


@dataclass(frozen=True)
class Grid:
    """Patch positions: top-left corners at 0, S, 2S, … while the patch fits."""

    patch: int
    stride: int
    height: int
    width: int

    @property
    def rows(self) -> int:
        return (self.height - self.patch) // self.stride + 1

    @property
    def cols(self) -> int:
        return (self.width - self.patch) // self.stride + 1

    def corners(self) -> list[tuple[int, int]]:
        return [(r * self.stride, c * self.stride) for r in range(self.rows) for c in range(self.cols)]


def make_grid(patch: int, stride: int, height: int, width: int) -> Grid:
    if patch <= 0:
        raise UsageError(f"--patch must be positive; got {patch}.")
    if stride <= 0:
        raise UsageError(f"--stride must be positive; got {stride}.")
    if patch > height or patch > width:
        raise UsageError(f"--patch {patch} is larger than the model input ({height}x{width}).", "Use a smaller patch.")
    return Grid(patch, stride, height, width)


def score_tensor(graph: ModelGraph, node_tensor: str | None) -> tuple[str, str]:
    """(tensor to read, kind): the logits of the first output, or a feature map."""
    if node_tensor is not None:
        return node_tensor, "channel"
    if not graph.output_names:
        raise UsageError(
            "The model declares no outputs, so there is no class score to occlude.",
            "Score a feature map instead: --node LAYER [--channel C].",
        )
    logits = seeded_tensor(graph, graph.output_names[0])
    return logits, "class"


@dataclass
class OcclusionMap(Result):
    """Scores of every patch position; ``scores`` is what ``onnxviz occlude --raw`` writes."""

    scores: np.ndarray
    grid: Grid
    kind: str
    target: int
    baseline: float
    top_class: np.ndarray | None
    top_probability: np.ndarray | None
    input_tensor: np.ndarray
    layout: str
    preprocessing: Preprocessing
    picture: np.ndarray | None = None
    labels: list[str] | None = None
    node: str | None = None
    fill: str = "zero"
    device: str = "cpu"
    batch_size: int = 1
    note: str = ""
    incremental: bool = False
    positions_per_second: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def label(self, index: int) -> str:
        if self.labels and 0 <= index < len(self.labels):
            return self.labels[index]
        return str(index)

    def figure(self) -> np.ndarray:
        picture = self.picture
        if picture is None:
            picture = picture_from_tensor(self.input_tensor[0], self.layout, self.preprocessing)
        size = render.tile_size(*picture.shape[:2])
        what = (
            f"p({self.label(self.target)})"
            if self.kind == "class"
            else f"{self.node} ch {self.target} total activation"
        )
        heat = render.heatmap_overlay(picture, self.scores, self.grid.patch, self.grid.stride)
        tiles = [
            render.titled_tile(picture, size, ["input", f"unoccluded {self.baseline:.3g}"]),
            render.titled_tile(heat, size, [what, f"min {self.scores.min():.3g} max {self.scores.max():.3g}"]),
        ]
        panels = render.grid(tiles, len(tiles))
        panels = render.beside(
            panels, render.colorbar(panels.shape[0], float(self.scores.min()), float(self.scores.max()))
        )
        if self.top_class is not None:
            classes, legend = render.class_map(self.top_class, size, self.label)
            tile = render.titled_tile(classes, size, ["most probable class", ""])
            panels = render.beside(panels, render.grid([tile], 1))
            panels = render.beside(panels, legend)
        return render.with_header(
            panels,
            f"occlusion: patch {self.grid.patch}, stride {self.grid.stride}, "
            f"fill {self.fill}, {self.grid.rows}x{self.grid.cols} positions",
        )

    def summary(self) -> dict:
        lowest = np.unravel_index(int(np.argmin(self.scores)), self.scores.shape)
        highest = np.unravel_index(int(np.argmax(self.scores)), self.scores.shape)

        def corner(rc: tuple) -> dict:
            row, col = int(rc[0]), int(rc[1])
            return {
                "row": row,
                "col": col,
                "y": row * self.grid.stride,
                "x": col * self.grid.stride,
                "score": float(self.scores[row, col]),
            }

        result = {
            "kind": self.kind,
            "target": self.target,
            "target_label": self.label(self.target) if self.kind == "class" else None,
            "node": self.node,
            "grid": {
                "patch": self.grid.patch,
                "stride": self.grid.stride,
                "rows": self.grid.rows,
                "cols": self.grid.cols,
                "height": self.grid.height,
                "width": self.grid.width,
            },
            "fill": self.fill,
            "unoccluded_score": self.baseline,
            "min": corner(lowest),
            "max": corner(highest),
            "device": self.device,
            "batch_size": self.batch_size,
            "incremental": self.incremental,
            "positions_per_second": round(self.positions_per_second, 2),
            "timings_ms": {k: round(v * 1000, 3) for k, v in self.timings.items()},
        }
        if self.top_class is not None:
            result["top_class"] = self.top_class.tolist()
            result["top_class_labels"] = sorted({self.label(int(c)) for c in np.unique(self.top_class)})
        if self.note:
            result["note"] = self.note
        return result


@dataclass(frozen=True)
class Target:
    """What is scored: a class probability or a channel's total activation, and its unoccluded value."""

    tensor: str
    kind: str
    index: int
    baseline: float
    count: int


def occlude(
    model: LoadedModel,
    image: Image,
    patch: int = 32,
    stride: int = 16,
    fill: str | float = "zero",
    target_class: int | None = None,
    node: str | None = None,
    channel: int | None = None,
    batch_size: int | None = None,
    labels: list[str] | None = None,
    incremental: bool = True,
    progress: Progress | None = None,
) -> OcclusionMap:
    """The score of every patch position; ``incremental`` recomputes only what each patch changes
    (the same scores as a full recompute) and falls back to one where it cannot apply."""
    started = time.perf_counter()
    x, picture, shape = model.prepare(image)
    h_axis = model.height_axis
    grid = make_grid(patch, stride, shape[h_axis], shape[h_axis + 1])
    if node is None and channel is not None:
        raise UsageError("--channel needs --node: the channel of which layer?")
    if node is not None and target_class is not None:
        raise UsageError("Give either --target-class or --node/--channel, not both.")
    layer_tensor = seeded_tensor(model.graph, model.resolve(node).tensor) if node is not None else None
    tensor, kind = score_tensor(model.graph, layer_tensor)
    shapes = model.graph.shapes(shape)
    if kind == "channel" and len(shapes[tensor]) < 2:
        raise UsageError(f"'{node}' has no channels to score (shape {list(shapes[tensor])}).")
    runner = model.forward_runner(tensor, shape)
    target = _target(runner, x, tensor, kind, node, target_class if kind == "class" else channel)
    fills = fill_values(fill, x, model.layout, model.preprocessing)
    size = batch_size_for(model.graph, shapes, batch_size) if runner.batched else 1
    evaluate, engine = _evaluator(model, runner, x, tensor, grid, fills, incremental)
    prepared = time.perf_counter()
    outputs = run_in_batches(evaluate, grid.rows * grid.cols, size, progress)
    finished = time.perf_counter()
    scores, top_class, top_probability = _scores(outputs, target, grid)
    return OcclusionMap(
        scores=scores,
        grid=grid,
        kind=kind,
        target=target.index,
        baseline=target.baseline,
        top_class=top_class,
        top_probability=top_probability,
        input_tensor=x,
        layout=model.layout,
        preprocessing=model.preprocessing,
        picture=picture,
        labels=labels or model.labels(),
        node=node,
        fill=str(fill),
        device=model.device.name,
        batch_size=size,
        note=runner.note,
        incremental=engine is not None,
        timings={"prepare": prepared - started, "occlusion": finished - prepared, "total": finished - started},
        positions_per_second=len(outputs) / max(finished - prepared, 1e-9),
    )


def _target(
    runner: ForwardRunner, x: np.ndarray, tensor: str, kind: str, node: str | None, wanted: int | None
) -> Target:
    """The scored class (default: the top-1) or channel (default: the strongest), checked to exist."""
    (base,) = runner.run(x)
    if base.ndim < 2 or base.shape[0] != 1:
        raise UsageError(
            f"The score tensor '{tensor}' has shape {list(base.shape)} for one image: it has no batch "
            "and class/channel axes to score.",
            "Score a feature map instead: --node LAYER [--channel C]." if node is None else "Pick another layer.",
        )
    count = base.shape[1]
    if kind == "class":
        probabilities = softmax(base.reshape(1, -1))
        target = int(probabilities.argmax()) if wanted is None else wanted
        if not 0 <= target < probabilities.shape[1]:
            last = probabilities.shape[1] - 1
            raise UsageError(f"Class {target} does not exist: the model has classes 0…{last}.")
        return Target(tensor, kind, target, float(probabilities[0, target]), count)
    per_channel = base.reshape(1, count, -1)
    target = int(per_channel.max(axis=2).argmax()) if wanted is None else wanted
    if not 0 <= target < count:
        raise UsageError(f"Channel {target} does not exist: '{node}' has channels 0…{count - 1}.")
    return Target(tensor, kind, target, float(per_channel.sum(axis=2)[0, target]), count)


def _scores(outputs: np.ndarray, target: Target, grid: Grid) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(scores, most probable class, its probability) per position, as (rows, cols) maps."""
    shape = (grid.rows, grid.cols)
    if target.kind != "class":
        scores = outputs.reshape(len(outputs), target.count, -1)[:, target.index].sum(axis=1)
        return scores.reshape(shape).astype(np.float32), None, None
    probabilities = softmax(outputs.reshape(len(outputs), -1))
    scores = probabilities[:, target.index].reshape(shape).astype(np.float32)
    return (
        scores,
        probabilities.argmax(axis=1).reshape(shape),
        probabilities.max(axis=1).reshape(shape).astype(np.float32),
    )


def _evaluator(
    model: LoadedModel,
    runner: ForwardRunner,
    x: np.ndarray,
    tensor: str,
    grid: Grid,
    fills: np.ndarray,
    incremental: bool,
) -> tuple[Callable[[list[int]], np.ndarray], IncrementalOcclusion | None]:
    """Scores for a batch of position indices: the incremental engine where it applies, else the
    occluder's batches through the forward runner."""
    corners = grid.corners()
    if incremental and runner.batched and model.layout == "nchw":
        shape = tuple(x.shape)
        key = IncrementalKey(tensor, shape, grid.patch, tuple(corners))
        engine = model.engines.sessions.get_or_make(
            key, lambda: IncrementalOcclusion(model.graph, tensor, shape, grid.patch, corners, model.device)
        )
        if engine.applicable:
            engine.use_image(x)
            return (lambda indices: engine.evaluate(fills, grid.patch, indices)), engine
    shape = tuple(x.shape)
    occluder = model.engines.occluder(OccluderKey(shape, model.layout, grid.patch))
    image = occluder.place(x)

    def evaluate(indices: list[int]) -> np.ndarray:
        batch = occluder.occluded(image, np.asarray([corners[i] for i in indices], np.int64), fills)
        (values,) = runner.run_bound(batch, "occlusion graph")
        return values.numpy()

    return evaluate, None
