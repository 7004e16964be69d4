"""The switches pass: the MaxPools on the projection path also emit their argmax indices."""

from __future__ import annotations

import onnx

from onnxviz.graph.attributes import default_opset
from onnxviz.graph.ops import MIN_OPSET_FOR_SWITCHES
from onnxviz.passes.base import Pass, PassPostconditionError, PassPreconditionError, PassResult


class AddSwitches(Pass):
    """Give each named MaxPool node the Indices output ``switches[node]``.

    Requires: the opset has MaxPool indices (8+) if any switch is asked for; every named node is a
    MaxPool of the graph, and one that already emits indices names them as asked.
    Ensures: each named MaxPool's second output is its switch tensor.
    Works in place: changes the model it is given and returns it.
    """

    name = "switches"
    in_place = True

    def __init__(self, switches: dict[str, str]) -> None:
        self.switches = dict(switches)

    def requires(self, model: onnx.ModelProto) -> None:
        if not self.switches:
            return
        if default_opset(model) < MIN_OPSET_FOR_SWITCHES:
            raise PassPreconditionError(
                f"MaxPool has no Indices output before opset {MIN_OPSET_FOR_SWITCHES}; this graph is opset "
                f"{default_opset(model)}.",
                "Upgrade the model with onnx.version_converter.",
            )
        pools = _pools(model)
        missing = sorted(set(self.switches) - set(pools))
        if missing:
            raise PassPreconditionError(
                f"Switches were asked of {', '.join(repr(m) for m in missing)}, which this graph has no MaxPool "
                "node by that name for.",
                "The forward model must be made from the graph the inverse was built from.",
            )
        for name, wanted in self.switches.items():
            outputs = pools[name].output
            if len(outputs) > 1 and outputs[1] and outputs[1] != wanted:
                raise PassPreconditionError(f"MaxPool '{name}' already names its indices '{outputs[1]}'.")

    def call(self, model: onnx.ModelProto) -> PassResult:
        modified = False
        for node in model.graph.node:
            wanted = self.switches.get(node.name)
            if wanted is None or (len(node.output) > 1 and node.output[1] == wanted):
                continue
            if len(node.output) == 1:
                node.output.append(wanted)
            else:
                node.output[1] = wanted
            modified = True
        return PassResult(model, modified)

    def ensures(self, model: onnx.ModelProto) -> None:
        pools = _pools(model)
        wrong = [name for name, wanted in self.switches.items() if pools[name].output[1:2] != [wanted]]
        if wrong:
            raise PassPostconditionError(f"MaxPool node(s) {', '.join(wrong)} did not get their switch output.")


def add_switches(model: onnx.ModelProto, switches: dict[str, str]) -> PassResult:
    """Give each named MaxPool node the Indices output ``switches[node]`` (see ``AddSwitches``)."""
    return AddSwitches(switches)(model)


def _pools(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {n.name: n for n in model.graph.node if n.op_type == "MaxPool"}
