"""Incremental occlusion: recompute only what a patch changes (Nakandala et al., SIGMOD 2019).

An occluded image differs from the original only inside the patch, so each layer's output
differs only inside the patch's projective field. Along the leading chain of window ops
(Conv, MaxPool) and the per-pixel ops after each (ReLU, BatchNorm, bias…), every layer is
computed for a small batch of *crops*: the cached unoccluded activation around the changed
region, with the previous layer's recomputed region pasted in, run with no padding (the pads
are part of the cached, padded map). Once the changed region covers most of a map, the full
maps (cache + pasted region) go through the rest of the network as usual.

Exact: every recomputed value is computed from exactly the values the full occluded forward
would use. Region sizes are fixed per layer (the largest over all positions, shifted inwards at
the borders) so each layer runs as one batched session.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from onnxviz.inverse.geometry import explicit_pads, window_attrs
from onnxviz.model import ACTIVATION_OPS, PASS_THROUGH_OPS, ModelGraph, node_attr
from onnxviz.rewrite import cut_between
from onnxviz.runtime import Device, create_session, run_outputs

CROPPABLE_WINDOW_OPS = frozenset({"Conv", "MaxPool"})
PER_PIXEL_OPS = ACTIVATION_OPS | PASS_THROUGH_OPS | {"Add", "Sub", "Mul", "Div"}
SWITCH_COVERAGE = 0.5


@dataclass
class Step:
    """One window op and the per-pixel ops after it, run on crops with no padding."""

    nodes: list[onnx.NodeProto]
    input: str
    output: str
    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    begins: tuple[int, int]
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    pad_value: float
    region: tuple[int, int] = (0, 0)
    session: ort.InferenceSession | None = None
    padded_cache: np.ndarray | None = None


def _is_per_pixel(graph: ModelGraph, node: onnx.NodeProto, rank: int) -> bool:
    """Unary on the signal, with any other input a constant that broadcasts per channel."""
    if node.op_type not in PER_PIXEL_OPS or len(graph.signal_inputs(node)) != 1:
        return False
    for tensor in node.input[1:]:
        if not tensor:
            continue
        value = graph.constants.get(tensor)
        if value is None:
            return False
        if (
            node.op_type not in ("BatchNormalization", "Clip")
            and value.ndim >= rank - 1
            and math.prod(value.shape[-2:]) > 1
        ):
            return False
    return True


def plan_steps(graph: ModelGraph, score_tensor: str, shapes: dict[str, tuple[int, ...]]) -> list[Step]:
    """The leading chain from the input that can run on crops (empty when there is none)."""
    steps: list[Step] = []
    current = graph.input_name
    ancestors = graph.ancestors([score_tensor])
    while True:
        users = [n for n in graph.consumers.get(current, []) if n.name in ancestors]
        if len(users) != 1 or users[0].op_type not in CROPPABLE_WINDOW_OPS or len(shapes.get(current, ())) != 4:
            return steps
        window = users[0]
        if window.op_type == "MaxPool" and (int(node_attr(window, "ceil_mode", 0)) or len(window.output) > 1):
            return steps
        if window.op_type == "Conv" and window.input[1] not in graph.constants:
            return steps
        kernel = tuple(
            int(k) for k in (node_attr(window, "kernel_shape") or graph.constants[window.input[1]].shape[2:])
        )
        if len(kernel) != 2:
            return steps
        strides, dilations = window_attrs(window, kernel)
        begins, _ = explicit_pads(window, shapes[current][2:], kernel, strides, dilations)
        nodes = [window]
        output = window.output[0]
        while output != score_tensor:
            following = [n for n in graph.consumers.get(output, []) if n.name in ancestors]
            if len(following) != 1 or not _is_per_pixel(graph, following[0], 4):
                break
            nodes.append(following[0])
            output = following[0].output[0]
        steps.append(
            Step(
                nodes,
                current,
                output,
                kernel,
                tuple(strides),
                tuple(dilations),
                tuple(begins[:2]),
                tuple(shapes[current][2:]),
                tuple(shapes[output][2:]),
                -np.inf if window.op_type == "MaxPool" else 0.0,
            )
        )
        if output == score_tensor:
            return steps
        current = output


def _affected(a: int, n: int, step: Step, axis: int) -> tuple[int, int]:
    """Outputs [lo, hi] whose window touches input rows [a, a + n) along ``axis``."""
    k, s, d, b = step.kernel[axis], step.strides[axis], step.dilations[axis], step.begins[axis]
    reach = (k - 1) * d
    lo = max(0, math.ceil((a + b - reach) / s))
    hi = min(step.out_size[axis] - 1, (a + n - 1 + b) // s)
    return lo, hi


class IncrementalOcclusion:
    """Sessions and caches for one (model, score tensor, input shape, patch)."""

    def __init__(
        self,
        graph: ModelGraph,
        score_tensor: str,
        x: np.ndarray,
        patch: int,
        corners: list[tuple[int, int]],
        device: Device,
    ) -> None:
        shapes = graph.shapes(tuple(x.shape))
        all_steps = plan_steps(graph, score_tensor, shapes)
        size = (patch, patch)
        starts = [corners]
        self.steps: list[Step] = []
        for step in all_steps:
            spans, new_starts = [], []
            for axis in range(2):
                ranges = [_affected(corner[axis], size[axis], step, axis) for corner in starts[-1]]
                spans.append(max(hi - lo + 1 for lo, hi in ranges))
            regions = tuple(spans)
            for corner in starts[-1]:
                placed = []
                for axis in range(2):
                    lo, _ = _affected(corner[axis], size[axis], step, axis)
                    placed.append(min(lo, step.out_size[axis] - regions[axis]))
                new_starts.append(tuple(placed))
            step.region = regions
            self.steps.append(step)
            starts.append(new_starts)
            size = regions
            if regions[0] * regions[1] >= SWITCH_COVERAGE * step.out_size[0] * step.out_size[1]:
                break
        self.corners_per_step = starts
        self.score_tensor = score_tensor
        self.input_name = graph.input_name
        if not self.steps:
            return
        self.switch = self.steps[-1].output
        cache_outputs = list(dict.fromkeys([s.input for s in self.steps[1:]] + [self.switch]))
        cache = _run_cache(graph, shapes, cache_outputs, x, device)
        cache[graph.input_name] = x
        for step in self.steps:
            step.session = create_session(_step_model(graph, step, shapes), device, "incremental layer")
            k, s, d = step.kernel, step.strides, step.dilations
            pads = [(0, 0), (0, 0)] + [(step.begins[a], (k[a] - 1) * d[a] + s[a]) for a in range(2)]
            step.padded_cache = np.pad(cache[step.input], pads, constant_values=step.pad_value)
        self.switch_cache = cache[self.switch]
        self.tail = None
        if self.switch != score_tensor:
            self.tail = create_session(
                cut_between(graph, self.switch, shapes, [score_tensor]), device, "incremental tail"
            )

    @property
    def applicable(self) -> bool:
        return bool(self.steps)

    def evaluate(self, x_fill: np.ndarray, patch: int, indices: list[int]) -> np.ndarray:
        """Score-tensor values for the positions ``indices`` of the grid, as a full forward would give."""
        region = np.broadcast_to(x_fill[None, :, None, None], (len(indices), x_fill.shape[0], patch, patch))
        for level, step in enumerate(self.steps):
            previous = [self.corners_per_step[level][i] for i in indices]
            placed = [self.corners_per_step[level + 1][i] for i in indices]
            region = self._run_step(step, region, previous, placed)
        full = np.repeat(self.switch_cache, len(indices), axis=0)
        rows, cols = self.steps[-1].region
        for i, (top, left) in enumerate(self.corners_per_step[len(self.steps)][j] for j in indices):
            full[i, :, top : top + rows, left : left + cols] = region[i]
        if self.tail is None:
            return full
        return run_outputs(self.tail, {self.switch: full}, "incremental occlusion's remaining layers")[0]

    def _run_step(
        self, step: Step, region: np.ndarray, previous: list[tuple[int, int]], placed: list[tuple[int, int]]
    ) -> np.ndarray:
        k, s, d = step.kernel, step.strides, step.dilations
        length = [(step.region[a] - 1) * s[a] + (k[a] - 1) * d[a] + 1 for a in range(2)]
        cache = step.padded_cache
        crops = np.empty((len(placed), cache.shape[1], length[0], length[1]), np.float32)
        for i, ((top, left), (ptop, pleft)) in enumerate(zip(placed, previous, strict=True)):
            y0, x0 = top * s[0], left * s[1]
            crops[i] = cache[0, :, y0 : y0 + length[0], x0 : x0 + length[1]]
            oy, ox = ptop + step.begins[0] - y0, pleft + step.begins[1] - x0
            sy0, sx0 = max(0, -oy), max(0, -ox)
            sy1 = min(region.shape[2], length[0] - oy)
            sx1 = min(region.shape[3], length[1] - ox)
            if sy1 > sy0 and sx1 > sx0:
                crops[i, :, oy + sy0 : oy + sy1, ox + sx0 : ox + sx1] = region[i, :, sy0:sy1, sx0:sx1]
        return run_outputs(step.session, {"crop": crops}, f"incremental layer '{step.nodes[0].name}'")[0]


def _step_model(graph: ModelGraph, step: Step, shapes: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    """The step's nodes with the window op's padding removed, on an input called ``crop``."""
    nodes = []
    renamed = {step.input: "crop"}
    initializers = []
    for node in step.nodes:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [renamed.get(t, t) for t in node.input]
        if node is step.nodes[0]:
            kept = [a for a in copy.attribute if a.name not in ("pads", "auto_pad")]
            del copy.attribute[:]
            copy.attribute.extend(kept)
        nodes.append(copy)
        for tensor in node.input:
            if tensor in graph.constants and tensor not in {t.name for t in initializers}:
                initializers.append(onnx.numpy_helper.from_array(graph.constants[tensor], tensor))
    channels = shapes[step.input][1]
    model = helper.make_model(
        helper.make_graph(
            nodes,
            "step",
            [helper.make_tensor_value_info("crop", TensorProto.FLOAT, ["B", channels, "H", "W"])],
            [helper.make_tensor_value_info(step.output, TensorProto.FLOAT, None)],
            initializer=initializers,
        ),
        opset_imports=graph.model.opset_import,
    )
    model.ir_version = graph.model.ir_version
    return model


def _run_cache(graph: ModelGraph, shapes, outputs: list[str], x: np.ndarray, device: Device) -> dict[str, np.ndarray]:
    from onnxviz.rewrite import forward_model

    session = create_session(forward_model(graph, outputs, {}, shapes), device, "occlusion cache")
    values = run_outputs(session, {graph.input_name: x}, "occlusion cache")
    return dict(zip(outputs, values, strict=True))
