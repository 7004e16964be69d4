"""Commands about the model itself: ``layers``, ``check``, ``invert``, ``filters``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from onnxviz.analyses.check import CheckOptions
from onnxviz.analyses.export.invert import InvertOptions
from onnxviz.analyses.grids import GridOptions
from onnxviz.cli.application import command
from onnxviz.cli.options import JsonOpt, ModelArg, ModelOptions
from onnxviz.cli.output import Outputs, err, load_notes, out, print_json, safe_name


@command
def layers(model: ModelArg, options: ModelOptions, json_output: JsonOpt = False) -> None:
    """List every alias (conv1…, relu1…, pool1…, fc1…) with its node, op and output shape."""
    loaded = options.load(model)
    rows = loaded.layers()
    if json_output:
        print_json(rows.summary())
        return
    shape = list(loaded.input_shape())
    table = Table(title=f"{model.name}: input {loaded.graph.input_name} {shape} ({loaded.layout.upper()})")
    refused = any(r.unsupported is not None for r in rows)  # the column only where a layer cannot project
    for column in ("alias", "node", "op", "output tensor", "shape", "field", "jump", *(["projects"] * refused)):
        table.add_column(column)
    reasons: dict[str, list[str]] = {}  # each refusal once, with the layers it stops
    for r in rows:
        field = "×".join(map(str, r.receptive_field)) if r.receptive_field else "whole"
        jump = "×".join(map(str, r.jump)) if r.jump else ""
        cells = [r.alias, r.node, r.op_type, r.tensor, "×".join(map(str, r.shape)), field, jump]
        if r.unsupported is not None:
            reason = r.unsupported.split("\nHint:")[0]
            reasons.setdefault(reason, []).append(r.alias)
        if refused:
            cells.append("yes" if r.unsupported is None else f"[red]no[/red] ({list(reasons).index(reason) + 1})")
        table.add_row(*cells)
    out.print(table)
    for number, (reason, aliases) in enumerate(reasons.items(), start=1):
        out.print(f"({number}) {', '.join(aliases)}: {escape(reason)}")


@command
def check(model: ModelArg, options: ModelOptions, settings: CheckOptions, json_output: JsonOpt = False) -> None:
    """Smoke test: every conv and pool layer must project. Exit 1 if any fails."""
    loaded = options.load(model)
    load_notes(loaded)
    results = loaded.check(options=settings)
    rule = settings.rule
    if json_output:
        print_json(results.summary())
    else:
        table = Table(title=f"onnxviz check {model.name} ({rule})")
        for column in ("alias", "node", "op", "result", "ms"):
            table.add_column(column)
        for r in results:
            verdict = "[green]ok[/green]" if r.ok else f"[red]FAIL[/red] {r.message}"
            table.add_row(r.alias, r.node, r.op_type, verdict, f"{r.seconds * 1000:.0f}")
        out.print(table)
        out.print(f"{sum(r.ok for r in results)}/{len(results)} layers project.")
    if not results:
        err.print("No conv or pool layer found on the image path.")
    if not results.ok:
        raise typer.Exit(1)


@command
def invert(model: ModelArg, options: ModelOptions, settings: InvertOptions) -> None:
    """Write the forward graph (with switches) and the generated inverse graph as .onnx files."""
    forward_path, inverse_path = options.load(model).invert(options=settings)
    out.print(f"forward: {forward_path}\ninverse: {inverse_path}")


@command
def filters(
    model: ModelArg,
    options: ModelOptions,
    settings: GridOptions,
    out_png: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG to write (default: <node>_filters.png).")
    ] = None,
    raw: Annotated[Path | None, typer.Option("--raw", help="Write the float32 weights (O, I, kh, kw) as .npy.")] = None,
) -> None:
    """Grid of a conv layer's filters: RGB for the first layer, one grey tile per input channel deeper."""
    grid = options.load(model).filters(options=settings)
    outputs = Outputs(out_png or Path(f"{safe_name(grid.node)}_filters.png"), raw, json=False)
    outputs.write(grid, grid.weights, default=outputs.picture)
    out.print(f"{grid.node}: {grid.weights.shape[0]} filters of {list(grid.weights.shape[1:])}")
    outputs.print_paths()
