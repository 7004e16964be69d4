"""Occlusion sensitivity (Zeiler & Fergus §4.2): slide a square over the image, watch a score.

For every top-left corner (0, S, 2S, … while the patch fits) the patch is filled in
preprocessed-input space and the model is run; the score is the target's (``onnxviz.targets``):
for a class (default: the unoccluded top-1) its softmax probability, as the paper plots it, for
the other kinds the score itself (a feature map's total activation, a tensor element).
Positions run in batches: the occluded images are made on the device by the perturbation engine
and scored by the forward runner, or, where it applies, the incremental engine recomputes only
the region each patch changes (same scores).

The default patch, ``OccludeOptions().patch``, is the one every other caller derives its own
from (``compare``, ``report``, the viewer).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from onnxviz.analyses._common import fill_values, softmax
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.options import Options, option
from onnxviz.core.progress import Progress
from onnxviz.core.result import Result
from onnxviz.core.types import Image
from onnxviz.data.preprocess import Preprocessing, picture_from_tensor
from onnxviz.errors import OptionError
from onnxviz.render import pictures as render
from onnxviz.runtime.batching import batch_size_for, run_in_batches
from onnxviz.runtime.engines import OccluderKey
from onnxviz.runtime.forward import ForwardRunner
from onnxviz.runtime.incremental import IncrementalKey, IncrementalOcclusion
from onnxviz.targets.base import ResolvedTarget
from onnxviz.targets.spelling import SPELLINGS, TargetSpelling, parse_target

TARGET_HELP = f"What to score: {SPELLINGS} (default: the top-1 class)."


@dataclass(frozen=True)
class OccludeOptions(Options):
    """The patch, its step and fill, what is scored, and how the positions run."""

    patch: int = field(default=32, metadata=option("Patch size P (pixels of the model input).", min=1))
    stride: int = field(default=16, metadata=option("Step S between patch positions.", min=1))
    fill: str | float = field(default="zero", metadata=option("zero | mean | gray | a number (preprocessed space)."))
    target: TargetSpelling = field(default=None, metadata=option(TARGET_HELP))
    batch_size: int | None = field(
        default=None, metadata=option("Positions per run (default: from free memory).", min=1)
    )
    labels: list[str] | None = field(
        default=None, metadata=option("Class names in class order (default: the model's).", cli=False)
    )
    incremental: bool = field(
        default=True,
        metadata=option("Recompute only what each patch changes (exact), or every layer.", flag="--incremental/--full"),
    )


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
        raise OptionError("patch", f"{{option}} must be positive; got {patch}.")
    if stride <= 0:
        raise OptionError("stride", f"{{option}} must be positive; got {stride}.")
    if patch > height or patch > width:
        message = f"{{option}} {patch} is larger than the model input ({height}x{width})."
        raise OptionError("patch", message, "Use a smaller patch.")
    return Grid(patch, stride, height, width)


@dataclass
class OcclusionMap(Result):
    """Scores of every patch position; ``scores`` is what ``onnxviz occlude --raw`` writes."""

    scores: np.ndarray
    grid: Grid
    resolved: ResolvedTarget
    baseline: float
    top_class: np.ndarray | None
    top_probability: np.ndarray | None
    input_tensor: np.ndarray
    layout: str
    preprocessing: Preprocessing
    picture: np.ndarray | None = None
    labels: list[str] | None = None
    fill: str = "zero"
    device: str = "cpu"
    batch_size: int = 1
    note: str = ""
    incremental: bool = False
    positions_per_second: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.resolved.kind

    @property
    def node(self) -> str | None:
        """The layer or tensor scored as the caller named it; None for a class of the output."""
        return self.resolved.layer

    @property
    def target(self) -> int | list[int]:
        """The class or the channel scored (a detection's or a mask's class); for an element, its index."""
        if self.kind == "element":
            return list(self.resolved.index)
        return self.resolved.index[1] if self.kind == "channel" else self.resolved.class_index

    def label(self, index: int) -> str:
        if self.labels and 0 <= index < len(self.labels):
            return self.labels[index]
        return str(index)

    def described(self) -> str:
        """What is scored, in words: the class's name, the layer's channel, or the element."""
        if self.kind == "class":
            return self.label(self.target)
        if self.kind == "channel":
            return f"{self.node} channel {self.target}"
        if self.kind == "element":
            return f"{self.node}[{','.join(map(str, self.target))}]"
        return f"{self.kind} {self.label(self.target)}"  # a detector's box or a segmenter's mask

    def figure(self) -> np.ndarray:
        picture = self.picture
        if picture is None:
            picture = picture_from_tensor(self.input_tensor[0], self.layout, self.preprocessing)
        size = render.tile_size(*picture.shape[:2])
        what = {
            "class": f"p({self.described()})",
            "channel": f"{self.node} ch {self.target} total activation",
        }.get(self.kind, self.described())
        heat = render.heatmap_overlay(picture, self.scores, self.grid.patch, self.grid.stride)
        drawn = self.resolved.drawn(picture, self.labels, (self.grid.height, self.grid.width))
        tiles = [
            render.titled_tile(picture if drawn is None else drawn, size, ["input", f"unoccluded {self.baseline:.3g}"]),
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
            "resolved_target": self.resolved.summary(),
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


def occlude(
    model: LoadedModel, image: Image, options: OccludeOptions, progress: Progress | None = None
) -> OcclusionMap:
    """The score of ``options.target`` (``onnxviz.targets``: a class, ``NAME[i,...]``, a
    ``ChannelTarget``; default each image's top-1 class) at every patch position;
    ``options.incremental`` recomputes only what each patch changes (the same scores as a full
    recompute) and falls back to one where it cannot apply."""
    started = time.perf_counter()
    x, picture, shape = model.prepare(image)
    h_axis = model.height_axis
    grid = make_grid(options.patch, options.stride, shape[h_axis], shape[h_axis + 1])
    scored = parse_target(options.target)
    tensor = scored.tensor(model.graph)
    shapes = model.graph.shapes(shape)
    runner = model.forward_runner(tensor, shape)
    (unoccluded,) = runner.run(x)
    resolved = scored.resolve(model.graph, unoccluded)
    fills = fill_values(options.fill, x, model.layout, model.preprocessing)
    size = batch_size_for(model.graph, shapes, options.batch_size) if runner.batched else 1
    evaluate, engine = _evaluator(model, runner, x, tensor, grid, fills, options.incremental)
    prepared = time.perf_counter()
    outputs = run_in_batches(evaluate, grid.rows * grid.cols, size, progress)
    finished = time.perf_counter()
    scores, top_class, top_probability = _scores(outputs, resolved, grid)
    return OcclusionMap(
        scores=scores,
        grid=grid,
        resolved=resolved,
        baseline=_unoccluded_score(unoccluded, resolved),
        top_class=top_class,
        top_probability=top_probability,
        input_tensor=x,
        layout=model.layout,
        preprocessing=model.preprocessing,
        picture=picture,
        labels=options.labels or model.labels(),
        fill=str(options.fill),
        device=model.device.name,
        batch_size=size,
        note=runner.note,
        incremental=engine is not None,
        timings={"prepare": prepared - started, "occlusion": finished - prepared, "total": finished - started},
        positions_per_second=len(outputs) / max(finished - prepared, 1e-9),
    )


def _unoccluded_score(value: np.ndarray, target: ResolvedTarget) -> float:
    """The score the map is compared with: a class's softmax probability, else the target's score."""
    if target.kind != "class":
        return target.score
    return float(softmax(value.reshape(1, -1))[0, target.class_index])


def _scores(
    outputs: np.ndarray, target: ResolvedTarget, grid: Grid
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(scores, most probable class, its probability) per position, as (rows, cols) maps: a
    class's softmax probability, any other target's own score."""
    shape = (grid.rows, grid.cols)
    if target.kind != "class":
        return target.scores(outputs).reshape(shape).astype(np.float32), None, None
    probabilities = softmax(outputs.reshape(len(outputs), -1))
    scores = probabilities[:, target.class_index].reshape(shape).astype(np.float32)
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
