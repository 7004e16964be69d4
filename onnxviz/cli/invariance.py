"""``invariance``: feature distances and the class probability as images are moved, turned, zoomed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from onnxviz.analyses.invariance import InvarianceOptions
from onnxviz.cli.application import command
from onnxviz.cli.options import ImagesArg, JsonOpt, ModelArg, ModelOptions
from onnxviz.cli.output import Outputs, out, run_counted


@command
def invariance(
    model: ModelArg,
    images: ImagesArg,
    options: ModelOptions,
    settings: InvarianceOptions,
    out_png: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG to write (default: invariance_<transform>.png).")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Invariance curves (the paper's Fig. 5): how far each layer's features and the class probability move."""
    loaded = options.load(model)
    outputs = Outputs(out_png, None, json_output)
    default = Path(f"invariance_{settings.transform}.png")
    result = run_counted(
        loaded,
        lambda count: loaded.invariance(images, options=settings, progress=count),
        "transforming",
        outputs,
        default,
    )
    if result is None:
        return
    for i, image in enumerate(result.images):
        moved = ", ".join(f"{layer} up to {result.relative[k, i].max():.3g}×" for k, layer in enumerate(result.layers))
        line = f"{image}: relative feature distance {moved}"
        if result.probability is not None:
            low, high = result.probability[i].min(), result.probability[i].max()
            line += f"; p({result.label(result.target_class[i])}) {low:.3g}…{high:.3g}"
        out.print(line, highlight=False, markup=False)
    outputs.print_paths()
