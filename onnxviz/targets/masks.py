"""Segmentation targets: ``mask:PNG:K`` and ``mask:predicted:K``.

A segmenter's output is ``(1, C, h, w)``, one logit per class and pixel. The score is the sum of
class K's logits over a mask, pytorch-grad-cam's ``SemanticSegmentationTarget``: the pixels > 0 of
a greyscale PNG (resized to (h, w) by ``cv2.resize`` with ``INTER_NEAREST``), or the pixels whose
argmax is K on the unperturbed image. The mask is then fixed, for gradient and perturbation
methods alike, so a perturbed copy scores class K on the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from onnxviz.data.preprocess import decoded
from onnxviz.errors import UsageError
from onnxviz.graph.model import ModelGraph
from onnxviz.render.detections import class_overlay
from onnxviz.runtime.projector import seeded_tensor
from onnxviz.targets.base import ResolvedTarget, Target, per_image

PREDICTED = "predicted"
ASPECT_TOLERANCE = 0.02  # a mask whose height/width differs more than this cannot be resized to the output's


@dataclass(frozen=True)
class ResolvedMask(ResolvedTarget):
    """Class ``class_index``'s logits summed over ``mask`` (h, w); ``classes``: the unperturbed
    output's argmax per pixel (the picture's class overlay)."""

    mask: np.ndarray | None = field(default=None, compare=False)
    classes: np.ndarray | None = field(default=None, compare=False)

    def scores(self, values: np.ndarray) -> np.ndarray:
        return (values[:, self.class_index].astype(np.float64) * self.mask).reshape(len(values), -1).sum(axis=1)

    def seed_into(self, row: np.ndarray, value: np.ndarray | None = None) -> None:
        row[self.class_index] = self.mask

    def drawn(self, picture: np.ndarray, names: Sequence[str] | None, input_size: tuple[int, int]) -> np.ndarray:
        return class_overlay(picture, self.classes, self.mask)

    def summary(self) -> dict:
        predicted = sorted(int(k) for k in np.unique(self.classes))
        return {**super().summary(), "pixels": int(np.count_nonzero(self.mask)), "predicted": predicted}


@dataclass(frozen=True)
class MaskTarget(Target):
    """Class ``class_index`` of a segmentation output over ``source``'s pixels: a PNG path, or
    ``PREDICTED`` for the pixels the model gives that class."""

    source: str
    class_index: int
    kind: ClassVar[str] = "mask"

    def tensor(self, graph: ModelGraph) -> str:
        if not graph.output_names:
            raise UsageError("The model declares no outputs, so there is no segmentation output for a mask target.")
        return seeded_tensor(graph, graph.output_names[0])

    def resolve(self, graph: ModelGraph, value: np.ndarray) -> ResolvedTarget:
        tensor = self.tensor(graph)
        value = per_image(value, tensor, 2, "A mask target reads a segmentation output (1, C, h, w).")
        shape = list(value.shape)
        if value.ndim != 4:
            raise UsageError(
                f"A mask target reads a segmentation output (1, C, h, w), but '{tensor}' has shape {shape}.",
                "Explain a class with --target K on a classifier, or a detection with --target detection:N "
                "or box:X1,Y1,X2,Y2 on a detector.",
            )
        classes = value.shape[1]
        if not 0 <= self.class_index < classes:
            raise UsageError(
                f"Class {self.class_index} does not exist: the segmentation output '{tensor}' has shape "
                f"{shape}, i.e. classes 0…{classes - 1}.",
                f"Pick a class in 0…{classes - 1}.",
            )
        predicted = value[0].argmax(axis=0)
        if self.source == PREDICTED:
            mask = (predicted == self.class_index).astype(np.float32)
        else:
            mask = _read_mask(Path(self.source), value.shape[2:], tensor, shape)
        if not mask.any():
            where = "no pixel of the image" if self.source == PREDICTED else f"no pixel > 0 in {self.source}"
            raise UsageError(
                f"The mask of class {self.class_index} is empty ({where}), so its score is 0 whatever the "
                f"input: '{tensor}' has shape {shape}.",
                "Pick a class the model predicts somewhere (mask:predicted:K), or give a mask PNG with pixels > 0.",
            )
        score = float((value[0, self.class_index] * mask).sum())
        return ResolvedMask(
            self.kind,
            tensor,
            (0, self.class_index),
            score,
            class_index=self.class_index,
            mask=mask,
            classes=predicted.astype(np.int32),
        )


def _read_mask(path: Path, size: tuple[int, int], tensor: str, shape: list[int]) -> np.ndarray:
    """A PNG's pixels > 0 as greyscale, resized to ``size`` (h, w) by nearest neighbour."""
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else np.zeros(0, np.uint8)
    try:
        picture = decoded(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    except cv2.error:  # a header that claims more pixels than OpenCV allows
        picture = None
    if picture is None:
        raise UsageError(
            f"Cannot read the mask {path}: it is missing or not a picture.",
            "Give a greyscale (or any) PNG whose pixels > 0 are the mask: mask:PATH.png:K.",
        )
    height, width = size
    if abs(picture.shape[0] / picture.shape[1] - height / width) > ASPECT_TOLERANCE * height / width:
        raise UsageError(
            f"The mask {path} is {picture.shape[1]}x{picture.shape[0]} pixels, but the segmentation output "
            f"'{tensor}' has shape {shape} ({width}x{height} pixels): another aspect ratio, so it cannot be "
            "resized onto the output without moving its pixels.",
            f"Draw the mask at the model's input size or at {width}x{height}.",
        )
    return (cv2.resize(picture, (width, height), interpolation=cv2.INTER_NEAREST) > 0).astype(np.float32)


def mask_from_spelling(text: str) -> MaskTarget | None:
    """``mask:PNG:K`` or ``mask:predicted:K``."""
    if not text.startswith("mask:"):
        return None
    source, _, klass = text[len("mask:") :].rpartition(":")
    if not source or not klass.strip().isdigit():
        raise UsageError(
            f"Cannot read the target '{text}': a mask target is mask:PNG:K or mask:predicted:K.",
            "Give the mask (a PNG, or 'predicted' for the pixels the model gives the class) and the class, "
            "e.g. mask:predicted:15.",
        )
    return MaskTarget(source, int(klass))
