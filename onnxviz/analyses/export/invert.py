"""``invert``: the forward graph (switches and the tensors the inverse reads as outputs) and
the generated inverse graph, as .onnx files to inspect or run elsewhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import onnx

from onnxviz.analyses._common import lrn_field, node_field, rule_field
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.options import Options, option
from onnxviz.inverse import InverseSpec, build_inverse
from onnxviz.inverse.context import FORMS
from onnxviz.passes.rewrite import forward_model
from onnxviz.render.outputs import write_bytes
from onnxviz.runtime.projector import seeded_tensor


@dataclass(frozen=True)
class InvertOptions(Options):
    """The layer whose inverse is written, where, and how it is built."""

    node: str = node_field()
    out_dir: Path = field(metadata=option("Folder for forward.onnx and inverse.onnx."))
    rule: str = rule_field()
    lrn: str = lrn_field()
    form: str | None = field(
        default=None,
        metadata=option(
            "cpu | portable (CUDA-safe ops) | standard (no scatter); default: the device's.", choices=FORMS
        ),
    )


def invert(model: LoadedModel, options: InvertOptions) -> tuple[Path, Path]:
    """Write ``forward.onnx`` and ``inverse.onnx`` into ``options.out_dir``."""
    node, rule, lrn, form = options.node, options.rule, options.lrn, options.form
    layer = model.resolve(node)
    tensor = seeded_tensor(model.graph, layer.tensor)
    shape = model.input_shape()
    spec = InverseSpec(tensor, shape, rule=rule, form=form or model.device.form, lrn=lrn)
    inverse = build_inverse(model.graph, spec)
    outputs = [tensor, *(t for t in inverse.forward_tensors if t != tensor)]
    forward = forward_model(model.graph, outputs, inverse.switches, model.graph.shapes(shape), inverse.masks)
    out = Path(options.out_dir)
    for graph in (forward, inverse.model):
        onnx.checker.check_model(graph)
    return (
        write_bytes(out / "forward.onnx", forward.SerializeToString()),
        write_bytes(out / "inverse.onnx", inverse.model.SerializeToString()),
    )
