"""What a detector or a segmenter sees, drawn on the picture beside an explanation's map: the
decoded detections (box, class, score; the explained one in white-outlined yellow) or the
segmentation as a class overlay with the explained mask outlined in white.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from onnxviz.render.pictures import palette, tile_size

Box = Sequence[float]
CHOSEN = (255, 220, 0)
OVERLAY_WEIGHT = 0.45


def _name(names: Sequence[str] | None, klass: int) -> str:
    return names[klass] if names and 0 <= klass < len(names) else f"class {klass}"


def draw_detections(
    picture: np.ndarray,
    detections: Sequence[tuple[Box, int, float]],
    chosen: Box | None,
    names: Sequence[str] | None,
    input_size: tuple[int, int],
) -> np.ndarray:
    """``picture`` (RGB uint8) with each detection (box in input pixels, class, score) drawn in its
    class's colour and labelled, and ``chosen`` (the explained prediction's box) drawn thick."""
    height, width = tile_size(*picture.shape[:2])  # drawn at the size it is shown, so lines stay thin
    shown = np.ascontiguousarray(cv2.resize(picture, (width, height), interpolation=cv2.INTER_LINEAR))
    scale_y, scale_x = height / input_size[0], width / input_size[1]
    thin = max(1, round(min(height, width) / 300))
    colours = palette(max((klass for _, klass, _ in detections), default=0) + 1)

    def corners(box: Box) -> tuple[tuple[int, int], tuple[int, int]]:
        x1, y1, x2, y2 = box
        return (round(x1 * scale_x), round(y1 * scale_y)), (round(x2 * scale_x), round(y2 * scale_y))

    for box, klass, score in detections:
        top_left, bottom_right = corners(box)
        cv2.rectangle(shown, top_left, bottom_right, colours[klass], thin)
        label = f"{_name(names, klass)} {score:.2f}"
        cv2.putText(shown, label, (top_left[0] + 2, max(top_left[1] - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    colours[klass], 1, cv2.LINE_AA)  # fmt: skip
    if chosen is not None:
        top_left, bottom_right = corners(chosen)
        cv2.rectangle(shown, top_left, bottom_right, (255, 255, 255), 2 * thin + 2)
        cv2.rectangle(shown, top_left, bottom_right, CHOSEN, 2 * thin)
    return shown


def class_overlay(picture: np.ndarray, classes: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``picture`` (RGB uint8) under the per-pixel classes (h, w) in distinct colours, the explained
    ``mask`` (h, w, > 0 inside) outlined in white."""
    size = (picture.shape[1], picture.shape[0])
    colours = np.array(palette(int(classes.max()) + 1), np.uint8)
    painted = cv2.resize(colours[classes], size, interpolation=cv2.INTER_NEAREST)
    shown = cv2.addWeighted(picture, 1 - OVERLAY_WEIGHT, painted, OVERLAY_WEIGHT, 0)
    if mask is not None:
        inside = cv2.resize((mask > 0).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(inside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(shown, contours, -1, (255, 255, 255), max(1, round(min(picture.shape[:2]) / 150)))
    return shown
