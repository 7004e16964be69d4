"""``embed``: a folder's CNN codes laid out in 2-D (t-SNE or PCA), thumbnails at their places."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from onnxviz.analyses.embed import SHOWN, EmbedOptions
from onnxviz.cli.application import command
from onnxviz.cli.options import JsonOpt, ModelArg, ModelOptions, ScanOptions
from onnxviz.cli.output import Outputs, load_notes, note, out, print_json, progress, safe_name


@command
def embed(
    model: ModelArg,
    image_dir: Annotated[
        Path, typer.Argument(help="Folder of pictures / .npy inputs (searched recursively).", show_default=False)
    ],
    options: ModelOptions,
    scan: ScanOptions,
    settings: EmbedOptions,
    codes: Annotated[
        Path | None, typer.Option("--codes", help="Write the float32 codes (N, D) as .npy, rows in the JSON's order.")
    ] = None,
    out_png: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG to write (default: <folder>_<node>_<method>.png).")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """t-SNE (or PCA) of the CNN codes of a folder of images, drawn as thumbnails (cs231n's figure)."""
    settings = replace(settings, engine=scan.engine_for(options))
    method, perplexity = settings.method, settings.perplexity
    loaded = options.load(model)
    load_notes(loaded)
    with progress("coding", counted=True, rate_unit="images", quiet=json_output) as tracker:
        result = loaded.embed(image_dir, options=settings, progress=tracker.count)
    outputs = Outputs(out_png, codes, json_output)
    default = Path(f"{safe_name(image_dir.resolve().name)}_{safe_name(result.node)}_{method}.png")
    outputs.write(result, result.codes, default)
    if json_output:
        print_json(result.summary())
        return
    if result.perplexity is not None and result.perplexity < perplexity:
        note(f"perplexity lowered to {result.perplexity:.3g}: t-SNE needs 3·P < N = {len(result.images)} images")
    if result.assignment == "greedy":
        note("grid cells assigned greedily (scipy is not installed)")
    dims = result.codes.shape[1]
    out.print(
        f"{SHOWN[method]} of {result.node} codes ({dims} values each): {len(result.images)} images "
        f"({len(result.skipped)} unreadable, skipped)"
    )
    for label, path in (("picture", outputs.picture), ("codes", codes)):
        if path is not None:
            out.print(f"{label}: {path}")
