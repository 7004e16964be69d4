"""``correspondence``: does a layer treat the same object part in different images alike?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from onnxviz.analyses.correspondence import CorrespondenceOptions, pairs_text
from onnxviz.cli.application import command
from onnxviz.cli.options import JsonOpt, ModelArg, ModelOptions
from onnxviz.cli.output import Outputs, out, run_counted


@command
def correspondence(
    model: ModelArg,
    options: ModelOptions,
    masks: Annotated[
        Path,
        typer.Option(
            "--masks",
            help="JSON naming, per image (relative to it), each part's rectangle x, y, w, h in model-input pixels.",
            show_default=False,
        ),
    ],
    settings: CorrespondenceOptions,
    out_png: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG to write (default: <masks>_correspondence.png).")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Correspondence analysis (Zeiler & Fergus Table 1): mask a part in several images, compare the sign changes."""
    loaded = options.load(model)
    outputs = Outputs(out_png, None, json_output)
    default = Path(f"{masks.stem}_correspondence.png")
    result = run_counted(
        loaded,
        lambda count: loaded.correspondence(masks, options=settings, progress=count),
        "masking",
        outputs,
        default,
    )
    if result is None:
        return
    for part, deltas in result.parts.items():
        shown = ", ".join(f"{layer} {deltas[layer]:.3f} (random {result.random[part][layer]:.3f})" for layer in deltas)
        out.print(f"{part} ({pairs_text(result.pairs[part])}): {shown}")
    outputs.print_paths()
