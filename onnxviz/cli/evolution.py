"""``evolution``: how the features of a layer form over training checkpoints (the paper's Fig. 4)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from onnxviz import api
from onnxviz.analyses.evolution import EvolutionOptions
from onnxviz.cli.application import command
from onnxviz.cli.options import JsonOpt, ModelOptions, ScanOptions
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
    options: ModelOptions,
    scan: ScanOptions,
    settings: EvolutionOptions,
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

    settings = replace(settings, engine=scan.engine_for(options))
    with progress("scanning", counted=True, quiet=json_output) as tracker:
        result = api.evolution(checkpoints, loader=load, options=settings, progress=tracker.count)
    picture = picture or (None if json_output else Path(f"evolution_{safe_name(settings.node)}.png"))
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
