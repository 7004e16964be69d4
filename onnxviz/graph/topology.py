"""Order and reachability: topological order, and the nodes a set of tensors depends on."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np
import onnx

from onnxviz.errors import ModelLoadError


class GraphView(Protocol):
    """What the graph-reading helpers (aliases, composite activations) need of a loaded graph.

    ``ModelGraph`` provides it; naming it here lets those helpers sit below ``model.py`` instead of
    importing it back."""

    model: onnx.ModelProto
    nodes: list[onnx.NodeProto]
    producer: dict[str, onnx.NodeProto]
    consumers: dict[str, list[onnx.NodeProto]]
    constants: dict[str, np.ndarray]
    signal: set[str]
    output_names: list[str]


def topological_order(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The graph's nodes, each after the producers of its inputs; a cycle or an undefined tensor
    is a load error naming (up to five of) the tensors that cannot be computed."""
    available = {t.name for t in graph.initializer} | {i.name for i in graph.input} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        progressed = []
        rest = []
        for node in pending:
            (progressed if all(t in available for t in node.input) else rest).append(node)
        if not progressed:
            missing = sorted({t for n in rest for t in n.input if t not in available})[:5]
            raise ModelLoadError(
                f"The graph is not a DAG or uses undefined tensors: {', '.join(missing)}.",
                "Re-export the model.",
            )
        for node in progressed:
            available.update(node.output)
        ordered.extend(progressed)
        pending = rest
    return ordered


def upstream_nodes(
    producer: dict[str, onnx.NodeProto], tensors: Iterable[str], stop: frozenset[str] = frozenset()
) -> list[onnx.NodeProto]:
    """The nodes ``tensors`` depend on, walking back through producers but not past ``stop``."""
    found: dict[int, onnx.NodeProto] = {}
    stack = list(tensors)
    seen: set[str] = set()
    while stack:
        tensor = stack.pop()
        if tensor in seen or tensor in stop:
            continue
        seen.add(tensor)
        node = producer.get(tensor)
        if node is not None and id(node) not in found:
            found[id(node)] = node
            stack.extend(t for t in node.input if t)
    return list(found.values())
