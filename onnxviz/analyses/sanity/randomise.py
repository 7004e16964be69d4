"""Cascading model-parameter randomisation (Adebayo et al. 2018), as the contract fixes it.

The parameterised nodes (Conv, ConvTranspose, Gemm, MatMul with a constant weight,
BatchNormalization) on the image's path are ordered from the output down, the reverse of the
graph's topological order. Node i's constant float inputs in input order (a BatchNormalization's
scale and bias only: its running statistics are not learnt weights, and a drawn variance could be
negative) are re-drawn by one generator per node, ``default_rng([seed, i])``, one call per tensor:
``rng.normal(mean, std, shape).astype(float32)`` with the tensor's own mean and standard
deviation (ddof 0, computed in float64). A tensor two nodes share is drawn once, by the first node
in the order that reaches it.

A randomised model is built in memory: the original proto with the drawn tensors as initializers
(a tensor a node computed, such as a Constant's output, is taken over by the initializer and the
node's output renamed aside), loaded as a new graph with no path, so no file is written and the
model file is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from onnxviz.errors import UsageError
from onnxviz.graph.model import ModelGraph

PARAMETERISED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization")
NORMALISATION_WEIGHTS = (1, 2)  # BatchNormalization's scale and bias
SET_ASIDE = "/before_randomisation"  # the suffix of a computed weight's own output, no longer read


@dataclass(frozen=True)
class Parameterised:
    """A node whose weights a step re-draws: its name, op and the names of the tensors drawn."""

    node: str
    op_type: str
    tensors: tuple[str, ...]


def parameterised_nodes(graph: ModelGraph) -> list[Parameterised]:
    """The randomisation order: the parameterised nodes on the image's path, from the output down,
    each with the tensors it re-draws; a ``UsageError`` where there are none."""
    found: list[Parameterised] = []
    drawn: set[str] = set()
    for node in reversed(graph.nodes):
        if node.op_type not in PARAMETERISED_OPS or not any(t in graph.signal for t in node.input):
            continue
        positions = NORMALISATION_WEIGHTS if node.op_type == "BatchNormalization" else range(len(node.input))
        tensors = [
            node.input[k]
            for k in positions
            if k < len(node.input) and _learnt(graph, node.input[k]) and node.input[k] not in drawn
        ]
        if tensors:
            found.append(Parameterised(node.name, node.op_type, tuple(tensors)))
            drawn.update(tensors)
    if not found:
        raise UsageError(
            "The model has no parameterised node on the image's path (a Conv, ConvTranspose, Gemm, "
            "MatMul with a constant weight or BatchNormalization), so there are no weights to randomise.",
            "Run the sanity checks on a model with learnt layers.",
        )
    return found


def _learnt(graph: ModelGraph, tensor: str) -> bool:
    """Whether ``tensor`` is a constant float input (an initializer or a computed constant)."""
    value = graph.constants.get(tensor) if tensor and tensor not in graph.signal else None
    return value is not None and np.issubdtype(value.dtype, np.floating) and value.size > 0


def drawn_tensors(graph: ModelGraph, node: Parameterised, position: int, seed: int) -> dict[str, np.ndarray]:
    """The contract's draws of the ``position``-th node of the order: each tensor, in input order,
    from one generator per node."""
    rng = np.random.default_rng([seed, position])
    drawn = {}
    for name in node.tensors:
        original = graph.constants[name]
        mean = float(np.mean(original, dtype=np.float64))
        std = float(np.std(original, dtype=np.float64))
        drawn[name] = rng.normal(mean, std, original.shape).astype(np.float32)
    return drawn


def randomised_graph(graph: ModelGraph, drawn: dict[str, np.ndarray]) -> ModelGraph:
    """A new in-memory graph: ``graph`` with every tensor of ``drawn`` replaced by its drawn value."""
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    initializers = {t.name: t for t in model.graph.initializer}
    for name, value in drawn.items():
        tensor = numpy_helper.from_array(value, name)
        if name in initializers:
            initializers[name].CopyFrom(tensor)
            continue
        for node in model.graph.node:
            node.output[:] = [f"{o}{SET_ASIDE}" if o == name else o for o in node.output]
        model.graph.initializer.append(tensor)
    return ModelGraph.from_proto(model, None, graph.custom_ops)
