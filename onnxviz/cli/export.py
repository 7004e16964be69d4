"""``export``: the explainer as one ONNX model, written by hand to say what the file holds and to
exit 1 when ``--check`` finds it differs from onnxviz's own result."""

from __future__ import annotations

import typer

from onnxviz.analyses.export.analysis import CHECK_TOLERANCE, ExportOptions
from onnxviz.cli.application import command
from onnxviz.cli.options import JsonOpt, ModelArg, ModelOptions
from onnxviz.cli.output import err, load_notes, out, print_json


@command
def export(model: ModelArg, options: ModelOptions, settings: ExportOptions, json_output: JsonOpt = False) -> None:
    """Write one standard ONNX model that computes the model's outputs, the target's score and the
    method's map (as cam --raw / attribute --raw), to run with any ONNX runtime."""
    loaded = options.load(model)
    load_notes(loaded)
    result = loaded.export(options=settings)
    if json_output:
        print_json(result.summary())
    else:
        where = f" at {result.layer}" if result.layer else ""
        out.print(f"{result.method}{where}: {result.path}", highlight=False, markup=False)
        out.print(f"inputs: {', '.join(result.inputs)}; outputs: {', '.join(result.outputs)}", markup=False)
        size = f"{result.size / 1e6:.2f} MB"
        if result.model_size:
            size += f" ({result.size / result.model_size:.3f}x the model's {result.model_size / 1e6:.2f} MB)"
        out.print(f"opset {result.opset}, {size}", highlight=False, markup=False)
    checked = result.checked
    if checked is None:
        return
    verdict = (
        f"check on {checked.image}: attribution differs by {checked.attribution:.2e}, "
        f"target score by {checked.score:.2e} (relative; tolerance {CHECK_TOLERANCE:g})"
    )
    if not checked.ok:
        err.print(f"The explainer differs from onnxviz's own result: {verdict}.", highlight=False, markup=False)
        raise typer.Exit(1)
    if not json_output:
        out.print(verdict, highlight=False, markup=False)
