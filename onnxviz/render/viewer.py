"""The live viewer's page (``onnxviz serve``) and the activation sprite its grid is cut from.

The page is one HTML document filled from results the server already has (the layer table, the
image names, the galleries found under ``--state``); everything after that is fetched by the
viewer's script from the JSON API. Every name in it comes from files onnxviz did not write, so the
page is built only with ``markup.fill``, which escapes each value.

The activation grid is one PNG per (image, layer): every map on the layer's shared scale, as in
``ActivationGrid.figure``, in ``SPRITE_COLUMNS`` columns of ``SPRITE_TILE`` pixels without gaps,
so the script can show channel ``c`` as the tile at ``(c % columns, c // columns)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from onnxviz.render.markup import Markup, fill, join, url

SPRITE_TILE = 48
SPRITE_COLUMNS = 16
RULES = ("deconvnet", "guided", "saliency")


def activation_sprite(maps: np.ndarray) -> np.ndarray:
    """Maps (C, h, w) as one uint8 RGB sheet: |map| / the layer's peak, each tile ``SPRITE_TILE``
    square (nearest-neighbour, so a 4×4 map stays readable), channel c at row c // columns."""
    peak = float(np.abs(maps).max()) or 1.0
    columns = min(SPRITE_COLUMNS, len(maps))
    rows = math.ceil(len(maps) / columns)
    sheet = np.zeros((rows * SPRITE_TILE, columns * SPRITE_TILE), np.uint8)
    for index, fmap in enumerate(maps):
        grey = np.clip(np.abs(fmap) / peak * 255, 0, 255).astype(np.uint8)
        row, col = divmod(index, columns)
        tile = cv2.resize(grey, (SPRITE_TILE, SPRITE_TILE), interpolation=cv2.INTER_NEAREST)
        sheet[row * SPRITE_TILE : (row + 1) * SPRITE_TILE, col * SPRITE_TILE : (col + 1) * SPRITE_TILE] = tile
    return cv2.cvtColor(sheet, cv2.COLOR_GRAY2RGB)


@dataclass(frozen=True)
class Gallery:
    """One gallery found under ``--state``: a title and (picture path relative to the state folder,
    caption) pairs."""

    title: str
    pictures: list[tuple[str, str]]


def _layer_rows(layers: list[dict]) -> Markup:
    """The layer table; rows of 4-D layers (feature maps) can be selected, the others are listed."""
    return join(
        fill(
            '<tr class="{kind}" data-node="{alias}" tabindex="{tab}"><td>{alias}</td><td>{op}</td><td>{shape}</td>'
            "<td>{field}</td><td>{jump}</td><td class=node>{node}</td></tr>",
            kind="maps" if len(row["shape"]) == 4 else "flat",
            tab="0" if len(row["shape"]) == 4 else "-1",
            alias=row["alias"],
            op=row["op"],
            shape="×".join(map(str, row["shape"])),
            field="×".join(map(str, row["receptive_field"])) if row["receptive_field"] else "whole input",
            jump="×".join(map(str, row["jump"])) if row["jump"] else "",
            node=row["node"],
        )
        for row in layers
    )


def _galleries(galleries: list[Gallery]) -> Markup:
    if not galleries:
        return fill("<p class=dim>No top-k or maximisation outputs under --state.</p>")
    return join(
        fill(
            "<h3>{title}</h3><div class=gallery>{pictures}</div>",
            title=gallery.title,
            pictures=join(
                fill(
                    '<figure><img loading="lazy" src="/state/{src}" alt="{caption}"><figcaption>{caption}'
                    "</figcaption></figure>",
                    src=url(path),
                    caption=caption,
                )
                for path, caption in gallery.pictures
            ),
        )
        for gallery in galleries
    )


def viewer_page(table: dict, images: list[str], galleries: list[Gallery], occlusion: tuple[int, int]) -> str:
    """The viewer's HTML: ``table`` is ``LayerTable.summary()``, ``images`` the names under
    ``--images`` (relative paths), ``galleries`` what ``--state`` holds, ``occlusion`` the patch
    and stride the occlusion form starts with."""
    options = join(  # the first picture is on show when the page opens
        fill(
            '<option value="{name}"{selected}>{name}</option>',
            name=name,
            selected=Markup(" selected" if i == 0 else ""),
        )
        for i, name in enumerate(images)
    )
    rules = join(
        fill(
            '<label><input type=radio name=rule value="{rule}"{checked}> {rule}</label>',
            rule=rule,
            checked=Markup(" checked") if rule == RULES[0] else Markup(""),
        )
        for rule in RULES
    )
    model = (table["model"] or "model").replace("\\", "/").rsplit("/", 1)[-1]
    return fill(
        TEMPLATE,
        model=model,
        input=table["input"],
        shape="×".join(map(str, table["input_shape"])),
        layout=table["layout"].upper(),
        rows=_layer_rows(table["layers"]),
        options=options,
        rules=rules,
        tile=SPRITE_TILE,
        columns=SPRITE_COLUMNS,
        galleries=_galleries(galleries),
        patch=occlusion[0],
        stride=occlusion[1],
    )


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>onnxviz · {model}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/viewer.css"></head>
<body data-tile="{tile}" data-columns="{columns}">
<header><h1>onnxviz · {model}</h1><p>{input} {shape} ({layout}) ·
arrow keys: ←/→ channel, ↑/↓ layer</p><p id="status" role="status"></p></header>
<main>
<section id="image-section"><h2>Image</h2>
<label>folder <select id="image-picker"><option value="">(choose)</option>{options}</select></label>
<label>or upload <input type="file" id="upload" accept="image/*"></label>
<div><img id="picture" alt="the current image at the model's input size"></div></section>
<section id="layer-section"><h2>Layers</h2>
<table id="layers"><thead><tr><th>alias</th><th>op</th><th>shape</th><th>receptive field</th><th>jump</th>
<th>node</th></tr></thead><tbody>{rows}</tbody></table></section>
<section id="activation-section"><h2>Activations <span id="layer-name"></span></h2>
<p id="activation-caption" class=dim>Pick an image and a layer.</p><div id="grid"></div></section>
<section id="projection-section"><h2>Projection</h2><div id="rules">{rules}</div>
<div><img id="projection" alt="projection of the selected channel"></div>
<p id="projection-caption" class=dim>Click a channel.</p></section>
<section id="occlusion-section"><h2>Occlusion</h2>
<label>patch <input id="patch" type=number min=1 value={patch}></label>
<label>stride <input id="stride" type=number min=1 value={stride}></label>
<button id="occlude" type=button>run</button> <progress id="occlusion-progress" value=0 max=1></progress>
<div><img id="heatmap" alt="occlusion heatmap"></div><p id="occlusion-caption" class=dim></p></section>
<section id="explain-section"><h2>Explain</h2>
<label>method <select id="method-picker"></select></label>
<label>target <input id="target" type=text placeholder="top-1 class"
title="a class K, detection:N, box:X1,Y1,X2,Y2[:K], mask:predicted:K or NAME[0,i,...]"></label>
<button id="explain" type=button>run</button>
<label id="segment-label" hidden>segmentation class <select id="segment-class"></select></label>
<div class=side><img id="explain-image" alt="the current image"><img id="explain-picture"
alt="the chosen method's map of the current image"></div>
<p id="explain-caption" class=dim>A cam is drawn over the image, an attribution beside it. On a detector, click a
detection to explain it; on a segmenter, pick a class.</p></section>
<section id="analysis-section"><h2>Analyses</h2>
<label>method <select id="analysis-picker"></select></label>
<button id="analysis-run" type=button>run</button>
<div><img id="analysis-picture" alt="the chosen analysis of the current image"></div>
<pre id="analysis-summary" class=dim></pre></section>
<section id="gallery-section"><h2>Galleries</h2>{galleries}</section>
</main><script src="/static/viewer.js"></script></body></html>
"""
