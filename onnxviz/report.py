"""One self-contained HTML page about a model and a few images: nothing to install to read it.

The page holds the layer table (ops, shapes, receptive fields), then per image: the occlusion
map (class probability for a classifier, the strongest map of the last conv layer otherwise) and,
per conv layer, the strongest channels' deconvnet projections and the activation grid. Every
picture is embedded as a base64 PNG, so the file can be mailed or attached to a CI run.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

from onnxviz import render
from onnxviz.markup import Markup, fill, join

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: 4px 0; }
section { margin-bottom: 2.5em; }
"""


def _img(rgb, alt: str) -> Markup:
    data = base64.b64encode(render.png_bytes(rgb)).decode("ascii")
    return fill('<img alt="{alt}" src="data:image/png;base64,{data}">', alt=alt, data=data)


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
    rows = join(
        fill(
            "<tr><td>{alias}</td><td>{node}</td><td>{op}</td><td>{shape}</td><td>{field}</td><td>{jump}</td></tr>",
            alias=r.alias,
            node=r.node,
            op=r.op_type,
            shape="×".join(map(str, r.shape)),
            field="×".join(map(str, r.receptive_field)) if r.receptive_field else "whole input",
            jump="×".join(map(str, r.jump)) if r.jump else "",
        )
        for r in model.layers()
    )
    name = model.graph.path.name if model.graph.path else "model"
    parts = [
        fill(
            "<h1>onnxviz report: {name}</h1><p>input {input} {shape} ({layout}), {note}</p>"
            "<h2>Layers</h2><table><tr><th>alias</th><th>node</th><th>op</th><th>shape</th>"
            "<th>receptive field</th><th>jump</th></tr>{rows}</table>",
            name=name,
            input=model.graph.input_name,
            shape=list(model.input_shape()),
            layout=model.layout.upper(),
            note=model.device.note,
            rows=rows,
        )
    ]
    convs = [la.alias for la in model.graph.layers if la.alias.startswith("conv")]
    shown = [model.resolve(name).alias for name in layers] if layers else convs
    for image in images:
        if progress is not None:
            progress(str(image))
        section = [fill("<section><h2>{name}</h2>", name=Path(image).name)]
        section.append(_occlusion(model, image, convs, occlusion_patch))
        for alias in shown:
            projection = model.project(image, alias, top=min(top, _channels(model, alias)))
            grid = model.activations(image, alias)
            section.append(
                fill(
                    "<h3>{alias}</h3>{projections}{activations}",
                    alias=alias,
                    projections=_img(projection.figure(), f"{alias} projections"),
                    activations=_img(grid.figure(), f"{alias} activations"),
                )
            )
        section.append(Markup("</section>"))
        parts.append(join(section))
    return fill(
        "<!doctype html><html><head><meta charset='utf-8'><title>onnxviz report: {name}</title>"
        "<style>{style}</style></head><body>{body}</body></html>",
        name=name,
        style=Markup(STYLE),
        body=join(parts),
    )


def _channels(model, alias: str) -> int:
    shapes = model.graph.shapes(model.input_shape())
    return shapes[model.resolve(alias).tensor][1]


def _occlusion(model, image, convs: list[str], patch: int | None) -> Markup:
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
        return Markup("")
    return fill("<h3>occlusion ({what})</h3>{picture}", what=what, picture=_img(result.figure(), "occlusion"))
