"""``embed``: a folder's CNN codes laid out in 2-D (t-SNE or PCA), thumbnails at their places."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from onnxviz.analyses.embed import SHOWN
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
    node: Annotated[
        str | None, typer.Option("--node", "-n", help="Layer whose output is the code (default: the code layer).")
    ] = None,
    method: Annotated[str, typer.Option("--method", help="tsne | pca.")] = "tsne",
    perplexity: Annotated[
        float, typer.Option("--perplexity", help="Effective number of neighbours (≥ 1; at most (N−1)/3 for N images).")
    ] = 30.0,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of t-SNE.")] = 0,
    codes: Annotated[
        Path | None, typer.Option("--codes", help="Write the float32 codes (N, D) as .npy, rows in the JSON's order.")
    ] = None,
    grid: Annotated[bool, typer.Option("--grid", help="Snap the thumbnails to a square grid, one per cell.")] = False,
    out_png: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG to write (default: <folder>_<node>_<method>.png).")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """t-SNE (or PCA) of the CNN codes of a folder of images, drawn as thumbnails (cs231n's figure)."""
    engine = scan.engine_for(options)
    loaded = options.load(model)
    load_notes(loaded)
    with progress("coding", counted=True, rate_unit="images", quiet=json_output) as tracker:
        result = loaded.embed(image_dir, node, method, perplexity, seed, grid, tracker.count, engine)
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
