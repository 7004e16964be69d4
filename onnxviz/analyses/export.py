"""Graph export: the forward graph (switches and the tensors the inverse reads as outputs) and
the generated inverse graph, as .onnx files to inspect or run elsewhere."""

from __future__ import annotations

from pathlib import Path

import onnx

from onnxviz.core.loaded import LRN_MODES, LoadedModel, check_choice
from onnxviz.inverse import MODES, InverseSpec, build_inverse
from onnxviz.inverse.context import FORMS
from onnxviz.passes.rewrite import forward_model
from onnxviz.render.outputs import write_bytes
from onnxviz.runtime.projector import seeded_tensor


def invert(
    model: LoadedModel, node: str, out_dir: str | Path, rule: str = "deconvnet", lrn: str = "exact", form=None
) -> tuple[Path, Path]:
    """Write ``forward.onnx`` and ``inverse.onnx`` into ``out_dir``."""
    check_choice("rule", rule, MODES)
    check_choice("LRN mode", lrn, LRN_MODES)
    if form is not None:
        check_choice("form", form, FORMS)
    layer = model.resolve(node)
    tensor = seeded_tensor(model.graph, layer.tensor)
    shape = model.input_shape()
    spec = InverseSpec(tensor, shape, rule=rule, form=form or model.device.form, lrn=lrn)
    inverse = build_inverse(model.graph, spec)
    outputs = [tensor, *(t for t in inverse.forward_tensors if t != tensor)]
    forward = forward_model(model.graph, outputs, inverse.switches, model.graph.shapes(shape))
    out = Path(out_dir)
    for graph in (forward, inverse.model):
        onnx.checker.check_model(graph)
    return (
        write_bytes(out / "forward.onnx", forward.SerializeToString()),
        write_bytes(out / "inverse.onnx", inverse.model.SerializeToString()),
    )
