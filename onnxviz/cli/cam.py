"""``cam``: class activation maps of several images, written by hand for ``--raw-layer``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from onnxviz.analyses.cam.analysis import CamOptions
from onnxviz.cli.application import command
from onnxviz.cli.options import ImagesArg, JsonOpt, ModelArg, ModelOptions
from onnxviz.cli.output import Outputs, load_notes, out, print_json, safe_name
from onnxviz.errors import UsageError
from onnxviz.render.outputs import write_npy


@command
def cam(
    model: ModelArg,
    images: ImagesArg,
    options: ModelOptions,
    settings: CamOptions,
    out_png: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG to write (default: <first image>_<method>.png).")
    ] = None,
    raw: Annotated[
        Path | None, typer.Option("--raw", help="Write the float32 maps (N, H, W) at the input size as .npy.")
    ] = None,
    raw_layer: Annotated[
        Path | None, typer.Option("--raw-layer", help="Write the float32 maps (N, h, w) of the one layer as .npy.")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Class activation maps (Grad-CAM, Grad-CAM++, XGrad-CAM, LayerCAM, HiResCAM, EigenCAM, Score-CAM,
    Ablation-CAM) of each image's target."""
    if raw_layer is not None and settings.layer is not None and len(settings.layer) > 1:
        raise UsageError(
            f"--raw-layer writes the maps of one layer, and --layer names {len(settings.layer)}.",
            "Give one --layer with --raw-layer (--raw writes the maps of several layers averaged).",
        )
    loaded = options.load(model)
    load_notes(loaded)
    result = loaded.cam(images, options=settings)
    outputs = Outputs(out_png, raw, json_output)
    default = Path(f"{images[0].stem}_{safe_name(settings.method)}.png")
    # --raw-layer alone is an output too: the default picture is for a command given none.
    alone = raw_layer is not None and out_png is None and raw is None and not json_output
    summary = result.summary() | ({"out": None, "raw": None} if alone else outputs.write(result, result.raw(), default))
    if raw_layer is not None:
        write_npy(raw_layer, next(iter(result.maps.values())))
    summary["raw_layer"] = None if raw_layer is None else str(raw_layer)
    if json_output:
        print_json(summary)
        return
    out.print(f"{result.method} at {', '.join(result.layers)}", highlight=False, markup=False)
    for image, target, peak in zip(result.images, result.targets, result.peaks(), strict=True):
        line = f"{image}: {result.described(target)} (score {target.score:.4g}), peak at y={peak[0]}, x={peak[1]}"
        out.print(line, highlight=False, markup=False)
    outputs.print_paths()
    if raw_layer is not None:
        out.print(f"raw layer: {raw_layer}")
