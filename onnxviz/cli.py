"""The ``onnxviz`` command: parses, calls the Python API, prints. No logic of its own."""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from onnxviz import api
from onnxviz.errors import OnnxvizError, UsageError
from onnxviz.outputs import write_npy

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Make an exported ONNX CNN explain itself: deconvnet projections, guided "
    "backprop, saliency, and more, from the ONNX file alone.",
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
_state: dict = {"debug": False, "custom_ops": []}

ModelArg = Annotated[Path, typer.Argument(help="The ONNX model file.", show_default=False)]
ImageArg = Annotated[
    Path, typer.Argument(help="A picture OpenCV can read, or a .npy input tensor.", show_default=False)
]
NodeOpt = Annotated[
    str, typer.Option("--node", "-n", help="Node name, tensor name, alias (conv5, pool2, fc1) or unique substring.")
]
RuleOpt = Annotated[str, typer.Option("--rule", help="deconvnet | guided | saliency.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda.")]
SizeOpt = Annotated[str | None, typer.Option("--size", help="Input size H,W (for models with a free size).")]
ScaleOpt = Annotated[float | None, typer.Option("--scale", help="Pixel scale factor (before mean/std).")]
MeanOpt = Annotated[str | None, typer.Option("--mean", help="Per-channel mean, e.g. 0.485,0.456,0.406.")]
StdOpt = Annotated[str | None, typer.Option("--std", help="Per-channel std, e.g. 0.229,0.224,0.225.")]
OrderOpt = Annotated[
    bool | None, typer.Option("--bgr/--rgb", help="Channel order the model expects.", show_default=False)
]
LayoutOpt = Annotated[str, typer.Option("--layout", help="auto | nchw | nhwc.")]
PresetOpt = Annotated[
    str | None,
    typer.Option("--preset", help="imagenet | caffe | tf | raw (default: the model's metadata, else imagenet)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]
LrnOpt = Annotated[str, typer.Option("--lrn", help="exact | passthrough (the paper's approximation).")]


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    custom_ops: Annotated[
        list[Path] | None,
        typer.Option("--custom-ops", help="Custom-op library to register with onnxruntime (repeatable)."),
    ] = None,
) -> None:
    _state["debug"] = debug
    _state["custom_ops"] = custom_ops or []


def _floats(text: str | None, name: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{name} must be comma-separated numbers; got '{text}'.") from None


def _ints(values: list[str] | None, name: str) -> list[int] | None:
    if not values:
        return None
    try:
        return [int(v) for text in values for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{name} must be comma-separated integers; got '{','.join(values)}'.") from None


def _load(
    model: Path,
    device: str,
    size: str | None,
    scale: float | None,
    mean: str | None,
    std: str | None,
    bgr: bool | None,
    layout: str,
    preset: str | None,
) -> api.Model:
    parsed_size = None
    if size is not None:
        dims = _ints([size], "--size")
        if not dims or len(dims) != 2 or min(dims) <= 0:
            raise UsageError(f"--size must be H,W with two positive integers; got '{size}'.")
        parsed_size = (dims[0], dims[1])
    order = None if bgr is None else ("bgr" if bgr else "rgb")
    return api.load(
        model,
        device=device,
        preset=preset,
        scale=scale,
        mean=_floats(mean, "--mean"),
        std=_floats(std, "--std"),
        order=order,
        layout=layout,
        size=parsed_size,
        custom_ops=_state["custom_ops"],
    )


def _note(model: api.Model) -> None:
    for line in [*model.graph.notes, model.device.note]:
        err.print(f"[dim]onnxviz: {escape(line)}[/dim]", highlight=False)


@app.command()
def layers(model: ModelArg, json_output: JsonOpt = False, device: DeviceOpt = "auto", size: SizeOpt = None) -> None:
    """List every alias (conv1…, relu1…, pool1…, fc1…) with its node, op and output shape."""
    loaded = _load(model, device, size, None, None, None, None, "auto", None)
    rows = loaded.layers()
    if json_output:
        out.print_json(
            json.dumps(
                {
                    "model": str(model),
                    "input": loaded.graph.input_name,
                    "input_shape": list(loaded.input_shape()),
                    "layout": loaded.layout,
                    "layers": [
                        {
                            "alias": r.alias,
                            "node": r.node,
                            "op": r.op_type,
                            "tensor": r.tensor,
                            "shape": list(r.shape),
                            "receptive_field": list(r.receptive_field) if r.receptive_field else None,
                            "jump": list(r.jump) if r.jump else None,
                        }
                        for r in rows
                    ],
                }
            )
        )
        return
    table = Table(
        title=f"{model.name}: input {loaded.graph.input_name} {list(loaded.input_shape())} ({loaded.layout.upper()})"
    )
    for column in ("alias", "node", "op", "output tensor", "shape", "field", "jump"):
        table.add_column(column)
    for r in rows:
        field = "×".join(map(str, r.receptive_field)) if r.receptive_field else "whole"
        jump = "×".join(map(str, r.jump)) if r.jump else ""
        table.add_row(r.alias, r.node, r.op_type, r.tensor, "×".join(map(str, r.shape)), field, jump)
    out.print(table)


@app.command()
def project(
    model: ModelArg,
    image: ImageArg,
    node: NodeOpt,
    channel: Annotated[list[str] | None, typer.Option("--channel", "-c", help="Channel(s): 3,7 or repeated.")] = None,
    top: Annotated[int | None, typer.Option("--top", help="Project the K strongest channels.")] = None,
    rule: RuleOpt = "deconvnet",
    out_png: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG to write (default: <image>_<node>_<rule>.png).")
    ] = None,
    raw: Annotated[
        Path | None, typer.Option("--raw", help="Write the float32 projections (K, *input) as .npy.")
    ] = None,
    json_output: JsonOpt = False,
    lrn: LrnOpt = "exact",
    device: DeviceOpt = "auto",
    size: SizeOpt = None,
    scale: ScaleOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    bgr: OrderOpt = None,
    layout: LayoutOpt = "auto",
    preset: PresetOpt = None,
) -> None:
    """Project feature maps of one layer back to pixels (deconvnet, guided backprop or saliency)."""
    loaded = _load(model, device, size, scale, mean, std, bgr, layout, preset)
    _note(loaded)
    result = loaded.project(image, node, channels=_ints(channel, "--channel"), top=top, rule=rule, lrn=lrn)
    if out_png is None and raw is None and not json_output:
        out_png = Path(f"{image.stem}_{_safe(result.node)}_{rule}.png")
    if raw is not None:
        write_npy(raw, result.projections.astype(np.float32))
    if out_png is not None:
        result.save(out_png)
    summary = result.summary() | {"out": str(out_png) if out_png else None, "raw": str(raw) if raw else None}
    if json_output:
        out.print_json(json.dumps(summary))
        return
    channels = ", ".join(f"{c} (act {a:.3g})" for c, a in zip(result.channels, result.activations, strict=True))
    out.print(f"{result.rule} projection of [bold]{result.node}[/bold] ({result.tensor}): channels {channels}")
    out.print(
        f"forward {summary['timings_ms']['forward']:.1f} ms, inverse {summary['timings_ms']['inverse']:.1f} ms"
        f" (graph build {summary['timings_ms']['build']:.0f} ms)"
    )
    for label, path in (("picture", out_png), ("raw", raw)):
        if path is not None:
            out.print(f"{label}: {path}")


@app.command()
def occlude(
    model: ModelArg,
    image: ImageArg,
    patch: Annotated[int, typer.Option("--patch", help="Patch size P (pixels of the model input).")] = 32,
    stride: Annotated[int, typer.Option("--stride", help="Step S between patch positions.")] = 16,
    fill: Annotated[str, typer.Option("--fill", help="zero | mean | gray | a number (preprocessed space).")] = "zero",
    target_class: Annotated[int | None, typer.Option("--target-class", help="Class to score (default: top-1).")] = None,
    node: Annotated[str | None, typer.Option("--node", "-n", help="Score a feature map of this layer instead.")] = None,
    channel: Annotated[
        int | None, typer.Option("--channel", "-c", help="Channel of --node (default: strongest).")
    ] = None,
    labels: Annotated[Path | None, typer.Option("--labels", help="Class names, one per line.")] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Positions per run (default: from free memory).")
    ] = None,
    out_png: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG to write (default: <image>_occlusion.png).")
    ] = None,
    raw: Annotated[Path | None, typer.Option("--raw", help="Write the float32 (rows, cols) score map as .npy.")] = None,
    incremental: Annotated[
        bool,
        typer.Option("--incremental/--full", help="Recompute only what each patch changes (exact), or every layer."),
    ] = True,
    json_output: JsonOpt = False,
    device: DeviceOpt = "auto",
    size: SizeOpt = None,
    scale: ScaleOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    bgr: OrderOpt = None,
    layout: LayoutOpt = "auto",
    preset: PresetOpt = None,
) -> None:
    """Occlusion sensitivity: slide a patch over the image and map the class probability (or a feature map)."""
    loaded = _load(model, device, size, scale, mean, std, bgr, layout, preset)
    _note(loaded)
    names = _read_labels(labels) if labels is not None else None
    with Progress(
        TextColumn("occluding"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=json_output,
    ) as bar:
        task = bar.add_task("occlude", total=None, rate="")
        started = time.perf_counter()

        def progress(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - started, 1e-9)
            bar.update(task, completed=done, total=total, rate=f"{rate:.1f} positions/s")

        result = loaded.occlude(
            image,
            patch=patch,
            stride=stride,
            fill=fill,
            target_class=target_class,
            node=node,
            channel=channel,
            batch_size=batch_size,
            labels=names,
            incremental=incremental,
            progress=progress,
        )
    if out_png is None and raw is None and not json_output:
        out_png = Path(f"{image.stem}_occlusion.png")
    if raw is not None:
        write_npy(raw, result.scores)
    if out_png is not None:
        result.save(out_png)
    summary = result.summary() | {"out": str(out_png) if out_png else None, "raw": str(raw) if raw else None}
    if json_output:
        out.print_json(json.dumps(summary))
        return
    if result.note:
        err.print(f"[dim]onnxviz: {result.note}[/dim]")
    target = result.label(result.target) if result.kind == "class" else f"{node} channel {result.target}"
    out.print(
        f"occlusion of {target}: unoccluded {result.baseline:.4g}, lowest {summary['min']['score']:.4g} at "
        f"(y={summary['min']['y']}, x={summary['min']['x']}), {result.grid.rows}x{result.grid.cols} positions, "
        f"{result.positions_per_second:.1f} positions/s (batch {result.batch_size})",
        soft_wrap=True,
    )
    for label, path in (("picture", out_png), ("raw", raw)):
        if path is not None:
            out.print(f"{label}: {path}")


def _read_labels(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read the labels file {path}: {exc}.") from None


@app.command()
def activations(
    model: ModelArg,
    image: ImageArg,
    node: NodeOpt,
    out_png: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG to write (default: <image>_<node>_activations.png).")
    ] = None,
    raw: Annotated[Path | None, typer.Option("--raw", help="Write the float32 maps (C, h, w) as .npy.")] = None,
    json_output: JsonOpt = False,
    device: DeviceOpt = "auto",
    size: SizeOpt = None,
    scale: ScaleOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    bgr: OrderOpt = None,
    layout: LayoutOpt = "auto",
    preset: PresetOpt = None,
) -> None:
    """Grid of every feature map of one layer for one image; the strongest framed, dead maps counted."""
    loaded = _load(model, device, size, scale, mean, std, bgr, layout, preset)
    grid = loaded.activations(image, node)
    if out_png is None and raw is None and not json_output:
        out_png = Path(f"{image.stem}_{_safe(grid.node)}_activations.png")
    if raw is not None:
        write_npy(raw, grid.maps.astype(np.float32))
    if out_png is not None:
        grid.save(out_png)
    summary = grid.summary() | {"out": str(out_png) if out_png else None}
    if json_output:
        out.print_json(json.dumps(summary))
        return
    out.print(f"{grid.node}: {len(grid.maps)} maps, strongest {grid.strongest}, {grid.dead} dead")
    if out_png is not None:
        out.print(f"picture: {out_png}")


@app.command()
def filters(
    model: ModelArg,
    node: NodeOpt,
    out_png: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG to write (default: <node>_filters.png).")
    ] = None,
    raw: Annotated[Path | None, typer.Option("--raw", help="Write the float32 weights (O, I, kh, kw) as .npy.")] = None,
    preset: PresetOpt = None,
    bgr: OrderOpt = None,
) -> None:
    """Grid of a conv layer's filters: RGB for the first layer, one grey tile per input channel deeper."""
    loaded = _load(model, "cpu", None, None, None, None, bgr, "auto", preset)
    grid = loaded.filters(node)
    out_png = out_png or Path(f"{_safe(grid.node)}_filters.png")
    if raw is not None:
        write_npy(raw, grid.weights)
    grid.save(out_png)
    out.print(f"{grid.node}: {grid.weights.shape[0]} filters of {list(grid.weights.shape[1:])}\npicture: {out_png}")


@app.command()
def topk(
    model: ModelArg,
    image_dir: Annotated[
        Path, typer.Argument(help="Folder of pictures / .npy inputs (searched recursively).", show_default=False)
    ],
    node: NodeOpt,
    channels: Annotated[list[str] | None, typer.Option("--channels", help="Channels: 0,5,9 or repeated.")] = None,
    top_channels: Annotated[
        int | None, typer.Option("--top-channels", help="The N channels with the strongest winners (default 8).")
    ] = None,
    k: Annotated[int, typer.Option("--k", help="Winners per channel.")] = 9,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the grids, topk.json, index.html and the resumable scan state."),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted scan in --out.")] = False,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Images per run.")] = None,
    json_output: JsonOpt = False,
    device: DeviceOpt = "auto",
    size: SizeOpt = None,
    scale: ScaleOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    bgr: OrderOpt = None,
    layout: LayoutOpt = "auto",
    preset: PresetOpt = None,
) -> None:
    """The k images that activate each feature map most, with projections and patches (the paper's Fig. 2)."""
    loaded = _load(model, device, size, scale, mean, std, bgr, layout, preset)
    _note(loaded)
    with Progress(
        TextColumn("scanning"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=json_output,
    ) as bar:
        task = bar.add_task("scan", total=None)
        result = loaded.topk(
            image_dir,
            node,
            channels=_ints(channels, "--channels"),
            top_channels=top_channels,
            k=k,
            state_dir=out_dir,
            resume=resume,
            batch_size=batch_size,
            project=out_dir is not None,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    written = result.save(out_dir) if out_dir is not None else []
    if json_output:
        out.print_json(json.dumps(result.to_json()))
        return
    skipped = len(result.scan.skipped)
    out.print(
        f"{result.images} images scanned ({skipped} unreadable, skipped); channels "
        f"{', '.join(map(str, result.scan.channels))} of {result.scan.node}"
    )
    for path in written:
        out.print(f"picture: {path}")
    if out_dir is not None:
        out.print(f"index: {out_dir / 'index.html'}")


@app.command()
def report(
    model: ModelArg,
    images: Annotated[list[Path], typer.Argument(help="Pictures or .npy inputs.", show_default=False)],
    out_html: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path("report.html"),
    top: Annotated[int, typer.Option("--top", help="Projected channels per layer.")] = 4,
    layers: Annotated[
        list[str] | None,
        typer.Option("--layers", help="Layers to show: conv2,conv5 or repeated (default: every conv)."),
    ] = None,
    device: DeviceOpt = "auto",
    size: SizeOpt = None,
    scale: ScaleOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    bgr: OrderOpt = None,
    layout: LayoutOpt = "auto",
    preset: PresetOpt = None,
) -> None:
    """One self-contained HTML page: layers, occlusion, projections and activation grids per image."""
    loaded = _load(model, device, size, scale, mean, std, bgr, layout, preset)
    _note(loaded)
    with Progress(TextColumn("report"), TextColumn("{task.description}"), console=err, transient=True) as bar:
        task = bar.add_task("")
        chosen = [v.strip() for text in layers for v in text.split(",") if v.strip()] if layers else None
        path = loaded.report(
            images, out_html, top=top, layers=chosen, progress=lambda name: bar.update(task, description=name)
        )
    out.print(f"report: {path}")


@app.command()
def invert(
    model: ModelArg,
    node: NodeOpt,
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Folder for forward.onnx and inverse.onnx.")],
    rule: RuleOpt = "deconvnet",
    lrn: LrnOpt = "exact",
    form: Annotated[
        str | None, typer.Option("--form", help="cpu | portable (CUDA-safe ops); default: the device's.")
    ] = None,
    device: DeviceOpt = "auto",
    size: SizeOpt = None,
) -> None:
    """Write the forward graph (with switches) and the generated inverse graph as .onnx files."""
    loaded = _load(model, device, size, None, None, None, None, "auto", None)
    forward_path, inverse_path = loaded.invert(node, out_dir, rule=rule, lrn=lrn, form=form)
    out.print(f"forward: {forward_path}\ninverse: {inverse_path}")


@app.command()
def check(
    model: ModelArg,
    json_output: JsonOpt = False,
    rule: RuleOpt = "deconvnet",
    device: DeviceOpt = "auto",
    size: SizeOpt = None,
) -> None:
    """Smoke test: every conv and pool layer must project. Exit 1 if any fails."""
    loaded = _load(model, device, size, None, None, None, None, "auto", None)
    _note(loaded)
    results = loaded.check(rule=rule)
    failed = [r for r in results if not r.ok]
    if json_output:
        out.print_json(
            json.dumps(
                {
                    "model": str(model),
                    "ok": not failed,
                    "device": loaded.device.name,
                    "layers": [
                        {
                            "alias": r.alias,
                            "node": r.node,
                            "op": r.op_type,
                            "ok": r.ok,
                            "message": r.message,
                            "ms": round(r.seconds * 1000, 2),
                        }
                        for r in results
                    ],
                }
            )
        )
    else:
        table = Table(title=f"onnxviz check {model.name} ({rule})")
        for column in ("alias", "node", "op", "result", "ms"):
            table.add_column(column)
        for r in results:
            table.add_row(
                r.alias,
                r.node,
                r.op_type,
                "[green]ok[/green]" if r.ok else f"[red]FAIL[/red] {r.message}",
                f"{r.seconds * 1000:.0f}",
            )
        out.print(table)
        out.print(f"{len(results) - len(failed)}/{len(results)} layers project.")
    if failed or not results:
        if not results:
            err.print("No conv or pool layer found on the image path.")
        raise typer.Exit(1)


@app.command()
def compare(
    model_a: Annotated[Path, typer.Argument(help="The original ONNX model.", show_default=False)],
    model_b: Annotated[Path, typer.Argument(help="Its conversion (exporter, fp16, int8…).", show_default=False)],
    images: Annotated[list[Path], typer.Argument(help="Pictures or .npy inputs.", show_default=False)],
    layers: Annotated[
        list[str] | None, typer.Option("--layers", help="Layers named alike in both: conv2,pool3 or repeated.")
    ] = None,
    pairs: Annotated[
        list[str] | None, typer.Option("--map", help="A's layer = B's layer (node, tensor or alias), repeatable.")
    ] = None,
    rule: RuleOpt = "deconvnet",
    top: Annotated[int, typer.Option("--top", help="Channels projected per layer (0: none).")] = 4,
    occlusion: Annotated[bool, typer.Option("--occlusion", help="Also correlate the occlusion maps.")] = False,
    patch: Annotated[int | None, typer.Option("--patch", help="Occlusion patch (default: side/4, ≤ 32).")] = None,
    stride: Annotated[int | None, typer.Option("--stride", help="Occlusion stride (default: patch/2).")] = None,
    tolerance: Annotated[float, typer.Option("--tolerance", help="Factor on every default tolerance.")] = 1.0,
    precision: Annotated[
        str | None, typer.Option("--precision", help="fp32 | fp16 | int8 tolerances (default: from the models).")
    ] = None,
    json_output: JsonOpt = False,
    device: DeviceOpt = "auto",
    size: SizeOpt = None,
    scale: ScaleOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    bgr: OrderOpt = None,
    layout: LayoutOpt = "auto",
    preset: PresetOpt = None,
) -> None:
    """Does a converted model still see what the original sees? Exit 1 when a measure is beyond tolerance."""
    loaded_a = _load(model_a, device, size, scale, mean, std, bgr, layout, preset)
    loaded_b = _load(model_b, device, size, scale, mean, std, bgr, layout, preset)
    _note(loaded_a)
    mapping = dict(_pair(text) for texts in pairs or [] for text in texts.split(",") if text.strip())
    chosen = [v.strip() for text in layers for v in text.split(",") if v.strip()] if layers else None
    with Progress(TextColumn("compare"), TextColumn("{task.description}"), console=err, transient=True) as bar:
        task = bar.add_task("")
        result = api.compare(
            loaded_a,
            loaded_b,
            images,
            layers=chosen,
            mapping=mapping,
            rule=rule,
            top=top,
            occlusion=occlusion,
            tolerance=tolerance,
            precision=precision,
            patch=patch,
            stride=stride,
            progress=lambda what: bar.update(task, description=what),
        )
    if json_output:
        out.print_json(json.dumps(result.summary()))
    else:
        count = len(result.images)
        table = Table(title=f"{model_b.name} against {model_a.name} ({count} image{'s' * (count != 1)}, {rule})")
        for column in ("layer", "rel. error", "cosine", "projection cosine", "verdict"):
            table.add_column(column)
        for row in result.rows():
            table.add_row(
                *(escape(cell) for cell in row[:4]), row[4] if row[4] == "ok" else f"[red]{escape(row[4])}[/red]"
            )
        out.print(table)
        for line in result.messages():
            err.print(f"[dim]{escape(line)}[/dim]", highlight=False)
        out.print(escape(result.verdict()), highlight=False)
    if not result.ok:
        raise typer.Exit(1)


def _pair(text: str) -> tuple[str, str]:
    name_a, _, name_b = text.partition("=")
    if not name_a.strip() or not name_b.strip():
        raise UsageError(f"--map takes A=B (A's layer, B's layer); got '{text}'.")
    return name_a.strip(), name_b.strip()


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text).strip("_") or "node"


def _debug() -> bool:
    """Read when an error is printed, after the app's callback has parsed ``--debug``."""
    return _state["debug"] or os.environ.get("ONNXVIZ_DEBUG") == "1"


def main() -> None:
    _state["debug"] = False  # in-process callers run main() repeatedly; each run parses its own flag
    try:
        app(prog_name="onnxviz")
    except OnnxvizError as exc:
        if _debug():
            traceback.print_exc()
        err.print(f"[bold red]error:[/bold red] {escape(exc.message)}", highlight=False)
        if exc.hint:
            err.print(f"[dim]hint:[/dim] {escape(exc.hint)}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if _debug():
            traceback.print_exc()
        err.print(f"[bold red]internal error:[/bold red] {type(exc).__name__}: {escape(str(exc))}", highlight=False)
        err.print("[dim]hint:[/dim] rerun with --debug for the traceback, and report it with the model.")
        sys.exit(1)
