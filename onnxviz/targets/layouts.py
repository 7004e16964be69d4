"""How a detector's output tensor holds its predictions, recognised from the tensor's shape.

- ultralytics (YOLOv5u, YOLOv8, YOLO11 as ``model.export(format="onnx")`` writes them):
  ``(1, 4 + nc, N)``, rows cx, cy, w, h, then the nc class scores (sigmoid already applied);
- YOLOv5 (its own ``export.py``): ``(1, N, 5 + nc)``, columns cx, cy, w, h, objectness, then the
  class scores; a class's score is objectness × class score.

Boxes are in input pixels. A layout turns one image's value into ``Predictions`` (boxes as x1, y1,
x2, y2 and the (N, nc) class scores), names the tensor element of a prediction's class score and
writes the gradient of that score with respect to the tensor (``seed_into``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from onnxviz.errors import UsageError
from onnxviz.graph.detector_join import FLAGS, JOINED


@dataclass(frozen=True)
class Predictions:
    """One image's predictions: ``boxes`` (N, 4) x1, y1, x2, y2 in input pixels, ``scores``
    (N, nc) each class's score as the target scores it."""

    boxes: np.ndarray
    scores: np.ndarray


def corners(centred: np.ndarray) -> np.ndarray:
    """(N, 4) cx, cy, w, h → x1, y1, x2, y2."""
    cx, cy, w, h = (centred[:, i] for i in range(4))
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The intersection over union of one x1, y1, x2, y2 box with each row of ``boxes``."""
    return pairwise_iou(np.asarray(box)[None], boxes)[0]


def pairwise_iou(rows: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(R, B) IoUs of each of ``rows`` with each of ``boxes`` (x1, y1, x2, y2), 0 where both are empty."""
    x1 = np.maximum(rows[:, None, 0], boxes[None, :, 0])
    y1 = np.maximum(rows[:, None, 1], boxes[None, :, 1])
    x2 = np.minimum(rows[:, None, 2], boxes[None, :, 2])
    y2 = np.minimum(rows[:, None, 3], boxes[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = _areas(rows)[:, None] + _areas(boxes)[None] - inter
    return np.divide(inter, union, out=np.zeros_like(inter, dtype=np.float64), where=union > 0)


def _areas(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


class DetectorLayout(ABC):
    """One way of writing predictions into a tensor of one image (batch axis of 1)."""

    name: str
    classes: int

    @abstractmethod
    def predictions(self, value: np.ndarray) -> Predictions:
        """The predictions of one image's value (1, ...)."""

    @abstractmethod
    def index(self, prediction: int, klass: int) -> tuple[int, ...]:
        """The tensor element holding ``prediction``'s class ``klass`` score (batch index 0)."""

    @abstractmethod
    def seed_into(self, row: np.ndarray, prediction: int, klass: int, value: np.ndarray | None) -> None:
        """∂score/∂tensor of ``prediction``'s class ``klass`` score for one image, into ``row``."""

    def check_class(self, klass: int, shape: tuple[int, ...], tensor: str) -> None:
        if not 0 <= klass < self.classes:
            raise UsageError(
                f"Class {klass} does not exist: the detector output '{tensor}' has shape {list(shape)} "
                f"({self.name} layout), i.e. classes 0…{self.classes - 1}.",
                f"Pick a class in 0…{self.classes - 1}, or leave :K out for the matched prediction's best class.",
            )


@dataclass(frozen=True)
class Ultralytics(DetectorLayout):
    """(1, 4 + nc, N): rows cx, cy, w, h, then the class scores."""

    classes: int
    name: str = "ultralytics (1, 4+nc, N)"

    def predictions(self, value: np.ndarray) -> Predictions:
        rows = value[0].astype(np.float64)
        return Predictions(corners(rows[:4].T), rows[4:].T)

    def index(self, prediction: int, klass: int) -> tuple[int, ...]:
        return (0, 4 + klass, prediction)

    def seed_into(self, row: np.ndarray, prediction: int, klass: int, value: np.ndarray | None) -> None:
        row[4 + klass, prediction] = 1.0


@dataclass(frozen=True)
class YoloV5(DetectorLayout):
    """(1, N, 5 + nc): columns cx, cy, w, h, objectness, then the class scores; the score of a
    class is objectness × class score, so its gradient needs the values (``seed_into``)."""

    classes: int
    unperturbed: np.ndarray | None = field(default=None, compare=False)  # the value resolved on
    name: str = "YOLOv5 (1, N, 5+nc)"

    def predictions(self, value: np.ndarray) -> Predictions:
        columns = value[0].astype(np.float64)
        return Predictions(corners(columns[:, :4]), columns[:, 4:5] * columns[:, 5:])

    def index(self, prediction: int, klass: int) -> tuple[int, ...]:
        return (0, prediction, 5 + klass)

    def seed_into(self, row: np.ndarray, prediction: int, klass: int, value: np.ndarray | None) -> None:
        value = self.unperturbed if value is None else value  # a caller without the values: linearised there
        row[prediction, 4] = value[0, prediction, 5 + klass]
        row[prediction, 5 + klass] = value[0, prediction, 4]


def layout_of(value: np.ndarray, tensor: str, kind: str) -> DetectorLayout:
    """The layout of a detector output, from its shape, or why it is not one."""
    shape = list(value.shape)
    if tensor == JOINED and value.ndim == 3:  # --boxes/--scores joined: ultralytics' layout at any N
        return Ultralytics(value.shape[1] - 4, "--boxes/--scores joined as (1, 4+nc, N)")
    if value.ndim == 3 and 5 <= value.shape[1] < value.shape[2]:
        return Ultralytics(value.shape[1] - 4)
    if value.ndim == 3 and 6 <= value.shape[2] < value.shape[1]:
        return YoloV5(value.shape[2] - 5, value)
    if value.ndim == 4:
        why = "a (1, C, h, w) output is a segmenter's"
        hint = f"Explain a class's pixels instead: --target mask:predicted:K (K in 0…{value.shape[1] - 1})."
    elif value.ndim == 2:
        why = "a (1, classes) output is a classifier's"
        hint = "Explain a class instead: --target K."
    else:
        why = "its layout is neither ultralytics' (1, 4+nc, N) nor YOLOv5's (1, N, 5+nc)"
        hint = (
            "For another detector, name its pre-NMS boxes (1, N, 4; x1, y1, x2, y2) and class scores "
            f"(1, N, nc): {FLAGS} (`onnxviz layers` lists the tensors)."
        )
    raise UsageError(f"A {kind} target reads a detector's output, but '{tensor}' has shape {shape}: {why}.", hint)
