"""Which layers a cam reads: the default one, the named ones checked, and each layer's layout.

A cam needs a 4-D layer (a batch of C maps of h × w) on the path to the target. The default is
the last such tensor with more than one position, other than the target's own tensor, that every
branch's last map comes from: the last conv block of a classifier (a 1 × 1 map after global
pooling says nothing about where), the last map before a segmenter's output, and for a detector
whose scales end in separate head branches (ultralytics' P3/P4/P5), the neck's map all three scales
are computed from — not one scale's branch, whose map would be empty for another scale's box. A layer
of an NHWC graph (tf2onnx keeps the input's NHWC between its transposes) is read as NCHW.
"""

from __future__ import annotations

from dataclasses import dataclass

from onnxviz.errors import UsageError
from onnxviz.graph.attributes import node_attr
from onnxviz.graph.model import ModelGraph

TO_NCHW = (0, 3, 1, 2)
TO_NHWC = (0, 2, 3, 1)
LAYERS_HINT = "`onnxviz layers MODEL` lists every layer with its shape."


@dataclass(frozen=True)
class CamLayer:
    """A layer as a cam reads it: its name as reported, its tensor, and whether it is NHWC."""

    name: str
    tensor: str
    nhwc: bool


def nhwc_tensors(graph: ModelGraph) -> set[str]:
    """The signal tensors laid out NHWC: those of an NHWC input, each Transpose to NCHW (0,3,1,2)
    turning them NCHW and each to NHWC (0,2,3,1) back; every other op keeps its input's layout."""
    nhwc = {graph.input_name} if graph.layout == "nhwc" else set()
    for node in graph.nodes:
        signal = [t for t in node.input if t in graph.signal]
        if not signal:
            continue
        if node.op_type == "Transpose":
            perm = tuple(node_attr(node, "perm", ()))
            laid_out = perm == TO_NHWC or (signal[0] in nhwc and perm not in (TO_NCHW, TO_NHWC))
        else:
            laid_out = signal[0] in nhwc
        if laid_out:
            nhwc.update(node.output)
    return nhwc


def on_the_path(graph: ModelGraph, target: str) -> list[str]:
    """The signal tensors the target is computed from, in topological order (the target's own last)."""
    needed = graph.ancestors([target])
    return [t for node in graph.nodes if node.name in needed for t in node.output if t in graph.signal]


def spatial(shape: tuple[int, ...], nhwc: bool) -> tuple[int, int]:
    """(h, w) of a 4-D shape, read as NCHW."""
    return (shape[1], shape[2]) if nhwc else (shape[2], shape[3])


def branch_ends(graph: ModelGraph, path: list[str], shapes: dict) -> list[str]:
    """The 4-D tensors on ``path`` that leave 4-D: read by a node on the path whose output is not
    4-D (a head's reshape to predictions, a classifier's flatten), or the 4-D target itself."""
    on_path = set(path)
    ends = [
        tensor
        for tensor in path
        if len(shapes.get(tensor, ())) == 4
        and any(
            len(shapes.get(out, ())) != 4
            for node in graph.consumers.get(tensor, [])
            for out in node.output
            if out in on_path
        )
    ]
    return ends or path[-1:]


def default_layer(graph: ModelGraph, target: str, input_shape: tuple[int, ...]) -> CamLayer:
    """The last 4-D tensor with more than one position on the path to ``target``, not ``target``,
    from which every branch's end (``branch_ends``) is computed."""
    shapes, nhwc = graph.shapes(input_shape), nhwc_tensors(graph)
    path = on_the_path(graph, target)
    upstream = {end: graph.ancestors([end]) for end in branch_ends(graph, path, shapes)}
    for tensor in reversed(path):
        shape = shapes.get(tensor, ())
        if (
            tensor != target
            and len(shape) == 4
            and spatial(shape, tensor in nhwc) != (1, 1)
            and _feeds_all(graph, tensor, upstream)
        ):
            alias = next((layer.alias for layer in graph.layers if layer.tensor == tensor), tensor)
            return CamLayer(alias, tensor, tensor in nhwc)
    raise UsageError(
        f"No 4-D layer with more than one position lies on the path to '{target}', so there is no map to draw.",
        "A cam needs a conv layer before the target: name one with --layer. " + LAYERS_HINT,
    )


def _feeds_all(graph: ModelGraph, tensor: str, upstream: dict[str, set[str]]) -> bool:
    """Whether every end is ``tensor`` or computed from it (``upstream``: each end's ancestor nodes)."""
    producer = graph.producer.get(tensor)
    return producer is None or all(end == tensor or producer.name in nodes for end, nodes in upstream.items())


def named_layer(graph: ModelGraph, name: str, target: str, input_shape: tuple[int, ...]) -> CamLayer:
    """Layer ``name`` (``--node``'s spellings), checked to be 4-D and on the path to ``target``."""
    tensor = graph.resolve(name).tensor
    if tensor not in on_the_path(graph, target):
        raise UsageError(
            f"The layer '{name}' is not on the path to the target '{target}': the target's score does "
            "not depend on it.",
            "Pick a layer the target is computed from. " + LAYERS_HINT,
        )
    shape = graph.shapes(input_shape).get(tensor, ())
    if len(shape) != 4:
        raise UsageError(
            f"The layer '{name}' has shape {list(shape)}: a cam needs a 4-D layer (a batch of feature maps).",
            "Pick a conv or pool layer. " + LAYERS_HINT,
        )
    return CamLayer(name, tensor, tensor in nhwc_tensors(graph))
