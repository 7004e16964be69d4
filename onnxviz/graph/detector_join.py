"""A detector whose pre-NMS boxes and class scores are two tensors, made one output onnxviz reads.

torchvision-style, SSD- and RetinaNet-style exports give boxes ``(1, N, 4)`` as x1, y1, x2, y2
(input pixels) and class scores ``(1, N, nc)`` as two tensors. ``--boxes NAME --scores NAME``
names them; loading then appends to the graph a few nodes that write them as one tensor in
ultralytics' layout, ``JOINED`` ``(1, 4 + nc, N)`` (boxes as cx, cy, w, h by one MatMul with a
constant matrix, the scores concatenated, then transposed), made the model's first output. Every
target, engine and analysis then works on it unchanged: the class score of a prediction is the
very number the scores tensor holds, so its gradient is the gradient of that number.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import helper, numpy_helper

from onnxviz.errors import UsageError

JOINED = "onnxviz_detections"
FLAGS = "--boxes NAME --scores NAME"
# x1, y1, x2, y2 (rows) → cx, cy, w, h (columns): a row of boxes times this matrix
TO_CENTRES = np.array([[0.5, 0, -1, 0], [0, 0.5, 0, -1], [0.5, 0, 1, 0], [0, 0.5, 0, 1]], np.float32)


def check_pair(boxes: str | None, scores: str | None) -> tuple[str, str] | None:
    """The two names, None when neither is given, or why one alone cannot be used."""
    if boxes is None and scores is None:
        return None
    if boxes is None or scores is None:
        given, missing = ("--boxes", "--scores") if scores is None else ("--scores", "--boxes")
        raise UsageError(
            f"{given} was given without {missing}: a detector's boxes and class scores are read together.",
            f"Give both, {FLAGS} (`onnxviz layers` lists the tensors), or neither for an ultralytics or YOLOv5 output.",
        )
    return boxes, scores


def joined_model(model: onnx.ModelProto, boxes: str, scores: str) -> onnx.ModelProto:
    """A copy of ``model`` with ``JOINED`` computed from ``boxes`` and ``scores`` as its first output."""
    produced = {out for node in model.graph.node for out in node.output} | {i.name for i in model.graph.input}
    for flag, name in (("--boxes", boxes), ("--scores", scores)):
        if name not in produced:
            raise UsageError(
                f"{flag} names the tensor '{name}', which the model does not have.",
                f"Name its pre-NMS boxes and class scores: {FLAGS} (`onnxviz layers` lists the tensors; "
                f"its outputs are {', '.join(o.name for o in model.graph.output) or 'none'}).",
            )
    joined = copy.deepcopy(model)
    graph = joined.graph
    graph.initializer.append(numpy_helper.from_array(TO_CENTRES, f"{JOINED}_to_centres"))
    graph.node.extend(
        [
            helper.make_node(
                "MatMul", [boxes, f"{JOINED}_to_centres"], [f"{JOINED}_centres"], name=f"{JOINED}_centres"
            ),
            helper.make_node(
                "Concat", [f"{JOINED}_centres", scores], [f"{JOINED}_rows"], axis=2, name=f"{JOINED}_rows"
            ),
            helper.make_node("Transpose", [f"{JOINED}_rows"], [JOINED], perm=[0, 2, 1], name=JOINED),
        ]
    )
    output = helper.make_tensor_value_info(JOINED, onnx.TensorProto.FLOAT, ["batch", "fields", "predictions"])
    outputs = [output, *graph.output]
    del graph.output[:]
    graph.output.extend(outputs)
    return joined


def check_shapes(shapes: dict[str, tuple[int, ...]], boxes: str, scores: str) -> None:
    """``boxes`` (1, N, 4) and ``scores`` (1, N, nc) for one N, or why they cannot be joined."""
    box_shape, score_shape = shapes.get(boxes), shapes.get(scores)
    fits = (
        box_shape is not None
        and score_shape is not None
        and len(box_shape) == 3
        and len(score_shape) == 3
        and box_shape[0] == score_shape[0] == 1
        and box_shape[2] == 4
        and box_shape[1] == score_shape[1]
        and score_shape[2] >= 1
    )
    if not fits:
        shown = [list(s) if s is not None else "unknown" for s in (box_shape, score_shape)]
        raise UsageError(
            f"--boxes '{boxes}' has shape {shown[0]} and --scores '{scores}' has shape {shown[1]}: "
            "a detector's pre-NMS boxes are (1, N, 4) as x1, y1, x2, y2 and its class scores (1, N, nc), "
            "for the same N predictions.",
            f"Name two tensors of those shapes with {FLAGS} (`onnxviz layers` lists the tensors and "
            "their shapes); a transposed or batched pair needs the model to reshape it first.",
        )
