"""The outputs pass: the chosen tensors become the graph's outputs, and nothing else is."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from onnxviz.passes.base import Pass, PassPostconditionError, PassPreconditionError, PassResult, graph_tensors


class ExposeOutputs(Pass):
    """Make ``outputs`` the graph outputs, in this order, with a symbolic batch axis; those in
    ``int64_outputs`` are int64 (switches), those in ``bool_outputs`` bool (masks), the rest float;
    ``shapes`` (batch 1) give the other axes.

    Requires: every output is a tensor the graph defines.
    Ensures: the graph's outputs are exactly ``outputs``, in order.
    Works in place: changes the model it is given and returns it.
    """

    name = "outputs"
    in_place = True

    def __init__(
        self,
        outputs: list[str],
        int64_outputs: set[str],
        shapes: dict[str, tuple[int, ...]],
        bool_outputs: frozenset[str] = frozenset(),
    ) -> None:
        self.outputs = list(outputs)
        self.int64_outputs = set(int64_outputs)
        self.bool_outputs = frozenset(bool_outputs)
        self.shapes = shapes

    def requires(self, model: onnx.ModelProto) -> None:
        missing = [name for name in self.outputs if name not in graph_tensors(model)]
        if missing:
            raise PassPreconditionError(
                f"Tensor(s) {', '.join(repr(m) for m in missing)} cannot become outputs: this graph does not "
                "compute them.",
                "Pick tensors of this model (`onnxviz layers MODEL` lists them).",
            )

    def call(self, model: onnx.ModelProto) -> PassResult:
        before = [o.SerializeToString() for o in model.graph.output]
        del model.graph.output[:]
        for name in self.outputs:
            elem = TensorProto.INT64 if name in self.int64_outputs else TensorProto.FLOAT
            elem = TensorProto.BOOL if name in self.bool_outputs else elem
            dims = _output_dims(self.shapes[name]) if name in self.shapes else None
            model.graph.output.append(helper.make_tensor_value_info(name, elem, dims))
        return PassResult(model, [o.SerializeToString() for o in model.graph.output] != before)

    def ensures(self, model: onnx.ModelProto) -> None:
        if [o.name for o in model.graph.output] != self.outputs:
            raise PassPostconditionError("The graph's outputs are not the tensors asked for.")


def _output_dims(shape: tuple[int, ...]) -> list[int | str | None]:
    """Axis 0 is the symbolic batch where it is the batch (1 at these shapes), and left unnamed
    where it is not: an attention block's axis 0 that merges the batch with patches holds n·batch,
    and naming it "N" would tell onnxruntime it equals the input's batch, which its shape-based
    folding then believes (a Reshape fed ``Shape(x)[0]`` was folded to the wrong length)."""
    if not shape:
        return []
    return ["N" if shape[0] == 1 else None, *shape[1:]]


def expose_outputs(
    model: onnx.ModelProto, outputs: list[str], int64_outputs: set[str], shapes: dict[str, tuple[int, ...]]
) -> PassResult:
    """Make ``outputs`` the graph outputs, in this order (see ``ExposeOutputs``)."""
    return ExposeOutputs(outputs, int64_outputs, shapes)(model)
