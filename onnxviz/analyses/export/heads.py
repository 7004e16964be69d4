"""The explainer's own arithmetic, written as ONNX nodes: the target's seed and score, then the
method's map from the inverse's signal, exactly as ``cam --raw`` and ``attribute --raw`` compute it.

Everything here is a few elementwise ops, reductions, one Resize and a GatherElements, all in the
default domain and in forms every common runtime implements. A reduction's axes are an attribute
before opset 18 and an input from opset 18 on (``reduce``), the one difference across the opsets
an explainer is written at.

The cam maps follow ``analyses/cam/methods.py`` term by term (pytorch-grad-cam's formulas), then
``cam``'s output: ReLU, each map minus its min and ÷ (1e-7 + its max), resized to the input size
by linear interpolation with half-pixel centres (``cv2.resize``'s INTER_LINEAR), ReLU and the same
normalisation again.
"""

from __future__ import annotations

import numpy as np

from onnxviz.analyses.cam.methods import GRADCAM_PLUS_PLUS_EPSILON, XGRADCAM_EPSILON
from onnxviz.graph.emit import GraphEmitter

NORMALISE_EPSILON = 1e-7  # pytorch-grad-cam's scale_cam_image
FIRST_OPSET_WITH_AXES_INPUT = 18  # ReduceMax, ReduceMin, ReduceMean take their axes as an input


class Head(GraphEmitter):
    """A ``GraphEmitter`` for the explainer's own nodes, at the explainer's opset."""

    def __init__(self, opset: int, reserved) -> None:
        GraphEmitter.__init__(self, "explainer", opset=opset, reserved=reserved)
        self.prefix = "explainer"

    def ints(self, values: list[int], hint: str = "shape") -> str:
        return self.const(np.asarray(values, np.int64), hint)

    def scalar(self, value: float, hint: str = "epsilon") -> str:
        return self.const(np.asarray(value, np.float32), hint)

    def reduce(self, op_type: str, x: str, axes: list[int], keepdims: int = 1) -> str:
        """``op_type`` over ``axes``: ReduceSum takes its axes as an input since opset 13, the
        others since 18."""
        if op_type == "ReduceSum" or self.opset >= FIRST_OPSET_WITH_AXES_INPUT:
            return self.op(op_type, [x, self.ints(axes, "axes")], keepdims=keepdims)
        return self.op(op_type, [x], axes=axes, keepdims=keepdims)

    def split_rows(self, x: str, count: str, first: str | None = None) -> tuple[str, str]:
        """(the first ``count`` rows of ``x``, the rest), ``count`` a 1-element int64 tensor; the
        first part named ``first`` where given. A Split, not two Slices: OpenVINO 2026.4 folds a
        Slice of a Concat up to a run-time length into the whole Concat."""
        total = self.op("Slice", [self.op("Shape", [x]), self.ints([0], "starts"), self.ints([1], "ends")])
        sizes = self.op("Concat", [count, self.op("Sub", [total, count])], axis=0)
        names = [first or self.fresh("images"), self.fresh("points")]
        self.op("Split", [x, sizes], outputs=names, axis=0)
        return names[0], names[1]

    def batch_of(self, x: str) -> str:
        """x's batch size as a 1-element int64 tensor, read at run time."""
        return self.op("Slice", [self.op("Shape", [x]), self.ints([0], "starts"), self.ints([1], "ends")])


def target_seed(head: Head, logits: str, count: int, chosen: str | None) -> tuple[str, str]:
    """(seed, score): the one-hot gradient of each image's score at the target tensor ``logits``
    (any rank, batch first, ``count`` values per image) and the score itself (N,). ``chosen``: an
    int64 (N,) of flat indices, or None for each image's top-1 (ArgMax: the first maximum on ties,
    as numpy's argmax)."""
    flat = head.op("Flatten", [logits], axis=1)
    index = head.op("ArgMax", [flat], axis=1, keepdims=0) if chosen is None else chosen
    column = head.op("Unsqueeze", [index, head.ints([1], "axes")])
    positions = head.const(np.arange(count, dtype=np.int64).reshape(1, count), "positions")
    one_hot = head.op("Cast", [head.op("Equal", [column, positions])], to=1)
    score = head.op("Squeeze", [head.op("GatherElements", [flat, column], axis=1), head.ints([1], "axes")])
    seed = head.op("Reshape", [one_hot, head.op("Shape", [logits])])
    return seed, score


def _weighted(head: Head, weights: str, a: str) -> str:
    """M = Σ_c w_c·A_c for weights (N, C, 1, 1)."""
    return head.reduce("ReduceSum", head.op("Mul", [weights, a]), [1], keepdims=0)


def _gradcam(head: Head, a: str, g: str) -> str:
    return _weighted(head, head.reduce("ReduceMean", g, [2, 3]), a)


def _hirescam(head: Head, a: str, g: str) -> str:
    return head.reduce("ReduceSum", head.op("Mul", [g, a]), [1], keepdims=0)


def _gradcam_plus_plus(head: Head, a: str, g: str) -> str:
    squared = head.op("Mul", [g, g])
    total = head.reduce("ReduceSum", a, [2, 3])
    cubed_term = head.op("Mul", [head.op("Mul", [total, squared]), g])
    twice = head.op("Add", [squared, squared])
    denominator = head.op("Add", [head.op("Add", [twice, cubed_term]), head.scalar(GRADCAM_PLUS_PLUS_EPSILON)])
    alpha = head.op("Div", [squared, denominator])
    alpha = head.op("Where", [head.op("Equal", [g, head.scalar(0.0, "zero")]), head.scalar(0.0, "zero"), alpha])
    weights = head.reduce("ReduceSum", head.op("Mul", [head.op("Relu", [g]), alpha]), [2, 3])
    return _weighted(head, weights, a)


def _xgradcam(head: Head, a: str, g: str) -> str:
    total = head.op("Add", [head.reduce("ReduceSum", a, [2, 3]), head.scalar(XGRADCAM_EPSILON)])
    weights = head.op("Div", [head.reduce("ReduceSum", head.op("Mul", [g, a]), [2, 3]), total])
    return _weighted(head, weights, a)


def _layercam(head: Head, a: str, g: str) -> str:
    return head.reduce("ReduceSum", head.op("Mul", [head.op("Relu", [g]), a]), [1], keepdims=0)


CAM_MAPS = {
    "gradcam": _gradcam,
    "gradcam++": _gradcam_plus_plus,
    "xgradcam": _xgradcam,
    "layercam": _layercam,
    "hirescam": _hirescam,
}


def _normalised(head: Head, maps: str) -> str:
    """Each (h, w) map of (N, h, w) minus its min, ÷ (1e-7 + its max)."""
    shifted = head.op("Sub", [maps, head.reduce("ReduceMin", maps, [1, 2])])
    scale = head.op("Add", [head.reduce("ReduceMax", shifted, [1, 2]), head.scalar(NORMALISE_EPSILON)])
    return head.op("Div", [shifted, scale])


def cam_heatmap(head: Head, method: str, a: str, g: str, size: tuple[int, int]) -> str:
    """``cam --raw`` for one layer: the method's map of A and G (N, C, h, w), rectified, normalised,
    resized to ``size`` (H, W), rectified and normalised again: (N, H, W)."""
    maps = _normalised(head, head.op("Relu", [CAM_MAPS[method](head, a, g)]))
    stacked = head.op("Unsqueeze", [maps, head.ints([1], "axes")])
    leading = head.op("Slice", [head.op("Shape", [stacked]), head.ints([0], "starts"), head.ints([2], "ends")])
    sizes = head.op("Concat", [leading, head.ints(list(size), "size")], axis=0)
    resized = head.op("Resize", [stacked, "", "", sizes], mode="linear", coordinate_transformation_mode="half_pixel")
    flat = head.op("Squeeze", [resized, head.ints([1], "axes")])
    return _normalised(head, head.op("Relu", [flat]))


def ig_path(head: Head, x: str, baseline: str, steps: int, sample_shape: tuple[int, ...]) -> str:
    """The Gauss–Legendre points x₀ + α_i(x − x₀) of every image, image by image: (N·steps, *sample)."""
    nodes, _ = np.polynomial.legendre.leggauss(steps)
    alphas = ((nodes + 1) / 2).astype(np.float32).reshape(1, steps, *[1] * len(sample_shape))
    axis = head.ints([1], "axes")
    start = head.op("Unsqueeze", [baseline, axis])
    travel = head.op("Unsqueeze", [head.op("Sub", [x, baseline]), axis])
    points = head.op("Add", [start, head.op("Mul", [head.const(alphas, "alphas"), travel])])
    return head.op("Reshape", [points, head.ints([-1, *sample_shape])])


def ig_attribution(head: Head, gradients: str, x: str, baseline: str, steps: int, sample_shape: tuple[int, ...]) -> str:
    """(x − x₀) ⊙ Σ_i w_i·∇score(point i), the points' gradients given image by image (N·steps, *sample)."""
    _, weights = np.polynomial.legendre.leggauss(steps)
    shaped = head.op("Reshape", [gradients, head.ints([-1, steps, *sample_shape])])
    weights = (weights / 2).astype(np.float32).reshape(1, steps, *[1] * len(sample_shape))
    summed = head.reduce("ReduceSum", head.op("Mul", [shaped, head.const(weights, "weights")]), [1], keepdims=0)
    return head.op("Mul", [head.op("Sub", [x, baseline]), summed])


def repeated_rows(head: Head, seed: str, steps: int) -> str:
    """Each row of ``seed`` (N, *t) repeated ``steps`` times in place: (N·steps, *t)."""
    repeats = head.ints([1, steps], "repeats")
    shape = head.op("Shape", [seed])
    tail = head.op("Slice", [shape, head.ints([1], "starts"), head.ints([np.iinfo(np.int64).max], "ends")])
    flat = head.op("Flatten", [seed], axis=1)
    tiled = head.op("Tile", [flat, repeats])
    return head.op("Reshape", [tiled, head.op("Concat", [head.ints([-1]), tail], axis=0)])
