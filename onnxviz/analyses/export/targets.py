"""The explainer's target, written as ONNX nodes: which score each image's seed is the gradient of.

A target is fixed on the images as given (``fix``: the top-1 class, the prediction that best
overlaps a box, a mask), then seeds any rows of the target tensor with what was fixed
(``seed``): ig seeds its path points with their own image's fixed target, as ``attribute`` does,
so a detection is matched once, on the unperturbed image (the contract of gradient methods).

- ``top1`` / ``input``: a class (flat index) of a classifier's output, each image's top-1 or an
  int64 input ``target`` (N,).
- ``box``: a detector's output in one of ``targets/layouts.py``'s layouts; inputs ``box`` float32
  (N, 4) x1, y1, x2, y2 in input pixels and ``box_class`` int64 (N,), −1 for the matched
  prediction's best class. The prediction with the highest IoU with the box (boxes from the
  layout's cx, cy, w, h; the first on ties, as numpy's argmax) is matched, and its class score
  (YOLOv5: objectness × class score) is the target's: ``--target box:X1,Y1,X2,Y2[:K]``.
- ``mask``: a segmenter's output (N, C, h, w); inputs ``mask`` float32 (N, h, w) (weights, 0/1)
  and ``mask_class`` int64 (N,); the score is Σ of class K's logits weighted by the mask:
  ``--target mask:PNG:K``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from onnx import TensorProto

from onnxviz.analyses.export.heads import Head, target_seed
from onnxviz.errors import UsageError
from onnxviz.targets.layouts import DetectorLayout, Ultralytics, layout_of

TARGET_INPUT = "target"
BOX_INPUT, BOX_CLASS_INPUT = "box", "box_class"
MASK_INPUT, MASK_CLASS_INPUT = "mask", "mask_class"
TARGETS = ("top1", "input", "box", "mask")
BEST_CLASS = -1  # box_class: the matched prediction's best class


class ExplainerTarget(ABC):
    """One kind of target: the inputs it reads, what it fixes per image and the seed it writes."""

    @abstractmethod
    def declare(self, head: Head, batch: str) -> None:
        """The explainer inputs this target reads (batch axis named ``batch``)."""

    @abstractmethod
    def fix(self, head: Head, logits: str) -> list[str]:
        """What is held per image (tensors with the batch axis first), read from ``logits``: the
        target tensor's rows of the images as given."""

    @abstractmethod
    def seed(self, head: Head, logits: str, fixed: list[str]) -> tuple[str, str]:
        """(seed, score) of rows ``logits`` of the target tensor at targets ``fixed`` (one row each)."""


class ClassTarget(ExplainerTarget):
    """One element of the target tensor: each image's top-1, or the int64 input ``target``."""

    def __init__(self, count: int, given: bool) -> None:
        self.count, self.given = count, given

    def declare(self, head: Head, batch: str) -> None:
        if self.given:
            head.input(TARGET_INPUT, [batch], TensorProto.INT64)

    def fix(self, head: Head, logits: str) -> list[str]:
        if self.given:
            return [TARGET_INPUT]
        return [head.op("ArgMax", [head.op("Flatten", [logits], axis=1)], axis=1, keepdims=0)]

    def seed(self, head: Head, logits: str, fixed: list[str]) -> tuple[str, str]:
        return target_seed(head, logits, self.count, fixed[0])


def _column(head: Head, x: str, rank: int) -> str:
    """(N,) → (N, 1, …, 1) of ``rank`` axes, to compare with positions along another axis."""
    return head.op("Reshape", [x, head.ints([-1, *[1] * (rank - 1)])])


def _hot(head: Head, where: str, length: int, axis: int, rank: int) -> str:
    """float32 one where the position along ``axis`` (of ``length``) equals ``where`` (N,):
    broadcastable to rank ``rank``, batch first."""
    shape = [1] * rank
    shape[axis] = length
    positions = head.const(np.arange(length, dtype=np.int64).reshape(shape), "positions")
    return head.op("Cast", [head.op("Equal", [positions, _column(head, where, rank)])], to=TensorProto.FLOAT)


def _int(head: Head, value: int) -> str:
    return head.const(np.asarray(value, np.int64), "offset")


def _part(head: Head, x: str, start: int, end: int, axis: int) -> str:
    return head.op("Slice", [x, head.ints([start], "starts"), head.ints([end], "ends"), head.ints([axis], "axes")])


class BoxTarget(ExplainerTarget):
    """The prediction best overlapping the input ``box``, class ``box_class`` or its best."""

    def __init__(self, layout: DetectorLayout, predictions: int) -> None:
        self.layout, self.predictions = layout, predictions
        self.ultralytics = isinstance(layout, Ultralytics)
        self.width = (4 if self.ultralytics else 5) + layout.classes  # values per prediction

    def declare(self, head: Head, batch: str) -> None:
        head.input(BOX_INPUT, [batch, 4])
        head.input(BOX_CLASS_INPUT, [batch], TensorProto.INT64)

    def _by_prediction(self, head: Head, logits: str) -> str:
        """The detector output as (N, predictions, values of one prediction)."""
        return head.op("Transpose", [logits], perm=[0, 2, 1]) if self.ultralytics else logits

    def _class_scores(self, head: Head, rows: str) -> str:
        """(N, P, nc) each prediction's class scores as the target scores them."""
        if self.ultralytics:
            return _part(head, rows, 4, self.width, 2)
        return head.op("Mul", [_part(head, rows, 4, 5, 2), _part(head, rows, 5, self.width, 2)])

    @staticmethod
    def _corners(head: Head, rows: str) -> tuple[str, str]:
        """(x1, y1) and (x2, y2) of every prediction, (N, P, 2) each, from its cx, cy, w, h."""
        centre, size = _part(head, rows, 0, 2, 2), _part(head, rows, 2, 4, 2)
        half = head.op("Mul", [size, head.scalar(0.5, "half")])
        return head.op("Sub", [centre, half]), head.op("Add", [centre, half])

    def _overlaps(self, head: Head, rows: str) -> str:
        """(N, P, 1) the IoU of each image's box with each of its predictions (0 where the union is empty)."""
        low, high = self._corners(head, rows)
        box = head.op("Unsqueeze", [BOX_INPUT, head.ints([1], "axes")])  # (N, 1, 4)
        box_low, box_high = _part(head, box, 0, 2, 2), _part(head, box, 2, 4, 2)
        sides = head.op("Sub", [head.op("Min", [high, box_high]), head.op("Max", [low, box_low])])
        inter = self._area(head, sides)
        areas = head.op(
            "Add",
            [self._area(head, head.op("Sub", [high, low])), self._area(head, head.op("Sub", [box_high, box_low]))],
        )
        union = head.op("Sub", [areas, inter])
        zero = head.scalar(0.0, "zero")
        empty = head.op("Not", [head.op("Greater", [union, zero])])
        safe = head.op("Where", [empty, head.scalar(1.0, "one"), union])
        return head.op("Where", [empty, zero, head.op("Div", [inter, safe])])

    @staticmethod
    def _area(head: Head, sides: str) -> str:
        """(N, P) width × height of (N, P, 2) sides, each clipped at 0."""
        clipped = head.op("Relu", [sides])
        return head.op("Mul", [_part(head, clipped, 0, 1, 2), _part(head, clipped, 1, 2, 2)])

    def fix(self, head: Head, logits: str) -> list[str]:
        rows = self._by_prediction(head, logits)
        overlaps = head.op("Squeeze", [self._overlaps(head, rows), head.ints([2], "axes")])
        prediction = head.op("ArgMax", [overlaps], axis=1, keepdims=0)  # (N,)
        picked = head.op("Unsqueeze", [prediction, head.ints([1, 2], "axes")])
        chosen = head.op("Expand", [picked, head.ints([1, 1, self.layout.classes])])
        scores = head.op("GatherElements", [self._class_scores(head, rows), chosen], axis=1)  # (N, 1, nc)
        best = head.op("ArgMax", [scores], axis=2, keepdims=0)
        best = head.op("Reshape", [best, head.ints([-1])])
        unset = head.op("Less", [BOX_CLASS_INPUT, _int(head, 0)])
        return [prediction, head.op("Where", [unset, best, BOX_CLASS_INPUT])]

    def seed(self, head: Head, logits: str, fixed: list[str]) -> tuple[str, str]:
        prediction, klass = fixed
        if self.ultralytics:  # (N, 4 + nc, P): one where row 4 + K meets column p
            row = _hot(head, head.op("Add", [klass, _int(head, 4)]), self.width, 1, 3)
            seed = head.op("Mul", [row, _hot(head, prediction, self.predictions, 2, 3)])
            return seed, head.reduce("ReduceSum", head.op("Mul", [logits, seed]), [1, 2], keepdims=0)
        # (N, P, 5 + nc): the score objectness × class score; its gradient on row p is the class
        # score at the objectness column and the objectness at the class's column
        on_row = _hot(head, prediction, self.predictions, 1, 3)
        values = head.reduce("ReduceSum", head.op("Mul", [logits, on_row]), [1], keepdims=1)  # (N, 1, 5 + nc)
        klass_column = _hot(head, head.op("Add", [klass, _int(head, 5)]), self.width, 2, 3)
        objectness = _part(head, values, 4, 5, 2)
        class_score = head.reduce("ReduceSum", head.op("Mul", [values, klass_column]), [2], keepdims=1)
        objectness_column = head.const(np.eye(1, self.width, 4, dtype=np.float32).reshape(1, 1, -1), "objectness")
        gradient = head.op(
            "Add", [head.op("Mul", [objectness_column, class_score]), head.op("Mul", [klass_column, objectness])]
        )
        score = head.op("Reshape", [head.op("Mul", [objectness, class_score]), head.ints([-1])])
        return head.op("Mul", [on_row, gradient]), score


class MaskTarget(ExplainerTarget):
    """Class ``mask_class``'s logits weighted by the input ``mask`` and summed."""

    def __init__(self, classes: int, size: tuple[int, int]) -> None:
        self.classes, self.size = classes, size

    def declare(self, head: Head, batch: str) -> None:
        head.input(MASK_INPUT, [batch, *self.size])
        head.input(MASK_CLASS_INPUT, [batch], TensorProto.INT64)

    def fix(self, head: Head, logits: str) -> list[str]:
        return [MASK_INPUT, MASK_CLASS_INPUT]

    def seed(self, head: Head, logits: str, fixed: list[str]) -> tuple[str, str]:
        mask, klass = fixed
        weights = head.op("Unsqueeze", [mask, head.ints([1], "axes")])
        seed = head.op("Mul", [_hot(head, klass, self.classes, 1, 4), weights])
        return seed, head.reduce("ReduceSum", head.op("Mul", [logits, seed]), [1, 2, 3], keepdims=0)


def explainer_target(kind: str, tensor: str, shape: tuple[int, ...]) -> ExplainerTarget:
    """The target ``kind`` on the target tensor ``tensor`` of one image's shape ``shape``, or why
    the model's output does not have what it reads."""
    if kind in ("top1", "input"):
        return ClassTarget(int(np.prod(shape[1:])), kind == "input")
    if kind == "box":
        try:
            layout = layout_of(np.zeros(shape, np.float32), tensor, "box")
        except UsageError as error:
            raise UsageError(
                error.message,
                "--target box reads a detector's output; export a segmenter with --target mask, a classifier "
                "with --target top1 or input.",
            ) from None
        return BoxTarget(layout, shape[2] if isinstance(layout, Ultralytics) else shape[1])
    if len(shape) != 4:
        why = "a detector's" if len(shape) == 3 else "a classifier's" if len(shape) == 2 else "not a segmenter's"
        raise UsageError(
            f"A mask target reads a segmentation output (1, C, h, w), but '{tensor}' has shape {list(shape)} ({why}).",
            "Export a detector with --target box, a classifier with --target top1 or input.",
        )
    return MaskTarget(shape[1], (shape[2], shape[3]))
