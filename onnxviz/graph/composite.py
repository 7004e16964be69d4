"""Activations written as several nodes, recognised by what they compute.

Exporters spell one activation as a small subgraph: SiLU as ``x·σ(x)``, GELU as
``0.5·x·(1 + erf(x/√2))`` (TorchScript) or ``x·(0.5·(erf(x/√2) + 1))`` (dynamo), its tanh form
as a dozen Mul/Add/Pow/Tanh nodes, Mish as ``x·tanh(softplus(x))``, HardSwish as
``x·HardSigmoid(x)`` or ``x·Relu6(x + 3)/6``. DESIGN.md treats each as ONE activation (deconvnet:
``relu(ȳ)``; guided: ``relu(ȳ)·[f'(x) > 0]``), so the inverse builder must see the group, not its
parts.

A candidate group is found structurally: the nodes on the paths from a tensor ``x`` to a tensor
``y``, all element-wise, whose only inputs are ``x``, each other's outputs and size-1 constants,
and whose intermediate tensors are used nowhere else. Size-1 constants make the group one scalar
function ``f`` applied to every element. The group is then *identified numerically*: ``f`` is
evaluated on a grid of probe values and compared with each known activation in ``KINDS``. So
every spelling of the same function is recognised, and no affine chain (a decomposed
BatchNormalization, a ``x·2 + 1``) is ever mistaken for an activation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto, helper

from onnxviz.graph.attributes import default_opset
from onnxviz.graph.emit import GraphEmitter

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from onnxviz.graph.topology import GraphView

# Element-wise ops a composite activation may be built from (constants broadcast as scalars).
POINTWISE_OPS = frozenset(
    {
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Pow",
        "Max",
        "Min",
        "Neg",
        "Abs",
        "Exp",
        "Log",
        "Sqrt",
        "Reciprocal",
        "Erf",
        "Tanh",
        "Sigmoid",
        "Softplus",
        "Relu",
        "Clip",
        "HardSigmoid",
        "Identity",
    }
)
# The furthest a group's input may lie from its output, in nodes (the tanh GELU takes 8).
MAX_GROUP_NODES = 12
PROBE = np.concatenate([np.linspace(-8.0, 8.0, 321), [-3.0, 3.0, 1e-3, -1e-3]]).astype(np.float32)
ABSOLUTE_TOLERANCE = 1e-5
RELATIVE_TOLERANCE = 1e-5


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf)(x)


def _hard_sigmoid(x: np.ndarray) -> np.ndarray:
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0)


# Each known composite activation, by the scalar function it computes (float64 references).
KINDS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "silu": lambda x: x / (1.0 + np.exp(-x)),
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "gelu_tanh": lambda x: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3))),
    "mish": lambda x: x * np.tanh(np.logaddexp(0.0, x)),
    "hardswish": lambda x: x * _hard_sigmoid(x),
    "hardsigmoid": _hard_sigmoid,
}


@dataclass(frozen=True)
class Composite:
    """One activation written as several nodes: ``output = kind(input)`` element-wise."""

    kind: str
    input: str
    output: str
    nodes: tuple[str, ...]  # member node names in topological order; the last produces ``output``


def find_composites(graph: GraphView, nodes: Iterable[onnx.NodeProto] | None = None) -> list[Composite]:
    """The composite activations among ``nodes`` (default: the whole graph), outermost first.

    Outputs are tried from the last node backwards, so a HardSwish ``x·hardsigmoid(x)`` claims its
    inner hard sigmoid before that could be taken as a group of its own."""
    pool = list(graph.nodes if nodes is None else nodes)
    allowed = {n.name for n in pool}
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    claimed: set[str] = set()
    found: list[Composite] = []
    for node in reversed(pool):
        if node.name in claimed or not _pointwise(graph, node):
            continue
        group = _largest_group(graph, node, allowed - claimed, order)
        if group is not None:
            found.append(group)
            claimed.update(group.nodes)
    return found


def _pointwise(graph: GraphView, node: onnx.NodeProto) -> bool:
    if node.op_type not in POINTWISE_OPS or len([o for o in node.output if o]) != 1:
        return False
    return all(t in graph.signal or _scalar_constant(graph, t) for t in node.input if t)


def _scalar_constant(graph: GraphView, tensor: str) -> bool:
    value = graph.constants.get(tensor)
    return value is not None and value.size == 1


def _largest_group(
    graph: GraphView, last: onnx.NodeProto, allowed: set[str], order: dict[str, int]
) -> Composite | None:
    """The group ending at ``last`` with the furthest input that computes a known activation."""
    ancestors = {last.name: last}  # pointwise producers reachable from ``last``
    inputs: list[str] = []  # candidate group inputs, nearest first
    frontier = [last]
    while frontier and len(ancestors) <= MAX_GROUP_NODES:
        node = frontier.pop(0)
        for tensor in node.input:
            if not tensor or tensor not in graph.signal or tensor in inputs:
                continue
            inputs.append(tensor)
            producer = graph.producer.get(tensor)
            if producer is None or producer.name in ancestors or producer.name not in allowed:
                continue
            if _pointwise(graph, producer):
                ancestors[producer.name] = producer
                frontier.append(producer)
    ordered = sorted(ancestors.values(), key=lambda n: order[n.name])
    for x in reversed(inputs):
        members = _members(graph, x, last, ordered)
        if members is None or len(members) < 2:
            continue
        kind = _identify(graph, x, members)
        if kind is not None:
            return Composite(kind, x, last.output[0], tuple(m.name for m in members))
    return None


def _members(
    graph: GraphView, x: str, last: onnx.NodeProto, ordered: list[onnx.NodeProto]
) -> list[onnx.NodeProto] | None:
    """The nodes on the paths from ``x`` to ``last``'s output (``ordered`` topologically), if they
    form a closed group."""
    reached = {x}
    members: list[onnx.NodeProto] = []
    for node in ordered:
        if any(t in reached for t in node.input):
            members.append(node)
            reached.add(node.output[0])
    if not members or members[-1].name != last.name:
        return None
    names = {n.name for n in members}
    inside = {n.output[0] for n in members}
    for node in members:
        if any(t in graph.signal and t != x and t not in inside for t in node.input if t):
            return None  # a second signal enters: not a function of x alone
        out = node.output[0]
        if node.name != last.name and (
            out in graph.output_names or any(u.name not in names for u in graph.consumers.get(out, []))
        ):
            return None  # an intermediate is used outside the group
    return members


def _identify(graph: GraphView, x: str, members: list[onnx.NodeProto]) -> str | None:
    """Which of ``KINDS`` the group computes, by evaluating it on ``PROBE`` (cached by structure)."""
    probe = GraphEmitter("composite", opset=default_opset(graph.model))
    rename = {x: probe.input("x", [len(PROBE)])}
    for i, node in enumerate(members):
        inputs = []
        for tensor in node.input:
            if tensor and tensor not in rename:
                rename[tensor] = probe.initializer(f"c{len(probe.initializers)}", graph.constants[tensor])
            inputs.append(rename.get(tensor, ""))
        rename[node.output[0]] = probe.op(node.op_type, inputs, outputs=[f"t{i}"], name="", **_attributes(node))
    probe.output(f"t{len(members) - 1}", elem=TensorProto.UNDEFINED)
    model = probe.model(ir_version=onnx.IR_VERSION)
    return _identify_serialized(model.SerializeToString(deterministic=True))


def _attributes(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


@lru_cache(maxsize=256)
def _identify_serialized(serialized: bytes) -> str | None:
    from onnx.reference import ReferenceEvaluator

    try:
        (values,) = ReferenceEvaluator(onnx.load_from_string(serialized)).run(None, {"x": PROBE})
    except Exception:  # a group the reference evaluator cannot run is simply not recognised
        return None
    values = np.asarray(values, np.float64).reshape(-1)
    if values.shape != PROBE.shape:
        return None
    reference_input = PROBE.astype(np.float64)
    for kind, function in KINDS.items():
        expected = function(reference_input)
        if np.all(np.abs(values - expected) <= ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * np.abs(expected)):
            return kind
    return None
