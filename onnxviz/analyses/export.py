"""Graph export: the forward graph (switches and the tensors the inverse reads as outputs) and
the generated inverse graph, as .onnx files to inspect or run elsewhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import onnx

from onnxviz.analyses.project import LRN_HELP, NODE_HELP, RULE_HELP
from onnxviz.core.loaded import LRN_MODES, LoadedModel
from onnxviz.core.options import Options, option
from onnxviz.inverse import MODES, InverseSpec, build_inverse
from onnxviz.inverse.context import FORMS
from onnxviz.passes.rewrite import forward_model
from onnxviz.render.outputs import write_bytes
from onnxviz.runtime.projector import seeded_tensor


@dataclass(frozen=True)
class InvertOptions(Options):
    """The layer whose inverse is written, where, and how it is built."""

    node: str = field(metadata=option(NODE_HELP, aliases=("-n",)))
    out_dir: Path = field(metadata=option("Folder for forward.onnx and inverse.onnx."))
    rule: str = field(default="deconvnet", metadata=option(RULE_HELP, choices=MODES))
    lrn: str = field(default="exact", metadata=option(LRN_HELP, choices=LRN_MODES))
    form: str | None = field(
        default=None, metadata=option("cpu | portable (CUDA-safe ops); default: the device's.", choices=FORMS)
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
    forward = forward_model(model.graph, outputs, inverse.switches, model.graph.shapes(shape))
    out = Path(options.out_dir)
    for graph in (forward, inverse.model):
        onnx.checker.check_model(graph)
    return (
        write_bytes(out / "forward.onnx", forward.SerializeToString()),
        write_bytes(out / "inverse.onnx", inverse.model.SerializeToString()),
    )
