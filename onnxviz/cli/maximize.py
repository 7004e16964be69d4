"""``maximize``: the images that drive a channel, a neuron or a class most (activation maximisation)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from onnxviz.analyses.maximize.options import MaximizeOptions
from onnxviz.cli.application import command
from onnxviz.cli.options import JsonOpt, ModelArg, ModelOptions
from onnxviz.cli.output import Outputs, load_notes, out, print_json, progress, safe_name


@command
def maximize(
    model: ModelArg,
    options: ModelOptions,
    settings: MaximizeOptions,
    out_png: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG to write (default: <node>_maximize.png).")
    ] = None,
    raw: Annotated[Path | None, typer.Option("--raw", help="Write the float32 images (K, *input) as .npy.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Gradient ascent on the input: what a channel, a neuron or a class responds to most."""
    loaded = options.load(model)
    load_notes(loaded)
    with progress("maximising", counted=True, quiet=json_output) as tracker:

        def report(step: int, total: int, value: float) -> None:
            tracker.describe(f"objective {value:.4g}")
            tracker.count(step, total)

        result = loaded.maximize(options=settings, progress=report)
    outputs = Outputs(out_png, raw, json_output)
    summary = result.summary() | outputs.write(result, result.images, Path(f"{safe_name(result.node)}_maximize.png"))
    if json_output:
        print_json(summary)
        return
    finals = ", ".join(f"{c}: {v:.4g}" for c, v in zip(result.channels, summary["final"], strict=False))
    out.print(f"{result.objective} maximisation of [bold]{result.node}[/bold] after {settings.steps} steps: {finals}")
    if result.probability is not None:
        out.print("probability: " + ", ".join(f"{p:.3f}" for p in result.probability))
    outputs.print_paths()
