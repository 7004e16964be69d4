"""Curves drawn with matplotlib (Agg, off screen) and returned as an RGB array like every picture.

The invariance figure follows Zeiler & Fergus Fig. 5: at the left the transformed inputs (one row
per image, a few amounts), then one panel per quantity (a layer's feature distance, the class
probability) with the amount on the horizontal axis and one line per image, each image keeping
its colour from the thumbnails' frames to every panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PANEL_INCHES = 3.2
THUMB_INCHES = 0.72
DPI = 100


@dataclass(frozen=True)
class Panel:
    """One plot: ``values`` (images, amounts), drawn against the amounts."""

    title: str
    y_label: str
    values: np.ndarray
    unit_range: bool = False  # a probability: the axis spans [0, 1]


@dataclass(frozen=True)
class Thumbnails:
    """The transformed inputs shown: ``pictures`` uint8 (images, k, H, W, 3), ``labels`` per column."""

    pictures: np.ndarray
    labels: list[str]


def curves_figure(
    title: str, x_label: str, amounts: list[float], names: list[str], panels: list[Panel], thumbnails: Thumbnails
) -> np.ndarray:
    """Thumbnails beside the panels, one line per image in each; uint8 RGB (H, W, 3).

    Texts are drawn as they are: a ``$`` in a file or layer name is not read as mathtext."""
    from matplotlib import rc_context  # matplotlib costs 0.2 s to import: only when a plot is drawn

    with rc_context({"text.parse_math": False}):
        return _draw(title, x_label, amounts, names, panels, thumbnails)


def _draw(
    title: str, x_label: str, amounts: list[float], names: list[str], panels: list[Panel], thumbnails: Thumbnails
) -> np.ndarray:
    images, shown = thumbnails.pictures.shape[:2]
    thumbs_width = THUMB_INCHES * shown + 0.3
    height = max(PANEL_INCHES + 0.9, THUMB_INCHES * images + 1.4)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(thumbs_width + PANEL_INCHES * len(panels), height), dpi=DPI)
    FigureCanvasAgg(figure)
    ratios = [thumbs_width / PANEL_INCHES] + [1.0] * len(panels)
    layout = figure.add_gridspec(1, 1 + len(panels), width_ratios=ratios, left=0.02, right=0.98, wspace=0.35)
    colours = [f"C{i % 10}" for i in range(images)]
    _draw_thumbnails(figure, layout[0, 0], thumbnails, colours, height)
    lines = []
    for column, panel in enumerate(panels, start=1):
        axes = figure.add_subplot(layout[0, column])
        lines = _draw_panel(axes, panel, amounts, colours, x_label)
    figure.legend(lines, names, loc="lower center", ncol=min(len(names), 4), frameon=False, fontsize=8)
    figure.suptitle(title, fontsize=11)
    figure.subplots_adjust(top=1 - 0.55 / height, bottom=(0.75 + 0.18 * ((len(names) - 1) // 4)) / height)
    figure.canvas.draw()
    return np.ascontiguousarray(np.asarray(figure.canvas.buffer_rgba())[:, :, :3])


def _draw_panel(axes, panel: Panel, amounts: list[float], colours: list[str], x_label: str) -> list:
    """One quantity against the amounts, a line per image; returns the lines for the legend."""
    lines = [
        axes.plot(amounts, row, color=colour, marker="o", markersize=2.5, linewidth=1.2)[0]
        for row, colour in zip(panel.values, colours, strict=True)
    ]
    axes.set_title(panel.title, fontsize=9)
    axes.set_xlabel(x_label, fontsize=8)
    axes.set_ylabel(panel.y_label, fontsize=8)
    axes.tick_params(labelsize=7)
    axes.grid(True, color="#dddddd", linewidth=0.6)
    if panel.unit_range:
        axes.set_ylim(-0.03, 1.03)
    return lines


def _draw_thumbnails(figure: Figure, cell, thumbnails: Thumbnails, colours: list[str], height: float) -> None:
    """A grid of small axes: rows = images (framed in the image's colour), columns = amounts."""
    images, shown = thumbnails.pictures.shape[:2]
    rows_height = THUMB_INCHES * images / (height - 1.3)
    outer = cell.subgridspec(3, 1, height_ratios=[1 - rows_height, 2 * rows_height, 1 - rows_height], hspace=0)
    grid = outer[1, 0].subgridspec(images, shown, wspace=0.08, hspace=0.08)
    for row in range(images):
        for column in range(shown):
            axes = figure.add_subplot(grid[row, column])
            axes.imshow(thumbnails.pictures[row, column], interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            for spine in axes.spines.values():
                spine.set_color(colours[row])
                spine.set_linewidth(2)
            if row == 0:
                axes.set_title(thumbnails.labels[column], fontsize=7)
