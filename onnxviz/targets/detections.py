"""Detector targets: ``box:X1,Y1,X2,Y2[:K]`` (the prediction that best overlaps a box) and
``detection:N`` (the N-th strongest detection after onnxviz's own decoding).

A detector's output is read in one of the layouts its exporters write, recognised from its shape
(``layout_of``): ultralytics' YOLOv5u/v8/11 ``(1, 4 + nc, N)`` and YOLOv5's ``(1, N, 5 + nc)``,
boxes as centre x, centre y, width, height in input pixels. A prediction's class-K score is the
class score as the graph outputs it (YOLOv5: objectness × class score), so a box target's gradient
is that of one number the network computes.

Gradient methods fix the matched prediction on the unperturbed image. Perturbation methods
(occlusion, scorecam, ablationcam, rise) match again on every perturbed copy, as
pytorch-grad-cam's ``FasterRCNNBoxScoreTarget`` does: the prediction with the highest IoU with the
matched box counts when that IoU ≥ 0.5 and its best class is the target's class, else the score
is 0 (``ResolvedDetection.scores``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from onnxviz.errors import UsageError
from onnxviz.graph.model import ModelGraph
from onnxviz.render.detections import draw_detections
from onnxviz.targets.base import ResolvedTarget, Target, per_image
from onnxviz.targets.layouts import DetectorLayout, Predictions, iou, layout_of, pairwise_iou

CONFIDENCE = 0.25  # a prediction's best class score kept by the decoding
NMS_IOU = 0.45  # class-wise non-maximum suppression: a weaker box overlapping more than this goes
MATCH_IOU = 0.5  # a perturbed copy's best-overlapping prediction counts from this IoU on
NMS_BLOCK = 512  # candidates whose IoUs with every candidate are computed at once

_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)"
_BOX = re.compile(rf"box:(?P<box>{_NUMBER}(?:,{_NUMBER}){{3}})(?::(?P<klass>\d+))?")
_DETECTION = re.compile(r"detection:(?P<rank>\d+)")


@dataclass(frozen=True)
class Detection:
    """One decoded detection: prediction ``prediction``, its best class, that class's score and
    its box (x1, y1, x2, y2, input pixels)."""

    prediction: int
    class_index: int
    score: float
    box: tuple[float, float, float, float]

    def summary(self) -> dict:
        return {"prediction": self.prediction, "class": self.class_index, "score": self.score, "box": list(self.box)}


def decode(predictions: Predictions) -> list[Detection]:
    """onnxviz's decoding, strongest first: each prediction's best class only, kept when its score
    is ≥ ``CONFIDENCE``; per class, a box overlapping a stronger kept one by IoU > ``NMS_IOU`` is
    suppressed. Ties keep the lower prediction index first."""
    best = predictions.scores.argmax(axis=1)
    confidence = predictions.scores[np.arange(len(best)), best]
    order = np.flatnonzero(confidence >= CONFIDENCE)
    order = order[np.argsort(-confidence[order], kind="stable")]
    alive = np.zeros(len(order), bool)
    for klass in np.unique(best[order]):
        among = np.flatnonzero(best[order] == klass)  # this class's candidates, strongest first
        alive[among] = _survivors(predictions.boxes[order[among]])
    return [
        Detection(int(n), int(best[n]), float(confidence[n]), tuple(float(v) for v in predictions.boxes[n]))
        for n in order[alive]
    ]


def _survivors(boxes: np.ndarray) -> np.ndarray:
    """Greedy NMS over one class's boxes, strongest first: each kept box strikes out the later
    ones it overlaps by more than ``NMS_IOU`` (their IoUs computed a block of rows at a time)."""
    alive = np.ones(len(boxes), bool)
    for start in range(0, len(boxes), NMS_BLOCK):
        rows = boxes[start : start + NMS_BLOCK]
        overlaps = pairwise_iou(rows, boxes[start:]) > NMS_IOU
        for row in range(len(rows)):
            if alive[start + row]:
                alive[start + row + 1 :] &= ~overlaps[row, row + 1 :]
    return alive


@dataclass(frozen=True)
class ResolvedDetection(ResolvedTarget):
    """A detector target fixed for one image: prediction ``prediction``'s class ``class_index``
    score, ``box`` that prediction's box; ``detections``: the image's decoded detections (for the
    picture and ``--json``)."""

    layout: DetectorLayout | None = field(default=None, compare=False)
    prediction: int = 0
    detections: tuple[Detection, ...] = ()

    def scores(self, values: np.ndarray) -> np.ndarray:
        """Each perturbed copy's score: the best-overlapping prediction's class score where it
        still overlaps by ≥ ``MATCH_IOU`` and still has the target's class as its best, else 0."""
        found = np.zeros(len(values), np.float64)
        for row in range(len(values)):
            predictions = self.layout.predictions(values[row : row + 1])
            overlaps = iou(np.asarray(self.box, np.float32), predictions.boxes)
            best = int(overlaps.argmax())
            if overlaps[best] >= MATCH_IOU and int(predictions.scores[best].argmax()) == self.class_index:
                found[row] = predictions.scores[best, self.class_index]
        return found

    def fixed_scores(self, values: np.ndarray) -> np.ndarray:
        """The matched prediction's class score on each row, with no matching again."""
        return np.array(
            [
                self.layout.predictions(values[row : row + 1]).scores[self.prediction, self.class_index]
                for row in range(len(values))
            ]
        )

    def seed_into(self, row: np.ndarray, value: np.ndarray | None = None) -> None:
        self.layout.seed_into(row, self.prediction, self.class_index, value)

    def drawn(self, picture: np.ndarray, names: Sequence[str] | None, input_size: tuple[int, int]) -> np.ndarray:
        found = [(d.box, d.class_index, d.score) for d in self.detections]
        return draw_detections(picture, found, self.box, names, input_size)

    def summary(self) -> dict:
        return {**super().summary(), "detections": [d.summary() for d in self.detections]}


def _resolved(
    kind: str,
    layout: DetectorLayout,
    predictions: Predictions,
    tensor: str,
    chosen: tuple[int, int],
    detections: list[Detection] | None = None,
) -> ResolvedDetection:
    """Prediction ``chosen[0]``'s class ``chosen[1]`` resolved, with the image's whole decoding
    (``detections`` where the caller has decoded already: the decoding is most of a resolve)."""
    prediction, klass = chosen
    return ResolvedDetection(
        kind,
        tensor,
        layout.index(prediction, klass),
        float(predictions.scores[prediction, klass]),
        class_index=klass,
        box=tuple(float(v) for v in predictions.boxes[prediction]),
        layout=layout,
        prediction=prediction,
        detections=tuple(decode(predictions) if detections is None else detections),
    )


def _read(graph: ModelGraph, value: np.ndarray, kind: str) -> tuple[str, DetectorLayout, Predictions]:
    """The detector output's name, its layout and one image's predictions, or why it is not a
    detector's output."""
    tensor = _output(graph, kind)
    try:
        layout = layout_of(per_image(value, tensor, 2, DETECTOR_HINT), tensor, kind)
    except UsageError as error:
        found = pre_nms_tensors(graph) if value.ndim == 3 else []
        if not found:
            raise
        named = ", ".join(f"'{name}' {list(shape)}" for name, shape in found)
        hint = f"Its tensors shaped like pre-NMS boxes and class scores: {named}; read them as a detector's with "
        raise UsageError(error.message, hint + f"--boxes {found[0][0]} --scores {found[1][0]}.") from None
    return tensor, layout, layout.predictions(value)


def pre_nms_tensors(graph: ModelGraph) -> list[tuple[str, tuple[int, ...]]]:
    """Tensors shaped like another detector's pre-NMS boxes ((1, N, 4)) and class scores ((1, N, nc))
    for one N, boxes first; empty where the input's size is not fixed or none fit."""
    if not all(isinstance(d, int) and d > 0 for d in graph.input_dims[1:]):
        return []
    shapes = graph.shapes((1, *graph.input_dims[1:]))
    rank3 = [(t, shapes[t]) for t in sorted(graph.signal) if len(shapes.get(t, ())) == 3 and shapes[t][0] == 1]
    order = {out: k for k, node in enumerate(graph.nodes) for out in node.output}

    def preferred(found: tuple[str, tuple[int, ...]]) -> tuple[bool, int]:  # an output, else the latest
        return found[0] not in graph.output_names, -order.get(found[0], 0)

    for name, shape in sorted(rank3, key=preferred):  # boxes that are an output first, as the scores
        if shape[2] == 4 and shape[1] > 4:
            scores = sorted(((t, s) for t, s in rank3 if s[1] == shape[1] and s[2] != 4), key=preferred)
            if scores:
                return [(name, shape), scores[0]]
    return []


def _output(graph: ModelGraph, kind: str) -> str:
    if not graph.output_names:
        raise UsageError(f"The model declares no outputs, so there is no detector output for a {kind} target.")
    return graph.output_names[0]


@dataclass(frozen=True)
class BoxTarget(Target):
    """The prediction whose box has the highest IoU with ``box`` (x1, y1, x2, y2, input pixels);
    its class ``class_index`` score, or its best class's with ``None``."""

    box: tuple[float, float, float, float]
    class_index: int | None = None
    kind: ClassVar[str] = "box"

    def __post_init__(self) -> None:
        x1, y1, x2, y2 = self.box
        if not (x2 > x1 and y2 > y1):
            raise UsageError(
                f"The box {','.join(f'{v:g}' for v in self.box)} is empty: it is written x1,y1,x2,y2 "
                "with x2 > x1 and y2 > y1 (input pixels).",
                "Give the top-left corner, then the bottom-right one, e.g. box:10,20,60,90.",
            )

    def tensor(self, graph: ModelGraph) -> str:
        return _output(graph, "box")

    def resolve(self, graph: ModelGraph, value: np.ndarray) -> ResolvedTarget:
        tensor, layout, predictions = _read(graph, value, self.kind)
        prediction = int(iou(np.asarray(self.box, np.float32), predictions.boxes).argmax())
        klass = int(predictions.scores[prediction].argmax()) if self.class_index is None else self.class_index
        layout.check_class(klass, value.shape, tensor)
        return _resolved(self.kind, layout, predictions, tensor, (prediction, klass))


@dataclass(frozen=True)
class DetectionTarget(Target):
    """The ``rank``-th strongest detection (0: the strongest) after ``decode``; its class's score."""

    rank: int = 0
    kind: ClassVar[str] = "detection"

    def tensor(self, graph: ModelGraph) -> str:
        return _output(graph, "detection")

    def resolve(self, graph: ModelGraph, value: np.ndarray) -> ResolvedTarget:
        tensor, layout, predictions = _read(graph, value, self.kind)
        detections = decode(predictions)
        if self.rank >= len(detections):
            found = f"detections 0…{len(detections) - 1}" if detections else "no detection"
            raise UsageError(
                f"detection:{self.rank} does not exist: onnxviz's decoding (best class ≥ {CONFIDENCE}, "
                f"class-wise NMS at IoU {NMS_IOU}) finds {found} in '{tensor}' (shape {list(value.shape)}, "
                f"{layout.name} layout) on this image.",
                "Pick a detection that exists (--json lists them), or name a box: box:X1,Y1,X2,Y2[:K].",
            )
        chosen = detections[self.rank]
        return _resolved(self.kind, layout, predictions, tensor, (chosen.prediction, chosen.class_index), detections)


DETECTOR_HINT = "Box and detection targets read a detector's output: (1, 4+nc, N) or (1, N, 5+nc)."


def _spelled(text: str, pattern: re.Pattern, spelling: str, example: str) -> re.Match | None:
    """The match of a kind's spelling, None where ``text`` is another kind's, or why it cannot be read."""
    if not text.startswith(spelling.split(":")[0] + ":"):
        return None
    match = pattern.fullmatch(text)
    if match is None:
        raise UsageError(f"Cannot read the target '{text}': {spelling}.", f"Write e.g. {example}.")
    return match


def box_from_spelling(text: str) -> BoxTarget | None:
    """``box:X1,Y1,X2,Y2[:K]``: the prediction best overlapping that box, class K or its best."""
    spelling = "box:X1,Y1,X2,Y2 or box:X1,Y1,X2,Y2:K (input pixels, top-left then bottom-right, then a class)"
    match = _spelled(text, _BOX, spelling, "box:10,20,60,90:0")
    if match is None:
        return None
    box = tuple(float(v) for v in match["box"].split(","))
    return BoxTarget(box, None if match["klass"] is None else int(match["klass"]))


def detection_from_spelling(text: str) -> DetectionTarget | None:
    """``detection:N``: the N-th strongest detection (0: the strongest)."""
    match = _spelled(text, _DETECTION, "detection:N, N counting from 0 (the strongest)", "detection:0")
    return None if match is None else DetectionTarget(int(match["rank"]))
