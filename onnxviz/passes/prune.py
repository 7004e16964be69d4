"""The prune pass: nodes, initializers and inputs that no graph output depends on are dropped."""

from __future__ import annotations

import onnx

from onnxviz.graph.topology import upstream_nodes
from onnxviz.passes.base import Pass, PassPostconditionError, PassResult, graph_tensors


class Prune(Pass):
    """Drop nodes, initializers and inputs that no graph output depends on, and the value_info
    (stale once nodes go).

    Ensures: every graph output is still defined.
    Works in place: changes the model it is given and returns it.
    """

    name = "prune"
    in_place = True

    def call(self, model: onnx.ModelProto) -> PassResult:
        graph = model.graph
        producer = {o: n for n in graph.node for o in n.output}
        needed = {id(n) for n in upstream_nodes(producer, [o.name for o in graph.output])}
        kept = [n for n in graph.node if id(n) in needed]
        used = {i for n in kept for i in n.input} | {o.name for o in graph.output}
        initializers = [t for t in graph.initializer if t.name in used]
        inputs = [i for i in graph.input if i.name in used]
        modified = (len(kept), len(initializers), len(inputs)) != (
            len(graph.node),
            len(graph.initializer),
            len(graph.input),
        )
        del graph.node[:]
        graph.node.extend(kept)
        del graph.initializer[:]
        graph.initializer.extend(initializers)
        del graph.input[:]
        graph.input.extend(inputs)
        del graph.value_info[:]
        return PassResult(model, modified)

    def ensures(self, model: onnx.ModelProto) -> None:
        defined = graph_tensors(model)
        lost = [o.name for o in model.graph.output if o.name not in defined]
        if lost:
            raise PassPostconditionError(f"Pruning removed what output(s) {', '.join(lost)} need.")


def prune(model: onnx.ModelProto) -> PassResult:
    """Drop what no graph output depends on (see ``Prune``)."""
    return Prune()(model)
