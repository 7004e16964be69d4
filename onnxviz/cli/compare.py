"""``compare``: does a converted model still see what the original sees?"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from onnxviz import api
from onnxviz.analyses.compare.analysis import CompareOptions
from onnxviz.analyses.compare.measures import Comparison
from onnxviz.cli.application import command
from onnxviz.cli.options import ImagesArg, JsonOpt, ModelOptions
from onnxviz.cli.output import err, note, out, print_json, progress
from onnxviz.errors import UsageError


@command
def compare(
    model_a: Annotated[Path, typer.Argument(help="The original ONNX model.", show_default=False)],
    model_b: Annotated[Path, typer.Argument(help="Its conversion (exporter, fp16, int8…).", show_default=False)],
    images: ImagesArg,
    options: ModelOptions,
    settings: CompareOptions,
    pairs: Annotated[
        list[str] | None, typer.Option("--map", help="A's layer = B's layer (node, tensor or alias), repeatable.")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Does a converted model still see what the original sees? Exit 1 when a measure is beyond tolerance."""
    loaded_a, loaded_b = options.load(model_a), options.load(model_b)
    note(loaded_a.device.note)  # the load notes of both models are in the result
    settings = replace(settings, mapping=layer_mapping(pairs))
    with progress("compare") as tracker:
        result = api.compare(loaded_a, loaded_b, images, options=settings, progress=tracker.describe)
    if json_output:
        print_json(result.summary())
    else:
        print_comparison(result, f"{model_b.name} against {model_a.name}")
    if not result.ok:
        raise typer.Exit(1)


def layer_mapping(pairs: list[str] | None) -> dict[str, str]:
    """``--map A=B[,A=B]`` (repeatable) as ``CompareOptions.mapping``: A's layer to B's."""
    mapping = {}
    for text in (t for texts in pairs or [] for t in texts.split(",") if t.strip()):
        name_a, _, name_b = text.partition("=")
        if not name_a.strip() or not name_b.strip():
            raise UsageError(f"--map takes A=B (A's layer, B's layer); got '{text}'.")
        mapping[name_a.strip()] = name_b.strip()
    return mapping


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
