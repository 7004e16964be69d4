"""The cut pass: the part of a graph between one of its tensors (made the input) and outputs."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from onnxviz.graph.topology import upstream_nodes
from onnxviz.passes.base import Pass, PassPostconditionError, PassPreconditionError, PassResult


class Cut(Pass):
    """Keep only the nodes that compute ``outputs`` from tensor ``start``, which becomes the graph's
    only input (float, of ``start_shape``).

    Requires: everything the kept nodes read comes from ``start``, initializers or each other (an
    output that also depends on another input cannot be cut there).
    Ensures: ``start`` is the graph's only input.
    Works in place: changes the model it is given and returns it.
    """

    name = "cut"
    in_place = True

    def __init__(self, start: str, start_shape: tuple[int, ...], outputs: list[str]) -> None:
        self.start = start
        self.start_shape = start_shape
        self.outputs = list(outputs)

    def _kept(self, model: onnx.ModelProto) -> list[onnx.NodeProto]:
        producer = {o: n for n in model.graph.node for o in n.output if o}
        keep = {id(n) for n in upstream_nodes(producer, self.outputs, frozenset({self.start}))}
        return [n for n in model.graph.node if id(n) in keep]

    def requires(self, model: onnx.ModelProto) -> None:
        kept = self._kept(model)
        available = {self.start, ""} | {t.name for t in model.graph.initializer}
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
        return PassResult(model, True)

    def ensures(self, model: onnx.ModelProto) -> None:
        if [i.name for i in model.graph.input] != [self.start]:
            raise PassPostconditionError(f"The cut graph's input is not '{self.start}'.")
