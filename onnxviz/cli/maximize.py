"""``maximize``: the images that drive a channel, a neuron or a class most (activation maximisation)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer

from onnxviz.analyses.maximize.analysis import OBJECTIVES, Settings
from onnxviz.analyses.maximize.parameterisations import PARAMETERISATIONS
from onnxviz.analyses.maximize.transforms import PRESETS
from onnxviz.cli.application import command
from onnxviz.cli.options import JsonOpt, ModelArg, ModelOptions, NodeOpt, floats, ints
from onnxviz.cli.output import Outputs, load_notes, out, print_json, progress, safe_name
from onnxviz.errors import UsageError

DEFAULTS = Settings()


@dataclass(frozen=True)
class MaximizeOptions:
    """The flags of ``analyses.maximize.Settings``, with the defaults declared there."""

    objective: Annotated[
        str | None, typer.Option("--objective", help=f"{' | '.join(OBJECTIVES)} (default: class on logits).")
    ] = None
    weights: Annotated[str | None, typer.Option("--weights", help="Joint objective: one weight per channel.")] = None
    steps: Annotated[int, typer.Option("--steps", help="Gradient ascent steps.")] = DEFAULTS.steps
    lr: Annotated[float, typer.Option("--lr", help="Adam's learning rate.")] = DEFAULTS.lr
    param: Annotated[str, typer.Option("--param", help=" | ".join(PARAMETERISATIONS))] = DEFAULTS.param
    decorrelate: Annotated[
        bool, typer.Option("--decorrelate/--no-decorrelate", help="fft: lucid's colour decorrelation.")
    ] = DEFAULTS.decorrelate
    jitter: Annotated[
        int | None, typer.Option("--jitter", help="Random shift per step, pixels (default: side/28).")
    ] = None
    zoom: Annotated[str | None, typer.Option("--zoom", help="Random scale per step LO,HI (default 0.95,1.05).")] = None
    rotate: Annotated[float, typer.Option("--rotate", help="Random rotation per step, ± degrees.")] = DEFAULTS.rotate
    decay: Annotated[float, typer.Option("--decay", help="L2 decay weight.")] = DEFAULTS.decay
    tv: Annotated[float, typer.Option("--tv", help="Total variation weight.")] = DEFAULTS.tv
    blur: Annotated[float, typer.Option("--blur", help="Gaussian blur sigma (pixel param).")] = DEFAULTS.blur
    blur_every: Annotated[int, typer.Option("--blur-every", help="Blur every N steps.")] = DEFAULTS.blur_every
    clip_percentile: Annotated[
        float, typer.Option("--clip-percentile", help="Gray out pixels whose norm is below this percentile.")
    ] = DEFAULTS.clip_percentile
    regularise: Annotated[
        str | None, typer.Option("--regularise", help=f"Yosinski et al.'s regularisers: {' | '.join(PRESETS)}.")
    ] = None
    seed: Annotated[int, typer.Option("--seed", help="Seed of the start images and transforms.")] = DEFAULTS.seed

    def settings(self) -> dict:
        """The keyword arguments of ``Model.maximize``: lists parsed, defaults filled in."""
        values = asdict(self)
        values["weights"] = floats(self.weights, "--weights")
        zoom = floats(self.zoom, "--zoom")
        if zoom is not None and len(zoom) != 2:
            raise UsageError(f"--zoom needs two numbers LO,HI; got '{self.zoom}'.")
        values["zoom"] = DEFAULTS.zoom if zoom is None else (zoom[0], zoom[1])
        return values


@command
def maximize(
    model: ModelArg,
    node: NodeOpt,
    options: ModelOptions,
    flags: MaximizeOptions,
    channel: Annotated[
        list[str] | None, typer.Option("--channel", "-c", help="Channel(s) or classes: 3,7 or repeated (default 0…7).")
    ] = None,
    top: Annotated[int | None, typer.Option("--top", help="The K channels a gray image drives most.")] = None,
    out_png: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG to write (default: <node>_maximize.png).")
    ] = None,
    raw: Annotated[Path | None, typer.Option("--raw", help="Write the float32 images (K, *input) as .npy.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Gradient ascent on the input: what a channel, a neuron or a class responds to most."""
    loaded = options.load(model)
    load_notes(loaded)
    settings = flags.settings()
    with progress("maximising", counted=True, quiet=json_output) as tracker:

        def report(step: int, total: int, value: float) -> None:
            tracker.describe(f"objective {value:.4g}")
            tracker.count(step, total)

        result = loaded.maximize(node, ints(channel, "--channel"), top, report, **settings)
    outputs = Outputs(out_png, raw, json_output)
    summary = result.summary() | outputs.write(result, result.images, Path(f"{safe_name(result.node)}_maximize.png"))
    if json_output:
        print_json(summary)
        return
    finals = ", ".join(f"{c}: {v:.4g}" for c, v in zip(result.channels, summary["final"], strict=False))
    out.print(f"{result.objective} maximisation of [bold]{result.node}[/bold] after {flags.steps} steps: {finals}")
    if result.probability is not None:
        out.print("probability: " + ", ".join(f"{p:.3f}" for p in result.probability))
    outputs.print_paths()
