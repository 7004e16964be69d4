"""``compare``: does a converted model still see what the original sees?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from onnxviz import api
from onnxviz.analyses.compare.measures import Comparison
from onnxviz.analyses.compare.pairing import layer_request
from onnxviz.cli.application import command
from onnxviz.cli.options import ImagesArg, JsonOpt, ModelOptions, RuleOpt
from onnxviz.cli.output import err, note, out, print_json, progress


@command
def compare(
    model_a: Annotated[Path, typer.Argument(help="The original ONNX model.", show_default=False)],
    model_b: Annotated[Path, typer.Argument(help="Its conversion (exporter, fp16, int8…).", show_default=False)],
    images: ImagesArg,
    options: ModelOptions,
    layers: Annotated[
        list[str] | None, typer.Option("--layers", help="Layers named alike in both: conv2,pool3 or repeated.")
    ] = None,
    pairs: Annotated[
        list[str] | None, typer.Option("--map", help="A's layer = B's layer (node, tensor or alias), repeatable.")
    ] = None,
    rule: RuleOpt = "deconvnet",
    top: Annotated[int, typer.Option("--top", help="Channels projected per layer (0: none).")] = 4,
    occlusion: Annotated[bool, typer.Option("--occlusion", help="Also correlate the occlusion maps.")] = False,
    patch: Annotated[int | None, typer.Option("--patch", help="Occlusion patch (default: side/4, ≤ 32).")] = None,
    stride: Annotated[int | None, typer.Option("--stride", help="Occlusion stride (default: patch/2).")] = None,
    tolerance: Annotated[float, typer.Option("--tolerance", help="Factor on every default tolerance.")] = 1.0,
    precision: Annotated[
        str | None, typer.Option("--precision", help="fp32 | fp16 | int8 tolerances (default: from the models).")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Does a converted model still see what the original sees? Exit 1 when a measure is beyond tolerance."""
    loaded_a, loaded_b = options.load(model_a), options.load(model_b)
    note(loaded_a.device.note)  # the load notes of both models are in the result
    chosen, mapping = layer_request(layers, pairs)
    settings = dict(layers=chosen, mapping=mapping, rule=rule, top=top, occlusion=occlusion, tolerance=tolerance)
    with progress("compare") as tracker:
        result = api.compare(
            loaded_a,
            loaded_b,
            images,
            precision=precision,
            patch=patch,
            stride=stride,
            progress=tracker.describe,
            **settings,
        )
    if json_output:
        print_json(result.summary())
    else:
        print_comparison(result, f"{model_b.name} against {model_a.name}")
    if not result.ok:
        raise typer.Exit(1)


def print_comparison(result: Comparison, title: str) -> None:
    count = len(result.images)
    table = Table(title=f"{title} ({count} image{'s' * (count != 1)}, {result.rule})")
    for column in ("layer", "rel. error", "cosine", "projection cosine", "verdict"):
        table.add_column(column)
    for row in result.rows():
        table.add_row(*(escape(cell) for cell in row[:4]), row[4] if row[4] == "ok" else f"[red]{escape(row[4])}[/red]")
    out.print(table)
    for line in result.messages():
        err.print(f"[dim]{escape(line)}[/dim]", highlight=False)
    out.print(escape(result.verdict()), highlight=False)
