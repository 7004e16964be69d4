"""Aliases: the short names (``conv3``, ``pool2``, ``fc1``, ``relu4``) a user can give ``--node``.

They count layers in topological order, as the deconvnet paper does, and name what the paper
shows: ``convN`` the rectified output of the N-th convolution (through BatchNorm/Dropout, and
through an activation written as several nodes), ``fcN`` a dense layer's biased output.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from onnxviz.graph.composite import find_composites
from onnxviz.graph.ops import ACTIVATION_OPS, PASS_THROUGH_OPS
from onnxviz.graph.topology import GraphView

ALIAS_PREFIX = {"Conv": "conv", "MaxPool": "pool", "AveragePool": "pool", "Gemm": "fc", "MatMul": "fc"}
# How many nodes an alias looks past for the activation of its layer.
FOLLOW_LIMIT = 4


@dataclass(frozen=True)
class Layer:
    """A named place in the graph a user can point ``--node`` at."""

    alias: str
    node: str
    op_type: str
    tensor: str


def name_layers(graph: GraphView) -> list[Layer]:
    """Aliases in topological order; ``convN`` names the rectified output, as in the paper."""
    counters: dict[str, int] = {}
    layers: list[Layer] = []
    activated = _composite_activations(graph)
    for node in graph.nodes:
        if not node.output or node.output[0] not in graph.signal:
            continue
        prefix = ALIAS_PREFIX.get(node.op_type) or ("relu" if node.op_type == "Relu" else None)
        if prefix is None:
            continue
        counters[prefix] = counters.get(prefix, 0) + 1
        tensor = node.output[0]
        if prefix == "conv":
            tensor = _follow_to_activation(graph, tensor, activated)
        elif prefix == "fc":
            tensor = _follow_bias_add(graph, tensor)
        layers.append(Layer(f"{prefix}{counters[prefix]}", node.name, node.op_type, tensor))
    return layers


def _single_consumer(graph: GraphView, tensor: str) -> onnx.NodeProto | None:
    users = graph.consumers.get(tensor, [])
    if len(users) == 1 and tensor not in graph.output_names:
        return users[0]
    return None


def _composite_activations(graph: GraphView) -> dict[str, str]:
    """Input -> output of each activation written as several nodes (SiLU as x·σ(x)…) that is the
    only use of its input, so ``convN`` means the activated output there too."""
    activated = {}
    for group in find_composites(graph):
        users = graph.consumers.get(group.input, [])
        if group.input not in graph.output_names and all(u.name in group.nodes for u in users):
            activated[group.input] = group.output
    return activated


def _follow_to_activation(graph: GraphView, tensor: str, activated: dict[str, str]) -> str:
    current = tensor
    for _ in range(FOLLOW_LIMIT):
        if current in activated:
            return activated[current]
        user = _single_consumer(graph, current)
        if user is None:
            break
        if user.op_type in ACTIVATION_OPS:
            return user.output[0]
        if user.op_type not in PASS_THROUGH_OPS:
            break
        current = user.output[0]
    return tensor


def _follow_bias_add(graph: GraphView, tensor: str) -> str:
    """tf2onnx writes a dense layer as MatMul + Add(bias): ``fcN`` means the biased output."""
    user = _single_consumer(graph, tensor)
    if user is not None and user.op_type == "Add" and any(t in graph.constants for t in user.input):
        return user.output[0]
    return tensor
