"""One self-contained HTML page about a model and a few images: nothing to install to read it.

The page holds the layer table (ops, shapes, receptive fields), then per image: the occlusion
map (class probability for a classifier, the strongest map of the last conv layer otherwise) and,
per conv layer, the strongest channels' deconvnet projections and the activation grid. Every
picture is embedded as a base64 PNG, so the file can be mailed or attached to a CI run.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from pathlib import Path

from onnxviz import render

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: 4px 0; }
section { margin-bottom: 2.5em; }
"""


def _img(rgb, alt: str) -> str:
    data = base64.b64encode(render.png_bytes(rgb)).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def build_report(
    model,
    images: list[Path],
    top: int = 4,
    layers: list[str] | None = None,
    occlusion_patch: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> str:
    """The report's HTML. ``model`` is an ``onnxviz.Model``; ``layers`` names the layers to show
    (default: every conv layer)."""
    rows = "".join(
        f"<tr><td>{html.escape(r.alias)}</td><td>{html.escape(r.node)}</td><td>{r.op_type}</td>"
        f"<td>{'×'.join(map(str, r.shape))}</td>"
        f"<td>{'×'.join(map(str, r.receptive_field)) if r.receptive_field else 'whole input'}</td>"
        f"<td>{'×'.join(map(str, r.jump)) if r.jump else ''}</td></tr>"
        for r in model.layers()
    )
    name = model.graph.path.name if model.graph.path else "model"
    parts = [
        f"<h1>onnxviz report: {html.escape(name)}</h1>",
        f"<p>input {html.escape(model.graph.input_name)} {list(model.input_shape())} "
        f"({model.layout.upper()}), {html.escape(model.device.note)}</p>",
        "<h2>Layers</h2><table><tr><th>alias</th><th>node</th><th>op</th><th>shape</th>"
        f"<th>receptive field</th><th>jump</th></tr>{rows}</table>",
    ]
    convs = [la.alias for la in model.graph.layers if la.alias.startswith("conv")]
    shown = [model.resolve(name).alias for name in layers] if layers else convs
    for image in images:
        if progress is not None:
            progress(str(image))
        section = [f"<section><h2>{html.escape(Path(image).name)}</h2>"]
        section.append(_occlusion(model, image, convs, occlusion_patch))
        for alias in shown:
            projection = model.project(image, alias, top=min(top, _channels(model, alias)))
            grid = model.activations(image, alias)
            section.append(
                f"<h3>{alias}</h3>{_img(projection.figure(), f'{alias} projections')}"
                f"{_img(grid.figure(), f'{alias} activations')}"
            )
        section.append("</section>")
        parts.append("".join(section))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>onnxviz report: {html.escape(name)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )


def _channels(model, alias: str) -> int:
    shapes = model.graph.shapes(model.input_shape())
    return shapes[model.resolve(alias).tensor][1]


def _occlusion(model, image, convs: list[str], patch: int | None) -> str:
    from onnxviz.occlude import score_tensor

    shape = model.input_shape()
    side = min(shape[1:3] if model.layout == "nhwc" else shape[2:4])
    patch = patch or max(2, side // 7)
    stride = max(1, patch // 2)
    logits, _ = score_tensor(model.graph, None)
    if len(model.graph.shapes(shape)[logits]) == 2:
        result = model.occlude(image, patch=patch, stride=stride, fill="gray")
        what = "class probability"
    elif convs:
        result = model.occlude(image, patch=patch, stride=stride, fill="gray", node=convs[-1])
        what = f"total activation of the strongest {convs[-1]} map"
    else:
        return ""
    return f"<h3>occlusion ({what})</h3>{_img(result.figure(), 'occlusion')}"
