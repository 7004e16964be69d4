"""The cut pass: the part of a graph between one of its tensors (made the input) and outputs."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from onnxviz.graph.topology import upstream_nodes
from onnxviz.passes.base import Pass, PassPostconditionError, PassPreconditionError, PassResult


def side_tensors(model: onnx.ModelProto, start: str, outputs: list[str]) -> list[str]:
    """What a cut at ``start`` must be fed besides it: the tensors computed from the graph's inputs
    but not from ``start`` that the nodes after ``start`` read (a skip connection's value, which
    goes around it). Empty where every path to ``outputs`` passes through ``start``."""
    initializers = {t.name for t in model.graph.initializer}
    after_start = {start}
    from_inputs = {i.name for i in model.graph.input} - initializers
    for node in model.graph.node:  # a graph's nodes are in topological order
        if any(t in after_start for t in node.input):
            after_start.update(node.output)
        if any(t in from_inputs for t in node.input):
            from_inputs.update(node.output)
    producer = {o: n for n in model.graph.node for o in n.output if o}
    tail = [n for n in upstream_nodes(producer, outputs, frozenset({start})) if after_start.intersection(n.output)]
    return sorted({t for n in tail for t in n.input if t in from_inputs and t not in after_start})


class Cut(Pass):
    """Keep only the nodes that compute ``outputs`` from tensor ``start``, which becomes the graph's
    first input (float, of ``start_shape``); each tensor of ``sides`` (name: shape) becomes one
    more input, its batch symbolic (``side_tensors``: the values a skip connection carries around
    ``start``).

    Requires: everything the kept nodes read comes from ``start``, the sides, initializers or each
    other (an output that also depends on another input cannot be cut there).
    Ensures: ``start`` and the sides are the graph's inputs.
    Works in place: changes the model it is given and returns it.
    """

    name = "cut"
    in_place = True

    def __init__(
        self,
        start: str,
        start_shape: tuple[int, ...],
        outputs: list[str],
        sides: dict[str, tuple[int, ...]] | None = None,
    ) -> None:
        self.start = start
        self.start_shape = start_shape
        self.outputs = list(outputs)
        self.sides = dict(sides or {})

    def _kept(self, model: onnx.ModelProto) -> list[onnx.NodeProto]:
        producer = {o: n for n in model.graph.node for o in n.output if o}
        keep = {id(n) for n in upstream_nodes(producer, self.outputs, frozenset({self.start, *self.sides}))}
        return [n for n in model.graph.node if id(n) in keep]

    def requires(self, model: onnx.ModelProto) -> None:
        kept = self._kept(model)
        available = {self.start, "", *self.sides} | {t.name for t in model.graph.initializer}
        available.update(o for n in kept for o in n.output)
        outside = sorted({t for n in kept for t in n.input if t not in available})
        outside += [t for t in self.outputs if t not in available]
        if outside:
            raise PassPreconditionError(
                f"The graph cannot be cut at '{self.start}': {', '.join(repr(t) for t in outside[:5])} "
                f"{'is' if len(outside) == 1 else 'are'} needed and not computed from it.",
                "Cut at a tensor every requested output depends on alone.",
            )

    def call(self, model: onnx.ModelProto) -> PassResult:
        kept = self._kept(model)
        del model.graph.node[:]
        model.graph.node.extend(kept)
        del model.graph.input[:]
        model.graph.input.append(helper.make_tensor_value_info(self.start, TensorProto.FLOAT, list(self.start_shape)))
        for name, shape in self.sides.items():
            model.graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *shape[1:]]))
        return PassResult(model, True)

    def ensures(self, model: onnx.ModelProto) -> None:
        if [i.name for i in model.graph.input] != [self.start, *self.sides]:
            raise PassPostconditionError(f"The cut graph's inputs are not '{self.start}' and its sides.")
