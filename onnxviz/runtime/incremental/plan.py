"""Where a patch changes each map: the steps of incremental occlusion and their regions.

A patch changes the input inside one rectangle. Following the graph from the input, every changed
tensor gets a *region*: one block size for all positions and a top-left corner per position,
holding every value the patch can change there. A region only grows:

- a window op (Conv, MaxPool, AveragePool) changes the outputs whose window touches the changed
  inputs (its projective field);
- per-pixel ops (ReLU, BatchNorm, bias…) and channel-only ones (LRN: a window across channels at
  one pixel) keep the region;
- ops joining branches (residual Add, channel Concat, Mul…) change the union of their inputs'
  regions, and every input is read over that union.

Block sizes are the largest over all positions, shifted inwards at the borders, so a step runs
as one batched session. The walk stops at the score tensor, at an op it cannot follow (global
pooling, reshapes, dense layers…) or once a region covers most of its map; there the full maps
take over. It can stop only at a *cut*: a tensor through which everything after it depends on
the input (a ResNet block's output, a Concat), so the rest of the network reads one full map.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import onnx

from onnxviz.graph.attributes import node_attr
from onnxviz.graph.geometry import explicit_pads, window_attrs
from onnxviz.graph.model import ModelGraph
from onnxviz.graph.ops import ACTIVATION_OPS, PASS_THROUGH_OPS

WINDOW_OPS = frozenset({"Conv", "MaxPool", "AveragePool"})
ELEMENTWISE_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Mean"})
CHANNEL_ONLY_OPS = frozenset({"LRN"})
PER_PIXEL_OPS = ACTIVATION_OPS | PASS_THROUGH_OPS | ELEMENTWISE_OPS | CHANNEL_ONLY_OPS
PARAMETER_OPS = frozenset({"BatchNormalization", "Clip", "PRelu"})
SWITCH_COVERAGE = 0.5
# Recomputing crops pays only where it saves most of the multiply-adds: a session on small crops does
# several times less work per second than one on full maps. Measured warm, patch 32 stride 16 at
# 224 (benchmarks/README.md): VGG16 (5.2x fewer multiply-adds) 2x faster than full maps; ResNet-50
# (1.9x) 1.7x slower; EfficientNet-Lite0 (1.5x) 3.5x slower. Below this saving, full maps run.
MIN_WORK_SAVING = 3.0


@dataclass
class Region:
    """The block of a (N, C, H, W) map recomputed for each position: one size, a corner each."""

    size: tuple[int, int]
    corners: np.ndarray  # (positions, 2) top-left (row, col) in map coordinates
    full: tuple[int, int]

    @property
    def coverage(self) -> float:
        return self.size[0] * self.size[1] / (self.full[0] * self.full[1])

    def same_as(self, other: Region) -> bool:
        return self.size == other.size and np.array_equal(self.corners, other.corners)


@dataclass
class Window:
    """A window op's geometry; its padding moves into the cached map the crops are cut from."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    begins: tuple[int, int]
    pad_value: float
    scale: np.ndarray | None = None  # AveragePool excluding pads: full-kernel mean → true mean

    def span(self, outputs: int, axis: int) -> int:
        """Input length read by ``outputs`` consecutive outputs along ``axis``."""
        return (outputs - 1) * self.strides[axis] + (self.kernel[axis] - 1) * self.dilations[axis] + 1


@dataclass
class Step:
    """Ops run as one session on crops: a window op or a per-pixel/joining op, then the per-pixel
    ops after it and any join that reads its output over the same region (a residual block's last
    conv and its Add). ``inputs`` are the changed tensors it reads (the others are constants): a
    window op reads the first through its window, every other input is read over ``region``."""

    nodes: list[onnx.NodeProto]
    inputs: list[str]
    output: str
    region: Region
    window: Window | None = None


@dataclass
class Plan:
    """The steps up to ``switch``, the cut where full maps take over (the score tensor when the
    whole way runs on crops)."""

    steps: list[Step]
    switch: str


def plan_steps(
    graph: ModelGraph, score: str, shapes: dict[str, tuple[int, ...]], patch: int, corners: list[tuple[int, int]]
) -> Plan:
    """Follow the changed regions from the input towards ``score``; no steps when none applies."""
    needed = graph.ancestors([score])
    nodes = [n for n in graph.nodes if n.name in needed]
    uses = Counter(t for n in nodes for t in set(n.input) if t)
    full = tuple(shapes[graph.input_name][2:])
    regions = {graph.input_name: Region((patch, patch), np.asarray(corners, np.int64).reshape(-1, 2), full)}
    steps: list[Step] = []
    cut = Plan([], graph.input_name)
    done: set[str] = set()
    for node in nodes:
        if node.name in done or not any(t in regions for t in node.input):
            continue
        step = _first_op(graph, node, regions, shapes)
        if step is None:
            break
        _absorb_followers(graph, step, needed, score, shapes)
        while _absorb_join(graph, step, regions, needed, score, shapes):
            _absorb_followers(graph, step, needed, score, shapes)
        for member in step.nodes:
            done.add(member.name)
            uses.subtract(set(member.input))
        regions[step.output] = step.region
        steps.append(step)
        live = [t for t in regions if uses[t] > 0]
        if step.output == score and not live:
            return Plan(steps, score)
        if live == [step.output]:
            cut = Plan(list(steps), step.output)
            if step.region.coverage >= SWITCH_COVERAGE:
                break
    return cut


def _first_op(
    graph: ModelGraph, node: onnx.NodeProto, regions: dict[str, Region], shapes: dict[str, tuple[int, ...]]
) -> Step | None:
    """The step that ``node`` starts, or None where the walk cannot follow it."""
    outputs = [o for o in node.output if o]
    if len(outputs) != 1 or outputs[0] != node.output[0] or len(shapes.get(outputs[0], ())) != 4:
        return None
    output = outputs[0]
    signals = [t for t in node.input if t in graph.signal]
    if not signals or any(t not in regions or len(shapes.get(t, ())) != 4 for t in signals):
        return None
    if node.op_type in WINDOW_OPS:
        window = _window(graph, node, shapes)
        if window is None or signals != [node.input[0]]:
            return None
        region = _window_region(regions[node.input[0]], window, tuple(shapes[output][2:]))
        return Step([node], [node.input[0]], output, region, window)
    if not _joins_per_pixel(graph, node, signals, shapes):
        return None
    inputs = list(dict.fromkeys(signals))
    return Step([node], inputs, output, _union([regions[t] for t in inputs]))


def _window(graph: ModelGraph, node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]]) -> Window | None:
    """The geometry of a Conv or pool the crops can run, or None (weights computed from data, an
    AveragePool whose ceil mode adds windows). MaxPool's overhanging windows read the -inf padding
    the cached map gets at its end, which leaves their maxima as they were."""
    if node.op_type == "Conv":
        if any(t and t not in graph.constants for t in node.input[1:]):
            return None
        kernel = tuple(int(k) for k in (node_attr(node, "kernel_shape") or graph.constants[node.input[1]].shape[2:]))
    else:
        kernel = tuple(int(k) for k in node_attr(node, "kernel_shape"))
    if len(kernel) != 2:
        return None
    strides, dilations = window_attrs(node, kernel)
    in_size = tuple(shapes[node.input[0]][2:])
    begins, ends = explicit_pads(node, in_size, kernel, strides, dilations)
    if node.op_type == "AveragePool" and int(node_attr(node, "ceil_mode", 0)):
        # A window overhanging the end is averaged over what it covers: only where none does.
        floor = [
            (n + b + e - (k - 1) * d - 1) // s + 1
            for n, b, e, k, d, s in zip(in_size, begins, ends, kernel, dilations, strides, strict=True)
        ]
        if floor != list(shapes[node.output[0]][2:]):
            return None
    window = Window(
        kernel, tuple(strides), tuple(dilations), tuple(begins), -np.inf if node.op_type == "MaxPool" else 0.0
    )
    if node.op_type == "AveragePool" and not int(node_attr(node, "count_include_pad", 0)) and any(begins + ends):
        window.scale = _mean_correction(window, in_size, tuple(shapes[node.output[0]][2:]))
    return window


def _mean_correction(window: Window, in_size: tuple[int, ...], out_size: tuple[int, ...]) -> np.ndarray:
    """Per output pixel: kernel size / inputs inside the map. The crops are padded with zeros and
    averaged over the whole kernel; this factor turns that into the mean over real inputs only."""
    counts = []
    for axis in range(2):
        k, s, d, b = window.kernel[axis], window.strides[axis], window.dilations[axis], window.begins[axis]
        taps = np.arange(out_size[axis])[:, None] * s - b + np.arange(k)[None] * d
        counts.append(((taps >= 0) & (taps < in_size[axis])).sum(axis=1))
    inside = counts[0][:, None] * counts[1][None, :]
    return (math.prod(window.kernel) / np.maximum(inside, 1)).astype(np.float32)


def _window_region(previous: Region, window: Window, out_size: tuple[int, int]) -> Region:
    """Outputs whose window touches the previous region: the projective field, one size for all."""
    bounds = []
    for axis in range(2):
        k, s, d, b = window.kernel[axis], window.strides[axis], window.dilations[axis], window.begins[axis]
        first = previous.corners[:, axis]
        lo = np.maximum(0, -((-(first + b - (k - 1) * d)) // s))
        hi = np.minimum(out_size[axis] - 1, (first + previous.size[axis] - 1 + b) // s)
        bounds.append((lo, hi))
    return _placed(bounds, out_size)


def _union(regions: list[Region]) -> Region:
    """The block holding every input's region: where a join changes its output."""
    bounds = []
    for axis in range(2):
        lo = np.min([r.corners[:, axis] for r in regions], axis=0)
        hi = np.max([r.corners[:, axis] + r.size[axis] - 1 for r in regions], axis=0)
        bounds.append((lo, hi))
    return _placed(bounds, regions[0].full)


def _placed(bounds: list[tuple[np.ndarray, np.ndarray]], full: tuple[int, int]) -> Region:
    """One block size for all positions (the largest), moved inwards where it would overhang."""
    size = tuple(int((hi - lo + 1).max()) for lo, hi in bounds)
    corners = np.stack([np.minimum(lo, full[a] - size[a]) for a, (lo, _) in enumerate(bounds)], axis=1)
    return Region(size, corners.astype(np.int64), tuple(full))


def _joins_per_pixel(
    graph: ModelGraph, node: onnx.NodeProto, signals: list[str], shapes: dict[str, tuple[int, ...]]
) -> bool:
    """Whether every output pixel depends only on the same pixel of the inputs: per-pixel ops,
    joins of same-sized maps, channel Concat; constants only per channel."""
    out_shape = shapes[node.output[0]]
    if node.op_type == "Concat":
        if int(node_attr(node, "axis", 0)) not in (1, -3) or len(signals) != len(node.input):
            return False
    elif node.op_type not in PER_PIXEL_OPS:
        return False
    if any(tuple(shapes[t][2:]) != tuple(out_shape[2:]) for t in signals):
        return False
    if node.op_type in ELEMENTWISE_OPS and any(tuple(shapes[t]) != tuple(out_shape) for t in signals):
        return False
    for tensor in node.input:
        if not tensor or tensor in graph.signal:
            continue
        value = graph.constants.get(tensor)
        if value is None:
            return False
        if node.op_type not in PARAMETER_OPS and value.ndim >= 3 and math.prod(value.shape[-2:]) > 1:
            return False
    return True


def _absorb_followers(
    graph: ModelGraph, step: Step, needed: set[str], score: str, shapes: dict[str, tuple[int, ...]]
) -> None:
    """Append the per-pixel ops that alone read the step's output: they run in its session."""
    while step.output != score:
        users = [n for n in graph.consumers.get(step.output, []) if n.name in needed]
        if len(users) != 1 or users[0].op_type == "Concat" or len(users[0].output) != 1:
            return
        follower = users[0]
        signals = [t for t in follower.input if t in graph.signal]
        if signals != [step.output] or len(shapes.get(follower.output[0], ())) != 4:
            return
        if not _joins_per_pixel(graph, follower, signals, shapes):
            return
        step.nodes.append(follower)
        step.output = follower.output[0]


def _absorb_join(
    graph: ModelGraph,
    step: Step,
    regions: dict[str, Region],
    needed: set[str],
    score: str,
    shapes: dict[str, tuple[int, ...]],
) -> bool:
    """Append the join that alone reads the step's output when it changes no more than the step's
    region: one session and one copy fewer per residual block. Returns whether it did."""
    users = [n for n in graph.consumers.get(step.output, []) if n.name in needed]
    if step.output == score or len(users) != 1 or len([o for o in users[0].output if o]) != 1:
        return False
    join = users[0]
    signals = [t for t in join.input if t in graph.signal]
    others = [t for t in dict.fromkeys(signals) if t != step.output]
    if signals.count(step.output) != 1 or not others or any(t not in regions or t in step.inputs for t in others):
        return False
    if len(shapes.get(join.output[0], ())) != 4 or not _joins_per_pixel(graph, join, signals, shapes):
        return False
    if not _union([step.region] + [regions[t] for t in others]).same_as(step.region):
        return False
    step.nodes.append(join)
    step.inputs.extend(others)
    step.output = join.output[0]
    return True


def work_saving(graph: ModelGraph, plan: Plan, score: str, shapes: dict[str, tuple[int, ...]]) -> float:
    """Multiply-adds of a full forward to ``score`` over those of the plan (crops up to the
    switch, full maps after), counting convolutions and dense layers, which carry the work."""
    needed = graph.ancestors([score])
    on_crops = {node.name: step.region for step in plan.steps for node in step.nodes}
    full = cropped = 0.0
    for node in graph.nodes:
        if node.name not in needed or node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        out = shapes.get(node.output[0])
        weights = graph.constants.get(node.input[1]) if len(node.input) > 1 else None
        if out is None or weights is None:
            continue
        per_output = float(np.prod(weights.shape[1:])) if node.op_type == "Conv" else float(weights.shape[0])
        macs = float(np.prod(out[1:])) * per_output
        full += macs
        region = on_crops.get(node.name)
        cropped += macs * (region.coverage if region is not None else 1.0)
    return full / cropped if cropped else 1.0
