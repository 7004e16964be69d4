"""The layer table: every alias with its node, op, output shape and receptive field, and why a
layer cannot be projected where it cannot (the first refusal on its path: an operator without an
inverse rule, with the registry's stated reason, or a node its rule refuses).

A ``LayerTable`` is a list of ``LayerInfo`` rows (what ``Model.layers()`` always returned) that
also knows the model it describes, so its ``summary()`` is exactly ``onnxviz layers --json``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxviz.core.loaded import LoadedModel
from onnxviz.core.options import Options
from onnxviz.core.result import Result
from onnxviz.graph.receptive import receptive_fields
from onnxviz.inverse import InverseSpec, unsupported_reason
from onnxviz.render import pictures as render


@dataclass(frozen=True)
class LayerInfo:
    alias: str
    node: str
    op_type: str
    tensor: str
    shape: tuple[int, ...]
    receptive_field: tuple[int, int] | None = None  # (H, W) input pixels one position sees
    jump: tuple[int, int] | None = None  # input pixels between neighbouring positions
    unsupported: str | None = None  # why no inverse reaches the input from here; None: it projects

    def summary(self) -> dict:
        return {
            "alias": self.alias,
            "node": self.node,
            "op": self.op_type,
            "tensor": self.tensor,
            "shape": list(self.shape),
            "receptive_field": list(self.receptive_field) if self.receptive_field else None,
            "jump": list(self.jump) if self.jump else None,
            "unsupported": self.unsupported,
        }


class LayerTable(list, Result):
    """The rows of ``layers()``, and the model's input they were computed for."""

    def __init__(
        self, rows: list[LayerInfo], model: str | None, input_name: str, input_shape: tuple[int, ...], layout: str
    ) -> None:
        super().__init__(rows)
        self.model = model
        self.input_name = input_name
        self.input_shape = input_shape
        self.layout = layout

    def summary(self) -> dict:
        return {
            "model": self.model,
            "input": self.input_name,
            "input_shape": list(self.input_shape),
            "layout": self.layout,
            "layers": [row.summary() for row in self],
        }

    def figure(self) -> np.ndarray:
        """The table as text lines: alias, op, shape and receptive field per layer."""
        lines = [
            f"{r.alias:<10} {r.op_type:<18} {'x'.join(map(str, r.shape)):<16} "
            f"{'x'.join(map(str, r.receptive_field)) if r.receptive_field else 'whole'}"
            for r in self
        ]
        return render.text_block(lines, f"{self.input_name} {list(self.input_shape)} ({self.layout.upper()})")


@dataclass(frozen=True)
class LayersOptions(Options):
    """The layer table takes no options: every layer is listed."""


def layers(model: LoadedModel, options: LayersOptions | None = None) -> LayerTable:
    """Every alias of ``model`` with its node, op, output shape and receptive field."""
    shape = model.input_shape()
    shapes = model.graph.shapes(shape)
    fields = receptive_fields(model.graph, shapes)
    rows = []
    for la in model.graph.layers:
        field = fields.get(la.tensor)
        spatial = field is not None and not field.whole_input
        rows.append(
            LayerInfo(
                la.alias,
                la.node,
                la.op_type,
                la.tensor,
                tuple(shapes.get(la.tensor, ())),
                tuple(int(v) for v in field.size) if spatial else None,
                tuple(int(v) for v in field.jump) if spatial else None,
                unsupported_reason(model.graph, InverseSpec(la.tensor, shape)),
            )
        )
    path = model.graph.path
    return LayerTable(rows, str(path) if path is not None else None, model.graph.input_name, shape, model.layout)
