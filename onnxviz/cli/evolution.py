"""``evolution``: how the features of a layer form over training checkpoints (the paper's Fig. 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from onnxviz import api
from onnxviz.cli.application import command
from onnxviz.cli.options import JsonOpt, ModelOptions, NodeOpt, ScanOptions, ints
from onnxviz.cli.output import load_notes, out, print_json, progress, safe_name


@command
def evolution(
    checkpoints: Annotated[
        list[Path],
        typer.Argument(
            help="ONNX checkpoints of one model in training order, or folders of them (natural order: "
            "epoch2 before epoch10).",
            show_default=False,
        ),
    ],
    images: Annotated[Path, typer.Option("--images", help="Folder of pictures / .npy inputs (searched recursively).")],
    node: NodeOpt,
    options: ModelOptions,
    scan: ScanOptions,
    channels: Annotated[list[str] | None, typer.Option("--channels", help="Channels: 0,5,9 or repeated.")] = None,
    top_channels: Annotated[
        int | None,
        typer.Option("--top-channels", help="The N channels strongest at the last checkpoint (default 8)."),
    ] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Images per run.")] = None,
    picture: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="PNG: a row per channel, a column per checkpoint (default: evolution_<node>.png)."
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Each channel's strongest activation at every training checkpoint, projected (the paper's Fig. 4)."""
    loaded: list[Path] = []

    def load(path: Path) -> api.Model:
        model = options.load(path)
        if not loaded:
            load_notes(model)  # every checkpoint is loaded alike: said once
        loaded.append(path)
        return model

    settings = {"channels": ints(channels, "--channels"), "top_channels": top_channels, "batch_size": batch_size}
    with progress("scanning", counted=True, quiet=json_output) as tracker:
        result = api.evolution(
            checkpoints, images, node, load, progress=tracker.count, engine=scan.engine_for(options), **settings
        )
    picture = picture or (None if json_output else Path(f"evolution_{safe_name(node)}.png"))
    if picture is not None:
        result.save(picture)
    if json_output:
        print_json(result.summary())
        return
    shown = ", ".join(map(str, result.channels))
    out.print(
        f"{result.images} images scanned ({len(result.skipped)} unreadable, skipped) at "
        f"{len(result.checkpoints)} checkpoints; channels {shown} of {result.node}"
    )
    out.print(f"picture: {picture}")
