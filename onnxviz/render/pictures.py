"""Projections and maps → pictures a person can read.

Projections are signed and unnormalised; as in the paper, each is shown centred on grey with
its own contrast: ``128 + 127·p/s``, where ``s`` is a high percentile of ``|p|`` rather than the
maximum, so that one hot pixel does not leave the rest of the picture flat.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from onnxviz.errors import OnnxvizError
from onnxviz.render.outputs import write_bytes

DISPLAY_PERCENTILE = 99.5
MIN_TILE = 192
FONT = cv2.FONT_HERSHEY_SIMPLEX
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)


def projection_to_rgb(projection: np.ndarray, layout: str, order: str) -> np.ndarray:
    """One projection (C, H, W) or (H, W, C) as uint8 RGB, grey = zero signal."""
    hwc = projection if layout == "nhwc" else projection.transpose(1, 2, 0)
    hwc = hwc.astype(np.float32)
    scale = percentile(np.abs(hwc).ravel(), DISPLAY_PERCENTILE)
    if scale <= 0:
        scale = float(np.abs(hwc).max()) or 1.0
    shown = np.clip(128.0 + 127.0 * hwc / scale, 0, 255).astype(np.uint8)
    if shown.shape[2] == 1:
        shown = np.repeat(shown, 3, axis=2)
    elif order == "bgr":
        shown = shown[:, :, ::-1]
    return np.ascontiguousarray(shown[:, :, :3])


def percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear interpolation) from a partial sort of the two order
    statistics it lies between: the first call of ``np.percentile`` in a process imports
    ``numpy.ma`` and costs 25 ms, a sixth of a warm ``project``'s time outside onnxruntime."""
    position = q / 100 * (values.size - 1)
    below = math.floor(position)
    above = min(below + 1, values.size - 1)
    ordered = np.partition(values, [below, above])
    low, high = float(ordered[below]), float(ordered[above])
    return low + (high - low) * (position - below)


def tile_size(height: int, width: int) -> tuple[int, int]:
    """Upscale small inputs by an integer factor so every tile is readable."""
    factor = max(1, math.ceil(MIN_TILE / max(height, width)))
    return height * factor, width * factor


def titled_tile(image: np.ndarray, size: tuple[int, int], lines: list[str]) -> np.ndarray:
    height, width = size
    interpolation = cv2.INTER_NEAREST if image.shape[0] < height else cv2.INTER_AREA
    body = cv2.resize(image, (width, height), interpolation=interpolation)
    line_height = 18
    caption = np.full((line_height * len(lines) + 6, width, 3), BACKGROUND, np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(caption, _fit(text, width), (4, line_height * (i + 1)), FONT, 0.45, INK, 1, cv2.LINE_AA)
    return np.vstack([caption, body])


def grid(tiles: list[np.ndarray], columns: int, gap: int = 6) -> np.ndarray:
    """Tiles of equal size in rows, with a white gap."""
    rows = math.ceil(len(tiles) / columns)
    h, w = tiles[0].shape[:2]
    canvas = np.full((rows * h + (rows + 1) * gap, columns * w + (columns + 1) * gap, 3), BACKGROUND, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        y, x = gap + r * (h + gap), gap + c * (w + gap)
        canvas[y : y + h, x : x + w] = tile
    return canvas


def beside(left: np.ndarray, right: np.ndarray, gap: int = 6) -> np.ndarray:
    height = max(left.shape[0], right.shape[0])
    pad = lambda a: np.vstack([a, np.full((height - a.shape[0], a.shape[1], 3), BACKGROUND, np.uint8)])  # noqa: E731
    return np.hstack([pad(left), np.full((height, gap, 3), BACKGROUND, np.uint8), pad(right)])


def column(images: list[np.ndarray], gap: int = 6) -> np.ndarray:
    """Pictures of any widths one under the other, left-aligned, padded with white to the widest."""
    width = max(image.shape[1] for image in images)
    rows = []
    for image in images:
        rows.append(np.hstack([image, np.full((image.shape[0], width - image.shape[1], 3), BACKGROUND, np.uint8)]))
        rows.append(np.full((gap, width, 3), BACKGROUND, np.uint8))
    return np.vstack(rows[:-1])


def with_header(image: np.ndarray, text: str) -> np.ndarray:
    """A title line above ``image``, widening the canvas (white) where the title needs it."""
    needed = cv2.getTextSize(text, FONT, 0.55, 1)[0][0] + 12
    if needed > image.shape[1]:
        image = np.hstack([image, np.full((image.shape[0], needed - image.shape[1], 3), BACKGROUND, np.uint8)])
    header = np.full((28, image.shape[1], 3), BACKGROUND, np.uint8)
    cv2.putText(header, _fit(text, image.shape[1], 0.55), (6, 20), FONT, 0.55, INK, 1, cv2.LINE_AA)
    return np.vstack([header, image])


def text_block(lines: list[str], title: str, width: int = 720) -> np.ndarray:
    """Lines of text on white under a title: tables (layers, check) drawn as a picture."""
    line_height = 18
    body = np.full((line_height * max(1, len(lines)) + 8, width, 3), BACKGROUND, np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(body, _fit(text, width), (6, line_height * (i + 1)), FONT, 0.45, INK, 1, cv2.LINE_AA)
    return with_header(body, title)


def png_bytes(rgb: np.ndarray) -> bytes:
    try:
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    except cv2.error as exc:
        ok, encoded = False, exc
    if not ok:
        raise OnnxvizError(
            f"OpenCV could not encode a {list(rgb.shape)} {rgb.dtype} picture as PNG.", "Report this with the model."
        )
    return encoded.tobytes()


def save_png(rgb: np.ndarray, path) -> None:
    write_bytes(path, png_bytes(rgb))


def _fit(text: str, width: int, scale: float = 0.45) -> str:
    """Shorten ``text`` from the left until it fits ``width`` pixels."""
    while len(text) > 4 and cv2.getTextSize(text, FONT, scale, 1)[0][0] > width - 8:
        text = "…" + text[2:]
    return text.replace("…", "..")


def heatmap_overlay(
    picture: np.ndarray, scores: np.ndarray, patch: int, stride: int, alpha: float = 0.55
) -> np.ndarray:
    """The score map (one value per patch position, placed at the patch centres) over the picture."""
    height, width = picture.shape[:2]
    normalised = _unit(scores)
    rows, cols = scores.shape
    cells = cv2.resize(normalised, (max(cols, 1) * stride, max(rows, 1) * stride), interpolation=cv2.INTER_LINEAR)
    full = np.full((height, width), np.nan, np.float32)
    top = left = max(0, (patch - stride) // 2)
    full[top : top + cells.shape[0], left : left + cells.shape[1]] = cells[: height - top, : width - left]
    full = np.where(np.isnan(full), normalised.mean() if normalised.size else 0.0, full)
    colours = cv2.cvtColor(cv2.applyColorMap((full * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(picture, 1 - alpha, colours, alpha, 0)


def colorbar(height: int, low: float, high: float, width: int = 70) -> np.ndarray:
    """A vertical JET colour bar labelled with the score range."""
    bar = np.linspace(1, 0, max(height - 40, 2), dtype=np.float32)[:, None].repeat(18, axis=1)
    colours = cv2.cvtColor(cv2.applyColorMap((bar * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    canvas = np.full((height, width, 3), BACKGROUND, np.uint8)
    canvas[20 : 20 + colours.shape[0], 4:22] = colours
    cv2.putText(canvas, f"{high:.3g}", (24, 30), FONT, 0.4, INK, 1, cv2.LINE_AA)
    cv2.putText(canvas, f"{low:.3g}", (24, height - 22), FONT, 0.4, INK, 1, cv2.LINE_AA)
    return canvas


def class_map(classes: np.ndarray, size: tuple[int, int], name) -> tuple[np.ndarray, np.ndarray]:
    """The most-probable-class map in distinct colours, and its legend of class names."""
    unique = [int(c) for c in np.unique(classes)]
    colours = palette(len(unique))
    lookup = {c: colours[i] for i, c in enumerate(unique)}
    image = np.zeros((*classes.shape, 3), np.uint8)
    for c, colour in lookup.items():
        image[classes == c] = colour
    image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    line = 18
    legend = np.full((max(size[0], line * len(unique) + 40), 190, 3), BACKGROUND, np.uint8)
    for i, c in enumerate(unique):
        y = 30 + i * line
        legend[y - 11 : y + 1, 6:18] = lookup[c]
        cv2.putText(legend, _fit(f"{name(c)}", 160), (24, y), FONT, 0.4, INK, 1, cv2.LINE_AA)
    return image, legend


def palette(count: int) -> list[tuple[int, int, int]]:
    """``count`` distinct RGB colours, evenly spread in hue."""
    hues = np.linspace(0, 179, max(count, 1), endpoint=False).astype(np.uint8)
    hsv = np.stack([hues, np.full_like(hues, 200), np.full_like(hues, 230)], axis=1)[None]
    return [tuple(int(v) for v in c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]]


def _unit(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float32)
    span = float(values.max() - values.min()) if values.size else 0.0
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)
