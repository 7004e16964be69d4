"""Forward surgery: the forward graph of a projection, and a graph cut between two tensors, each
made by a pipeline of small passes that state what they require of the graph (``base.Pass``):

* ``switches.AddSwitches``: the MaxPools on the projection path also emit their argmax indices;
* ``masks.AddMasks``: the ReLU masks the inverse reads are computed, as booleans;
* ``outputs.ExposeOutputs``: the chosen activation and every tensor the inverse reads become the
  graph's outputs, and nothing else is (so the forward stops at the chosen layer);
* ``prune.Prune``: nodes no output needs are dropped;
* ``dynamic_batch.DynamicBatch``: the input's batch axis becomes symbolic, and Reshape shapes that
  hard-code the exported batch size copy it from their input instead;
* ``cut.Cut``: the nodes between a tensor made the input and the outputs are kept.

Every pass works in place (``Pass.in_place``), so both pipelines run on a copy of the loaded model,
which every session built from it shares.
"""

from __future__ import annotations

import logging

import onnx

from onnxviz.graph.model import ModelGraph
from onnxviz.passes.base import PassPreconditionError, Pipeline, PipelineResult
from onnxviz.passes.cut import Cut, side_tensors
from onnxviz.passes.dynamic_batch import DynamicBatch
from onnxviz.passes.masks import AddMasks
from onnxviz.passes.outputs import ExposeOutputs
from onnxviz.passes.prune import Prune
from onnxviz.passes.switches import AddSwitches

log = logging.getLogger(__name__)


def forward_passes(
    graph: ModelGraph,
    outputs: list[str],
    switches: dict[str, str],
    shapes: dict[str, tuple[int, ...]],
    masks: dict[str, str] | None = None,
) -> PipelineResult:
    """The forward graph for a projection (switches on, ``masks`` computed, chosen tensors out, the
    rest cut away), a copy of ``graph.model``, with what each pass changed."""
    masks = masks or {}
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    shapes = dict(shapes)
    for node in graph.nodes:
        if node.name in switches:
            shapes[switches[node.name]] = shapes[node.output[0]]
    for name, tensor in masks.items():
        if tensor in shapes:  # else the masks pass names the tensor it cannot find
            shapes[name] = shapes[tensor]
    pipeline = Pipeline(
        [
            AddSwitches(switches),
            AddMasks(masks),
            ExposeOutputs(outputs, set(switches.values()), shapes, frozenset(masks)),
            Prune(),
            DynamicBatch(graph.input_name, shapes, graph.constants.keys()),
        ]
    )
    return pipeline(model)


def forward_model(
    graph: ModelGraph,
    outputs: list[str],
    switches: dict[str, str],
    shapes: dict[str, tuple[int, ...]],
    masks: dict[str, str] | None = None,
) -> onnx.ModelProto:
    """The forward graph for a projection (see ``forward_passes``); what changed is logged."""
    result = forward_passes(graph, outputs, switches, shapes, masks)
    log.debug("forward graph of %s: changed by %s", ", ".join(outputs), ", ".join(result.changed) or "nothing")
    return result.model


def cut_between(
    graph: ModelGraph, start: str, shapes: dict[str, tuple[int, ...]], outputs: list[str], sides: bool = False
) -> onnx.ModelProto:
    """The part of the graph from tensor ``start`` (made the input) to ``outputs``, batch made dynamic.
    ``sides``: the tensors a skip connection carries around ``start`` are inputs too (``side_tensors``),
    where otherwise such a cut is refused."""
    around = side_tensors(graph.model, start, outputs) if sides else []
    unknown = [t for t in (start, *around) if t not in shapes]
    if unknown:
        raise PassPreconditionError(f"The graph cannot be cut at '{start}': the shape of '{unknown[0]}' is not known.")
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    pipeline = Pipeline(
        [
            Cut(start, shapes[start], outputs, {t: shapes[t] for t in around}),
            ExposeOutputs(outputs, set(), shapes),
            Prune(),
            DynamicBatch(start, shapes, graph.constants.keys()),
        ]
    )
    return pipeline(model).model
