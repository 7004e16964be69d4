"""Commands over many images: ``topk`` (a folder, streamed) and ``report`` (a page for a few)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from onnxviz.analyses.report import ReportOptions
from onnxviz.analyses.topk import TopKOptions
from onnxviz.cli.application import command
from onnxviz.cli.options import ImagesArg, JsonOpt, ModelArg, ModelOptions, ScanOptions
from onnxviz.cli.output import load_notes, out, print_json, progress


@command
def topk(
    model: ModelArg,
    image_dir: Annotated[
        Path, typer.Argument(help="Folder of pictures / .npy inputs (searched recursively).", show_default=False)
    ],
    options: ModelOptions,
    scan: ScanOptions,
    settings: TopKOptions,
    json_output: JsonOpt = False,
) -> None:
    """The k images that activate each feature map most, with projections and patches (the paper's Fig. 2)."""
    out_dir = None if settings.state_dir is None else Path(settings.state_dir)
    settings = replace(settings, project=out_dir is not None, engine=scan.engine_for(options))
    loaded = options.load(model)
    load_notes(loaded)
    with progress("scanning", counted=True, quiet=json_output) as tracker:
        result = loaded.topk(image_dir, options=settings, progress=tracker.count)
    written = result.save(out_dir) if out_dir is not None else []
    if json_output:
        print_json(result.to_json())
        return
    scanned = ", ".join(map(str, result.scan.channels))
    skipped = len(result.scan.skipped)
    out.print(
        f"{result.images} images scanned ({skipped} unreadable, skipped); channels {scanned} of {result.scan.node}"
    )
    for path in written:
        out.print(f"picture: {path}")
    if out_dir is not None:
        out.print(f"index: {out_dir / 'index.html'}")


@command
def report(
    model: ModelArg,
    images: ImagesArg,
    options: ModelOptions,
    settings: ReportOptions,
    out_html: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path("report.html"),
) -> None:
    """One self-contained HTML page: layers, occlusion, projections and activation grids per image."""
    loaded = options.load(model)
    load_notes(loaded)
    with progress("report") as tracker:
        path = loaded.report(images, out=out_html, options=settings, progress=tracker.describe)
    out.print(f"report: {path}")
