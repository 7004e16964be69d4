"""Where an inverse can be split into branches that run only when their seed is not zero.

A detector's heads meet in one Concat along the anchor axis (ultralytics' P3/P4/P5 branches,
80×80 + 40×40 + 20×20 predictions) and everything after it is per-anchor decoding. A box or
detection target seeds one anchor, so the gradient leaving that Concat is zero on every branch but
one; the full inverse still pushes zeros back through the other branches' convolutions. Split at
the Concat, the inverse is a short first stage (target → the Concat's output) and one second stage
per branch (that Concat input → the source), and a run skips the branches whose slice of the
gradient is all zeros: the same sum, without the zero terms.

The split is taken only where it is exact and worth it: every path from the source to the target
runs through the Concat (no branch goes around it), at least two of its inputs carry the source's
signal, the largest branch holds fewer nodes than the whole path, and the nodes between the
Concat and the target act element by element or move elements around (``ALONG``), so a seed on
a few elements of the target stays on a few branches. After a convolution, a pooling or a dense
layer every branch would carry signal (a classifier's logits seed all of an Inception block's
branches), and splitting would only add runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from onnxviz.graph.attributes import node_attr
from onnxviz.graph.model import ModelGraph
from onnxviz.inverse.builder import downstream_of, signal_path

# Ops between the Concat and the target that keep a seed's elements apart: elementwise maths and
# moves. Softmax mixes along one axis only (a detector's box bins, not its anchors).
ALONG = frozenset(
    {
        *("Abs", "Add", "Cast", "Clip", "Div", "Exp", "HardSigmoid", "HardSwish", "Identity", "LeakyRelu"),
        *("Log", "Max", "Min", "Mul", "Neg", "Pow", "Relu", "Sigmoid", "Softplus", "Sqrt", "Sub", "Tanh"),
        *("Concat", "Reshape", "Slice", "Split", "Squeeze", "Transpose", "Unsqueeze", "Softmax"),
    }
)


@dataclass(frozen=True)
class Branch:
    """One Concat input carrying the source's signal: its tensor and its slice [start, stop) of the
    Concat's axis."""

    tensor: str
    start: int
    stop: int


@dataclass(frozen=True)
class SplitPoint:
    """The Concat the inverse is split at: its output, its axis, the branches the source feeds."""

    tensor: str
    axis: int
    branches: tuple[Branch, ...]


def find_split(graph: ModelGraph, target: str, source: str | None, input_shape: tuple[int, ...]) -> SplitPoint | None:
    """The Concat on the path from ``source`` (the input by default) to ``target`` whose branches
    split the path best, or None where no Concat splits it exactly and usefully."""
    start = source or graph.input_name
    path = signal_path(graph, target, source)
    if len(path) < 2:
        return None
    concats = [node for node in path if node.op_type == "Concat"]
    if not concats:
        return None  # and the shapes are not asked for: a graph opened from the cache keeps its weights unread
    fed = downstream_of(graph, start)
    best: tuple[int, SplitPoint] | None = None
    for node in concats:
        if not _all_paths_through(graph, node.output[0], path, fed):
            continue
        if any(n.op_type not in ALONG for n in signal_path(graph, target, node.output[0])):
            continue
        point = _point(node, fed, graph.shapes(input_shape))
        if point is None or len(point.branches) < 2:
            continue
        largest = max(len(signal_path(graph, b.tensor, source)) for b in point.branches if b.tensor != start)
        if largest < len(path) and (best is None or largest < best[0]):
            best = (largest, point)
    return None if best is None else best[1]


def _all_paths_through(graph: ModelGraph, tensor: str, path: list[onnx.NodeProto], fed: set[str]) -> bool:
    """Whether no node after ``tensor`` on the path reads a signal of the source that ``tensor``
    does not carry: a skip around the Concat would otherwise be lost to the split."""
    after = downstream_of(graph, tensor)
    for node in path:
        if tensor in node.output or not any(o in after for o in node.output):
            continue
        if any(t in fed and t not in after for t in (node.input[i] for i in graph.signal_inputs(node))):
            return False
    return True


def _point(node: onnx.NodeProto, fed: set[str], shapes: dict[str, tuple[int, ...]]) -> SplitPoint | None:
    """The Concat's branches with their slices, or None where an input's shape is not known."""
    rank = len(shapes.get(node.output[0], ()))
    if rank == 0 or any(t not in shapes for t in node.input):
        return None
    axis = int(node_attr(node, "axis", 0)) % rank
    if axis == 0:
        return None  # the batch axis: the paired seeds live on it
    branches, offset = [], 0
    for tensor in node.input:
        size = shapes[tensor][axis]
        if tensor in fed:
            branches.append(Branch(tensor, offset, offset + size))
        offset += size
    return SplitPoint(node.output[0], axis, tuple(branches))
