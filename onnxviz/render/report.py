"""One self-contained HTML page about a model and a few images: nothing to install to read it.

The page holds the layer table (ops, shapes, receptive fields), then per image: the occlusion
map, the attribution methods side by side and, per layer shown, the strongest channels'
projections and the activation grid; then the invariance curves of all the images, one figure and
table per transform; then whether the methods can be trusted: the sanity checks' grid with each
method's rank correlation to its original map once every layer is randomised, and the deletion
and insertion curves with their areas. Every picture is
embedded as a base64 PNG, so the file can be mailed or attached to a CI run. The page is drawn
from results (``onnxviz.analyses.report.Report``) and computes nothing; every text in it
goes through ``markup.fill``, which escapes it.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from onnxviz.render import pictures as render
from onnxviz.render.markup import Markup, fill, join

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


def page(report) -> str:
    """The HTML of a ``Report``: its ``layers`` table, ``device_note`` and per-image ``images``."""
    table = report.layers
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
        for r in table
    )
    name = Path(table.model).name if table.model else "model"
    parts = [
        fill(
            "<h1>onnxviz report: {name}</h1><p>input {input} {shape} ({layout}), {note}</p>"
            "<h2>Layers</h2><table><tr><th>alias</th><th>node</th><th>op</th><th>shape</th>"
            "<th>receptive field</th><th>jump</th></tr>{rows}</table>",
            name=name,
            input=table.input_name,
            shape=list(table.input_shape),
            layout=table.layout.upper(),
            note=report.device_note,
            rows=rows,
        )
    ]
    parts.extend(_image_section(image) for image in report.images)
    parts.extend(_invariance(curves) for curves in report.invariance)
    if report.sanity is not None:
        parts.append(_trust(report.sanity, report.faithfulness))
    return fill(
        "<!doctype html><html><head><meta charset='utf-8'><title>onnxviz report: {name}</title>"
        "<style>{style}</style></head><body>{body}</body></html>",
        name=name,
        style=Markup(STYLE),
        body=join(parts),
    )


def _image_section(image) -> Markup:
    """One image's section: its occlusion map, its methods side by side and its layers' pictures."""
    section = [fill("<section><h2>{name}</h2>", name=image.name)]
    if image.occlusion is not None:
        section.append(
            fill(
                "<h3>occlusion ({what})</h3>{picture}",
                what=image.occlusion_what,
                picture=_img(image.occlusion.figure(), "occlusion"),
            )
        )
    if image.explanation is not None:
        methods = ", ".join(panel.method for panel in image.explanation.panels)
        section.append(
            fill(
                "<h3>methods side by side ({methods})</h3>{picture}",
                methods=methods,
                picture=_img(image.explanation.figure(), f"{methods} of {image.name}"),
            )
        )
    for layer in image.layers:
        section.append(
            fill(
                "<h3>{alias}</h3>{projections}{activations}",
                alias=layer.alias,
                projections=_img(layer.projection.figure(), f"{layer.alias} projections"),
                activations=_img(layer.activations.figure(), f"{layer.alias} activations"),
            )
        )
    section.append(Markup("</section>"))
    return join(section)


def _invariance(curves) -> Markup:
    """One transform's figure and, per image, the numbers to read off it: the class followed, its
    lowest probability and each layer's largest relative feature distance over the amounts."""
    layers = join(fill("<th>{layer}: largest relative distance</th>", layer=layer) for layer in curves.layers)
    rows = []
    for i, name in enumerate(curves.images):
        followed = curves.label(curves.target_class[i]) if curves.target_class is not None else "–"
        lowest = f"{curves.probability[i].min():.3g}" if curves.probability is not None else "–"
        distances = join(fill("<td>{value}</td>", value=_largest(values[i])) for values in curves.relative)
        rows.append(
            fill(
                "<tr><td>{name}</td><td>{followed}</td><td>{lowest}</td>{distances}</tr>",
                name=Path(name).name,
                followed=followed,
                lowest=lowest,
                distances=distances,
            )
        )
    return fill(
        "<section><h2>invariance to {transform}</h2>{picture}<table><tr><th>image</th><th>class followed</th>"
        "<th>lowest probability</th>{layers}</tr>{rows}</table></section>",
        transform=curves.transform,
        picture=_img(curves.figure(), f"invariance to {curves.transform}"),
        layers=layers,
        rows=join(rows),
    )


def _largest(values: np.ndarray) -> str:
    """The largest finite value, to three digits ("–" where the layer is all zeros: no ratio)."""
    finite = values[np.isfinite(values)]
    return f"{finite.max():.3g}" if finite.size else "–"


def _trust(sanity, curves: list) -> Markup:
    """The sanity grid and, per method and image, Spearman's ρ to the original map with every
    layer randomised (near 0: the map depends on the weights); then the curves and their areas
    (deletion: lower is better, insertion: higher is better)."""
    rows = []
    for method in sanity.spearman:
        for i, name in enumerate(sanity.images):
            rows.append(
                fill(
                    "<tr><td>{method}</td><td>{name}</td><td>{rho}</td><td>{ssim}</td></tr>",
                    method=method,
                    name=Path(name).name,
                    rho=_number(sanity.spearman[method][i, -1]),
                    ssim=_number(sanity.ssim[method][i, -1]),
                )
            )
    areas = []
    for method in curves[0].aucs if curves else []:
        for i, name in enumerate(curves[0].images):
            cells = join(fill("<td>{auc}</td>", auc=_number(c.aucs[method][i])) for c in curves)
            areas.append(
                fill(
                    "<tr><td>{method}</td><td>{name}</td>{cells}</tr>", method=method, name=Path(name).name, cells=cells
                )
            )
    metrics = join(fill("<th>{metric} AUC</th>", metric=c.metric) for c in curves)
    pictures = join(_img(c.figure(), f"{c.metric} curves") for c in curves)
    return fill(
        "<section><h2>can the explanations be trusted?</h2><h3>sanity checks: cascading randomisation</h3>"
        "{grid}<table><tr><th>method</th><th>image</th><th>Spearman ρ, all layers randomised</th>"
        "<th>SSIM, all layers randomised</th></tr>{rows}</table><h3>deletion and insertion</h3>{pictures}"
        "<table><tr><th>method</th><th>image</th>{metrics}</tr>{areas}</table></section>",
        grid=_img(sanity.figure(), "sanity checks"),
        rows=join(rows),
        pictures=pictures,
        metrics=metrics,
        areas=join(areas),
    )


def _number(value: float) -> str:
    """A measure to three digits, "–" where it is undefined (a constant map)."""
    return "–" if not np.isfinite(value) else f"{value:.3g}"
