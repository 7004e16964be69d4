"""Running the plan: crops of cached maps with the changed regions pasted in, one session per step.

For each step and batch of positions, every input is read over the block the step needs: a crop
of the cached unoccluded map (padded like the window op pads it, the op itself then runs with no
padding) with the input's recomputed region pasted in. Exact: every recomputed value is computed
from exactly the values the full occluded forward would use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from onnxviz.graph.model import ModelGraph
from onnxviz.passes.rewrite import cut_between, forward_model
from onnxviz.runtime.incremental import plan as plan_module
from onnxviz.runtime.incremental.plan import Plan, Region, Step, plan_steps, work_saving
from onnxviz.runtime.sessions import Device, create_session, run_outputs

SCALE = "mean_correction"


@dataclass(frozen=True)
class IncrementalKey:
    """An incremental engine depends on the score tensor, the input shape, the patch and the positions."""

    tensor: str
    input_shape: tuple[int, ...]
    patch: int
    corners: tuple[tuple[int, int], ...]


class IncrementalOcclusion:
    """Sessions for one (model, score tensor, input shape, patch, positions), reused across images;
    ``use_image`` caches one image's unoccluded maps before ``evaluate``."""

    def __init__(
        self,
        graph: ModelGraph,
        score_tensor: str,
        input_shape: tuple[int, ...],
        patch: int,
        corners: list[tuple[int, int]],
        device: Device,
        min_saving: float | None = None,
    ) -> None:
        shapes = graph.shapes(tuple(input_shape))
        plan = plan_steps(graph, score_tensor, shapes, patch, corners)
        self.saving = work_saving(graph, plan, score_tensor, shapes)
        if self.saving < (plan_module.MIN_WORK_SAVING if min_saving is None else min_saving):
            # full maps are faster here: not applicable
            plan = Plan([], graph.input_name)
        self.steps = plan.steps
        self.switch = plan.switch
        self.score_tensor = score_tensor
        self.input_name = graph.input_name
        self.regions: dict[str, Region] = {}
        if not self.steps:
            return
        self.regions[graph.input_name] = Region((patch, patch), np.asarray(corners, np.int64), tuple(input_shape[2:]))
        self.regions.update({step.output: step.region for step in self.steps})
        cached = [t for step in self.steps for t in step.inputs if t != graph.input_name] + [self.switch]
        self.cached = list(dict.fromkeys(cached))
        self.cache_session = create_session(forward_model(graph, self.cached, {}, shapes), device, "occlusion cache")
        self.sessions = [
            create_session(_step_model(graph, step, shapes), device, f"incremental layer '{step.nodes[0].name}'")
            for step in self.steps
        ]
        self.last_use = {t: i for i, step in enumerate(self.steps) for t in step.inputs}
        self.tail = None
        if self.switch != score_tensor:
            self.tail = create_session(
                cut_between(graph, self.switch, shapes, [score_tensor]), device, "incremental tail"
            )
        self.sources: list[list[tuple[np.ndarray, tuple[int, int]] | None]] = []
        self.switch_cache = np.empty(0, np.float32)

    def use_image(self, x: np.ndarray) -> None:
        """Cache the unoccluded maps of ``x`` (1, C, H, W) that the crops are cut from."""
        values = run_outputs(self.cache_session, {self.input_name: x}, "occlusion cache")
        cache = dict(zip(self.cached, values, strict=True))
        cache[self.input_name] = x
        self.sources = [self._sources(step, cache) for step in self.steps]
        self.switch_cache = cache[self.switch]

    @property
    def applicable(self) -> bool:
        return bool(self.steps)

    def _sources(self, step: Step, cache: dict[str, np.ndarray]) -> list[tuple[np.ndarray, tuple[int, int]] | None]:
        """Per input: (cached map padded as the step reads it, padding before row/col 0), or None
        where the input's region is already the block the step reads."""
        sources = []
        for k, tensor in enumerate(step.inputs):
            window = step.window if k == 0 else None
            if window is None and self.regions[tensor].same_as(step.region):
                sources.append(None)
                continue
            if window is None:
                sources.append((cache[tensor], (0, 0)))
                continue
            pads = [(0, 0), (0, 0)] + [(window.begins[a], window.span(1, a) - 1 + window.strides[a]) for a in range(2)]
            sources.append((np.pad(cache[tensor], pads, constant_values=window.pad_value), window.begins))
        return sources

    def evaluate(self, x_fill: np.ndarray, patch: int, indices: list[int]) -> np.ndarray:
        """Score-tensor values for the positions ``indices`` of the grid, as a full forward of the
        image given to ``use_image`` would give."""
        shape = (len(indices), x_fill.shape[0], patch, patch)
        values = {self.input_name: np.ascontiguousarray(np.broadcast_to(x_fill[None, :, None, None], shape))}
        for i, step in enumerate(self.steps):
            feeds = {f"in{k}": self._read(i, k, values[t], indices) for k, t in enumerate(step.inputs)}
            if step.window is not None and step.window.scale is not None:
                feeds[SCALE] = _crops(step.window.scale[None, None], (0, 0), step.region, indices)
            values[step.output] = run_outputs(self.sessions[i], feeds, f"incremental layer '{step.nodes[0].name}'")[0]
            for tensor in step.inputs:
                if self.last_use[tensor] == i and tensor != self.switch:
                    del values[tensor]
        full = np.repeat(self.switch_cache, len(indices), axis=0)
        _paste(full, np.zeros((len(indices), 2), np.int64), values[self.switch], self.regions[self.switch], indices)
        if self.tail is None:
            return full
        return run_outputs(self.tail, {self.switch: full}, "incremental occlusion's remaining layers")[0]

    def _read(self, i: int, k: int, changed: np.ndarray, indices: list[int]) -> np.ndarray:
        """Input ``k`` of step ``i`` over the block it reads: the cached map there, the changed region pasted in."""
        step = self.steps[i]
        source = self.sources[i][k]
        if source is None:
            return changed
        cache, before = source
        block = step.region
        window = step.window if k == 0 else None
        if window is not None:
            size = (window.span(block.size[0], 0), window.span(block.size[1], 1))
            origins = block.corners * np.asarray(window.strides) - np.asarray(before)
            block = Region(size, origins, block.full)
        crops = _crops(cache, before, block, indices)
        _paste(crops, block.corners[indices], changed, self.regions[step.inputs[k]], indices)
        return crops


def _crops(cache: np.ndarray, before: tuple[int, int], block: Region, indices: list[int]) -> np.ndarray:
    """(B, C, rows, cols) blocks of ``cache`` (one map, padded by ``before``) at each position's corner."""
    rows, cols = block.size
    out = np.empty((len(indices), cache.shape[1], rows, cols), np.float32)
    for i, (top, left) in enumerate(block.corners[indices] + np.asarray(before)):
        out[i] = cache[0, :, top : top + rows, left : left + cols]
    return out


def _paste(into: np.ndarray, origins: np.ndarray, changed: np.ndarray, region: Region, indices: list[int]) -> None:
    """Copy each position's changed region into its block of ``into`` whose top-left sits at
    ``origins`` (map coordinates), where they overlap."""
    rows, cols = region.size
    for i, (top, left) in enumerate(region.corners[indices] - origins):
        y0, x0 = max(0, -top), max(0, -left)
        y1, x1 = min(rows, into.shape[2] - top), min(cols, into.shape[3] - left)
        if y1 > y0 and x1 > x0:
            into[i, :, top + y0 : top + y1, left + x0 : left + x1] = changed[i, :, y0:y1, x0:x1]


def _step_model(graph: ModelGraph, step: Step, shapes: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    """The step's nodes on inputs ``in0``, ``in1``…; a window op loses its padding (the crops carry
    it), and an AveragePool excluding pads is rescaled by the ``mean_correction`` input."""
    renamed = {tensor: f"in{k}" for k, tensor in enumerate(step.inputs)}
    inputs = [
        helper.make_tensor_value_info(f"in{k}", TensorProto.FLOAT, ["B", shapes[t][1], "H", "W"])
        for k, t in enumerate(step.inputs)
    ]
    nodes, constants = [], {}
    for node in step.nodes:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [renamed.get(t, t) for t in node.input]
        if node is step.nodes[0] and step.window is not None:
            kept = [a for a in copy.attribute if a.name not in ("pads", "auto_pad", "count_include_pad")]
            del copy.attribute[:]
            copy.attribute.extend(kept)
            if step.window.scale is not None:
                renamed[node.output[0]] = f"{node.output[0]}_unscaled"
                copy.output[:] = [renamed[node.output[0]]]
                nodes.append(copy)
                copy = helper.make_node("Mul", [renamed[node.output[0]], SCALE], [node.output[0]])
                inputs.append(helper.make_tensor_value_info(SCALE, TensorProto.FLOAT, ["B", 1, "H", "W"]))
        nodes.append(copy)
        constants.update({t: graph.constants[t] for t in node.input if t in graph.constants})
    model = helper.make_model(
        helper.make_graph(
            nodes,
            "incremental_step",
            inputs,
            [helper.make_tensor_value_info(step.output, TensorProto.FLOAT, None)],
            initializer=[onnx.numpy_helper.from_array(v, k) for k, v in constants.items()],
        ),
        opset_imports=graph.model.opset_import,
    )
    model.ir_version = graph.model.ir_version
    return model
