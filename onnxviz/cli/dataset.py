"""Commands over many images: ``topk`` (a folder, streamed) and ``report`` (a page for a few)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from onnxviz.cli.application import command
from onnxviz.cli.options import ImagesArg, JsonOpt, ModelArg, ModelOptions, NodeOpt, ScanOptions, ints, names
from onnxviz.cli.output import load_notes, out, print_json, progress


@command
def topk(
    model: ModelArg,
    image_dir: Annotated[
        Path, typer.Argument(help="Folder of pictures / .npy inputs (searched recursively).", show_default=False)
    ],
    node: NodeOpt,
    options: ModelOptions,
    scan: ScanOptions,
    channels: Annotated[list[str] | None, typer.Option("--channels", help="Channels: 0,5,9 or repeated.")] = None,
    top_channels: Annotated[
        int | None, typer.Option("--top-channels", help="The N channels with the strongest winners (default 8).")
    ] = None,
    k: Annotated[int, typer.Option("--k", help="Winners per channel.")] = 9,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the grids, topk.json, index.html and the resumable scan state."),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted scan in --out.")] = False,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Images per run.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """The k images that activate each feature map most, with projections and patches (the paper's Fig. 2)."""
    engine = scan.engine_for(options)
    loaded = options.load(model)
    load_notes(loaded)
    chosen = ints(channels, "--channels")
    with progress("scanning", counted=True, quiet=json_output) as tracker:
        result = loaded.topk(
            image_dir,
            node,
            channels=chosen,
            top_channels=top_channels,
            k=k,
            state_dir=out_dir,
            resume=resume,
            batch_size=batch_size,
            project=out_dir is not None,
            progress=tracker.count,
            engine=engine,
        )
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
    out_html: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path("report.html"),
    top: Annotated[int, typer.Option("--top", help="Projected channels per layer.")] = 4,
    layers: Annotated[
        list[str] | None,
        typer.Option("--layers", help="Layers to show: conv2,conv5 or repeated (default: every conv)."),
    ] = None,
) -> None:
    """One self-contained HTML page: layers, occlusion, projections and activation grids per image."""
    loaded = options.load(model)
    load_notes(loaded)
    with progress("report") as tracker:
        path = loaded.report(images, out_html, top=top, layers=names(layers), progress=tracker.describe)
    out.print(f"report: {path}")
