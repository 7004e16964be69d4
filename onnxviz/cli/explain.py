"""Commands that explain one image: ``project``, ``occlude``, ``activations``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import typer

from onnxviz.analyses.grids import GridOptions
from onnxviz.analyses.occlusion import OccludeOptions
from onnxviz.analyses.project import ProjectOptions
from onnxviz.cli.application import command
from onnxviz.cli.options import ImageArg, JsonOpt, ModelArg, ModelOptions
from onnxviz.cli.output import Outputs, load_notes, note, out, print_json, progress, safe_name
from onnxviz.errors import UsageError
from onnxviz.targets.spelling import TargetSpelling
from onnxviz.targets.tensors import ChannelTarget


@command
def project(
    model: ModelArg,
    image: ImageArg,
    options: ModelOptions,
    settings: ProjectOptions,
    out_png: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG to write (default: <image>_<node>_<rule>.png).")
    ] = None,
    raw: Annotated[
        Path | None, typer.Option("--raw", help="Write the float32 projections (K, *input) as .npy.")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Project feature maps of one layer back to pixels (deconvnet, guided backprop or saliency)."""
    loaded = options.load(model)
    load_notes(loaded)
    result = loaded.project(image, options=settings)
    outputs = Outputs(out_png, raw, json_output)
    default = Path(f"{image.stem}_{safe_name(result.node)}_{settings.rule}.png")
    summary = result.summary() | outputs.write(result, result.projections, default)
    if json_output:
        print_json(summary)
        return
    channels = ", ".join(f"{c} (act {a:.3g})" for c, a in zip(result.channels, result.activations, strict=True))
    timings = summary["timings_ms"]
    out.print(f"{result.rule} projection of [bold]{result.node}[/bold] ({result.tensor}): channels {channels}")
    out.print(
        f"forward {timings['forward']:.1f} ms, inverse {timings['inverse']:.1f} ms"
        f" (graph build {timings['build']:.0f} ms)"
    )
    outputs.print_paths()


@dataclass(frozen=True)
class ScoredFlags:
    """``occlude``'s flags beside its ``OccludeOptions``: the spellings of a target from before
    ``--target``, and the labels file."""

    target_class: Annotated[int | None, typer.Option("--target-class", help="Class to score (default: top-1).")] = None
    node: Annotated[str | None, typer.Option("--node", "-n", help="Score a feature map of this layer instead.")] = None
    channel: Annotated[int | None, typer.Option("--channel", "-c", help="Channel of --node (default: strongest).")] = (
        None
    )
    labels_file: Annotated[Path | None, typer.Option("--labels", help="Class names, one per line.")] = None

    def target(self, target: TargetSpelling) -> TargetSpelling:
        """``--target``, or the flags that spelled a target before it: ``--target-class K`` (class K)
        and ``--node N [--channel C]`` (the total activation of a feature map)."""
        if self.node is None and self.channel is not None:
            raise UsageError("--channel needs --node: the channel of which layer?")
        given = [
            flag
            for flag, value in (
                ("--target", target),
                ("--target-class", self.target_class),
                ("--node/--channel", self.node),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise UsageError(
                f"Give either {' or '.join(given)}, not {'both' if len(given) == 2 else 'all three'}: each names "
                "what is scored.",
                "--target K is --target-class K; --node/--channel scores a feature map's total activation.",
            )
        if self.node is not None:
            return ChannelTarget(self.node, self.channel)
        return target if target is not None else self.target_class

    def labels(self) -> list[str] | None:
        """The class names of ``--labels``, one per line (blank lines are not classes)."""
        if self.labels_file is None:
            return None
        try:
            text = self.labels_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"Cannot read the labels file {self.labels_file}: {exc}.") from None
        return [line.strip() for line in text.splitlines() if line.strip()]


@command
def occlude(
    model: ModelArg,
    image: ImageArg,
    options: ModelOptions,
    settings: OccludeOptions,
    scored: ScoredFlags,
    out_png: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG to write (default: <image>_occlusion.png).")
    ] = None,
    raw: Annotated[Path | None, typer.Option("--raw", help="Write the float32 (rows, cols) score map as .npy.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Occlusion sensitivity: slide a patch over the image and map the class probability (or a feature map)."""
    loaded = options.load(model)
    load_notes(loaded)
    settings = replace(settings, target=scored.target(settings.target), labels=scored.labels())
    with progress("occluding", counted=True, rate_unit="positions", quiet=json_output) as tracker:
        result = loaded.occlude(image, options=settings, progress=tracker.count)
    outputs = Outputs(out_png, raw, json_output)
    summary = result.summary() | outputs.write(result, result.scores, Path(f"{image.stem}_occlusion.png"))
    if json_output:
        print_json(summary)
        return
    note(result.note)
    lowest = summary["min"]
    out.print(
        f"occlusion of {result.described()}: unoccluded {result.baseline:.4g}, lowest {lowest['score']:.4g} at "
        f"(y={lowest['y']}, x={lowest['x']}), {result.grid.rows}x{result.grid.cols} positions, "
        f"{result.positions_per_second:.1f} positions/s (batch {result.batch_size})"
    )
    outputs.print_paths()


@command
def activations(
    model: ModelArg,
    image: ImageArg,
    options: ModelOptions,
    settings: GridOptions,
    out_png: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG to write (default: <image>_<node>_activations.png).")
    ] = None,
    raw: Annotated[Path | None, typer.Option("--raw", help="Write the float32 maps (C, h, w) as .npy.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Grid of every feature map of one layer for one image; the strongest framed, dead maps counted."""
    grid = options.load(model).activations(image, options=settings)
    outputs = Outputs(out_png, raw, json_output)
    summary = grid.summary() | outputs.write(
        grid, grid.maps, Path(f"{image.stem}_{safe_name(grid.node)}_activations.png")
    )
    if json_output:
        print_json(summary)
        return
    out.print(f"{grid.node}: {len(grid.maps)} maps, strongest {grid.strongest}, {grid.dead} dead")
    outputs.print_paths()
