"""Occlusion sensitivity (Zeiler & Fergus §4.2): slide a square over the image, watch a score.

For every top-left corner (0, S, 2S, … while the patch fits) the patch is filled in
preprocessed-input space and the model is run; the score is the softmax probability of the
target class (default: the unoccluded top-1), or, with a node and channel, the total
activation of that feature map. Positions run in batches through one session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx

from onnxviz import render
from onnxviz.errors import UsageError
from onnxviz.model import ModelGraph
from onnxviz.preprocess import Preprocessing, picture_from_tensor
from onnxviz.project import seeded_tensor

Progress = Callable[[int, int], None]
DEFAULT_BATCH_LIMIT = 64
MEMORY_SHARE = 0.25


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


def fill_values(fill: str | float, x: np.ndarray, layout: str, prep: Preprocessing) -> np.ndarray:
    """Per-channel fill in preprocessed-input space: zero, the image's mean, mid-grey, or a number."""
    channel_axis = 3 if layout == "nhwc" else 1
    channels = x.shape[channel_axis]
    if isinstance(fill, (int, float)) or _is_number(fill):
        return np.full(channels, float(fill), np.float32)
    if fill == "zero":
        return np.zeros(channels, np.float32)
    if fill == "mean":
        axes = tuple(a for a in range(x.ndim) if a != channel_axis)
        return x.mean(axis=axes).astype(np.float32)
    if fill == "gray":
        grey = np.full(channels, 128.0 * prep.scale, np.float32)
        return (grey - np.asarray(prep.mean, np.float32)[:channels]) / np.asarray(prep.std, np.float32)[:channels]
    raise UsageError(f"Unknown --fill '{fill}'.", "Use zero, mean, gray, or a number.")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


OCCLUDED = "occluded"


def occluder_model(shape: tuple[int, ...], layout: str, patch: int) -> onnx.ModelProto:
    """A graph making the batch of occluded images from ``image`` (1, …), ``corners`` (B, 2)
    and ``fill`` (C,), where the session runs: on the GPU only the corners travel per batch."""
    h_axis = 1 if layout == "nhwc" else 2
    height, width = shape[h_axis], shape[h_axis + 1]
    channels = shape[3 if layout == "nhwc" else 1]
    constants = {
        "occ_rows": np.arange(height, dtype=np.int64)[None],
        "occ_cols": np.arange(width, dtype=np.int64)[None],
        "occ_patch": np.array(patch, np.int64),
        "occ_first": np.array([0], np.int64),
        "occ_second": np.array([1], np.int64),
        "occ_end": np.array([2], np.int64),
        "occ_axis1": np.array([1], np.int64),
        "occ_axis2": np.array([2], np.int64),
        "occ_mask_axis": np.array([3 if layout == "nhwc" else 1], np.int64),
        "occ_fill_shape": np.array([1, 1, 1, channels] if layout == "nhwc" else [1, channels, 1, 1], np.int64),
    }
    make = onnx.helper.make_node
    nodes = [
        make("Slice", ["corners", "occ_first", "occ_second", "occ_axis1"], ["occ_top"]),
        make("Slice", ["corners", "occ_second", "occ_end", "occ_axis1"], ["occ_left"]),
        make("Add", ["occ_top", "occ_patch"], ["occ_bottom"]),
        make("Add", ["occ_left", "occ_patch"], ["occ_right"]),
        make("GreaterOrEqual", ["occ_rows", "occ_top"], ["occ_below_top"]),
        make("Less", ["occ_rows", "occ_bottom"], ["occ_above_bottom"]),
        make("And", ["occ_below_top", "occ_above_bottom"], ["occ_in_rows"]),
        make("GreaterOrEqual", ["occ_cols", "occ_left"], ["occ_right_of_left"]),
        make("Less", ["occ_cols", "occ_right"], ["occ_left_of_right"]),
        make("And", ["occ_right_of_left", "occ_left_of_right"], ["occ_in_cols"]),
        make("Unsqueeze", ["occ_in_rows", "occ_axis2"], ["occ_rows_3d"]),
        make("Unsqueeze", ["occ_in_cols", "occ_axis1"], ["occ_cols_3d"]),
        make("And", ["occ_rows_3d", "occ_cols_3d"], ["occ_square"]),
        make("Unsqueeze", ["occ_square", "occ_mask_axis"], ["occ_mask"]),
        make("Reshape", ["fill", "occ_fill_shape"], ["occ_fill"]),
        make("Where", ["occ_mask", "occ_fill", "image"], [OCCLUDED]),
    ]
    inputs = [
        onnx.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1, *shape[1:]]),
        onnx.helper.make_tensor_value_info("corners", onnx.TensorProto.INT64, ["B", 2]),
        onnx.helper.make_tensor_value_info("fill", onnx.TensorProto.FLOAT, [channels]),
    ]
    output = onnx.helper.make_tensor_value_info(OCCLUDED, onnx.TensorProto.FLOAT, ["B", *shape[1:]])
    initializers = [onnx.numpy_helper.from_array(v, k) for k, v in constants.items()]
    graph = onnx.helper.make_graph(nodes, "occluder", inputs, [output], initializer=initializers)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


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


def batch_size_for(graph: ModelGraph, shapes: dict[str, tuple[int, ...]], requested: int | None) -> int:
    """The user's choice, or as many images as a quarter of the free memory holds (≤ 64)."""
    if requested is not None:
        if requested <= 0:
            raise UsageError(f"--batch-size must be positive; got {requested}.")
        return requested
    per_image = 4 * sum(int(np.prod(shapes[t])) for t in graph.signal if t in shapes)
    available = _available_memory()
    return int(max(1, min(DEFAULT_BATCH_LIMIT, available * MEMORY_SHARE // max(per_image, 1))))


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


@dataclass
class OcclusionMap:
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

    def save(self, path) -> None:
        render.save_png(self.figure(), path)

    def _repr_png_(self) -> bytes:
        return render.png_bytes(self.figure())

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


def run_occlusion(
    evaluate: Callable[[list[int]], np.ndarray],
    count: int,
    batch_size: int,
    progress: Progress | None = None,
) -> np.ndarray:
    """``evaluate`` maps a batch of position indices to the score tensor's values."""
    outputs = []
    for start in range(0, count, batch_size):
        chunk = list(range(start, min(count, start + batch_size)))
        outputs.append(evaluate(chunk))
        if progress is not None:
            progress(chunk[-1] + 1, count)
    return np.concatenate(outputs)
