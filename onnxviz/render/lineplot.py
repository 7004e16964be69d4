"""Line plots (objective curves) drawn by matplotlib into an RGB array, to sit beside tiles."""

from __future__ import annotations

import numpy as np

DPI = 100


def line_plot(
    curves: np.ndarray, labels: list[str], title: str, xlabel: str, ylabel: str, height: int = 360
) -> np.ndarray:
    """One line per row of ``curves`` (lines × points), labelled, as uint8 RGB of about ``height`` px."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # 0.2 s to import: only when drawn
    from matplotlib.figure import Figure

    height = max(height, 240)
    figure = Figure(figsize=(height * 1.4 / DPI, height / DPI), dpi=DPI)
    axes = figure.add_subplot()
    for curve, label in zip(curves, labels, strict=True):
        axes.plot(np.arange(len(curve)), curve, label=label, linewidth=1.2)
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel, fontsize=9)
    axes.set_ylabel(ylabel, fontsize=9)
    axes.tick_params(labelsize=8)
    axes.grid(alpha=0.3)
    if 1 < len(labels) <= 16:
        axes.legend(fontsize=7, ncol=2 if len(labels) > 8 else 1)
    figure.tight_layout()
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
