"""Receptive fields: which input pixels each position of a layer can see.

Per spatial axis a field is (size r, jump j, centre c of the first output position, in input
pixels). The input is (1, 1, 0). A window op with kernel k, stride s, dilation d and leading pad
p gives, with the effective kernel k' = d·(k−1) + 1,

    j' = j·s        r' = r + (k' − 1)·j        c' = c + ((k' − 1)/2 − p)·j

Per-pixel ops keep the field; where branches meet (Add, Concat, Sum) the field is the union of
the inputs' fields; global pooling and dense layers see the whole input. Used to crop the image
patch and the projection of a top-k winner, and shown by ``onnxviz layers``.
"""

from __future__ import annotations

from dataclasses import dataclass

from onnxviz.graph.attributes import node_attr
from onnxviz.graph.geometry import explicit_pads, window_attrs
from onnxviz.graph.model import ModelGraph
from onnxviz.graph.ops import WINDOW_OPS

GLOBAL_OPS = frozenset(
    {
        "GlobalAveragePool",
        "GlobalMaxPool",
        "Gemm",
        "MatMul",
        "Flatten",
        "Reshape",
        "ReduceMean",
        "ReduceSum",
        "ReduceMax",
        "Softmax",
        "LogSoftmax",
    }
)


@dataclass(frozen=True)
class Field:
    """Receptive field along (H, W): size, jump and centre of position 0, in input pixels."""

    size: tuple[float, float]
    jump: tuple[float, float]
    centre: tuple[float, float]
    whole_input: bool = False

    def box(self, row: int, col: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) in input pixels of position (row, col), clipped to the image."""
        if self.whole_input:
            return 0, 0, height, width
        cy = self.centre[0] + row * self.jump[0]
        cx = self.centre[1] + col * self.jump[1]
        top, left = round(cy - self.size[0] / 2), round(cx - self.size[1] / 2)
        bottom, right = top + int(self.size[0]), left + int(self.size[1])
        return max(0, top), max(0, left), min(height, bottom), min(width, right)


INPUT_FIELD = Field((1.0, 1.0), (1.0, 1.0), (0.5, 0.5))


def receptive_fields(graph: ModelGraph, shapes: dict[str, tuple[int, ...]]) -> dict[str, Field]:
    """The field of every signal tensor (NCHW tensors; NHWC transposes keep the field)."""
    fields: dict[str, Field] = {graph.input_name: INPUT_FIELD}
    for node in graph.nodes:
        inputs = [fields[t] for t in node.input if t in fields]
        if not inputs:
            continue
        if node.op_type in WINDOW_OPS and node.input[0] in fields and len(shapes.get(node.input[0], ())) == 4:
            field = _window(graph, node, fields[node.input[0]], shapes)
        elif node.op_type in GLOBAL_OPS or any(f.whole_input for f in inputs):
            field = Field(inputs[0].size, inputs[0].jump, inputs[0].centre, whole_input=True)
        else:
            field = _union(inputs)
        for output in node.output:
            if output in graph.signal:
                fields[output] = field
    return fields


def _window(graph: ModelGraph, node, field: Field, shapes) -> Field:
    weights = graph.constants.get(node.input[1]) if len(node.input) > 1 else None
    kernel = tuple(node_attr(node, "kernel_shape") or (weights.shape[2:] if weights is not None else (1, 1)))
    strides, dilations = window_attrs(node, kernel)
    begins, _ = explicit_pads(node, shapes[node.input[0]][2:], kernel, strides, dilations)
    size, jump, centre = [], [], []
    for axis in range(2):
        effective = dilations[axis] * (kernel[axis] - 1) + 1
        j = field.jump[axis]
        size.append(field.size[axis] + (effective - 1) * j)
        jump.append(j * strides[axis])
        centre.append(field.centre[axis] + ((effective - 1) / 2 - begins[axis]) * j)
    return Field(tuple(size), tuple(jump), tuple(centre))


def _union(fields: list[Field]) -> Field:
    if len(fields) == 1:
        return fields[0]
    size, centre = [], []
    for axis in range(2):
        low = min(f.centre[axis] - f.size[axis] / 2 for f in fields)
        high = max(f.centre[axis] + f.size[axis] / 2 for f in fields)
        size.append(high - low)
        centre.append((low + high) / 2)
    return Field(tuple(size), fields[0].jump, tuple(centre))
