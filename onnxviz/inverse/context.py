"""The emitter the inverse rules write into: the package's graph emitter (``graph/emit.py``) with
what inverting needs on top.

A rule sees the forward node and the backward signal ``g`` of each output (batch K, the
projections being made at once) and asks the context for what it needs: weights (shared by
name with the forward graph), forward tensors (an input of the inverse graph, batch 1, fed from
the forward run), and fresh nodes. Node names keep the forward node's name so a user reading
``inverse.onnx`` in Netron can tell which layer each part undoes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper

from onnxviz.errors import UnsupportedOpError
from onnxviz.graph.attributes import node_attr
from onnxviz.graph.emit import GraphEmitter
from onnxviz.graph.model import ModelGraph

MODES = ("deconvnet", "guided", "saliency")
FORMS = ("cpu", "portable", "standard")
BATCH = "K"
SEED = "seed"  # the inverse graph's input: the signal of the target, K projections on axis 0
INVERSE_OPSET = 17
INVERSE_IR_VERSION = 8


class _ForwardNames:
    """The forward graph's tensor names, which no inverse name may take (the inverse reads some of
    them under their own names): a view, since the builder asks once per emitted name."""

    def __init__(self, graph: ModelGraph) -> None:
        self._producer, self._constants = graph.producer, graph.constants

    def __contains__(self, name: object) -> bool:
        return name in self._producer or name in self._constants


@dataclass
class InverseContext(GraphEmitter):
    """Collects the inverse graph while the builder walks the forward graph backwards: a
    ``GraphEmitter`` whose fresh names avoid the forward graph's tensors (the inverse reads some of
    them under their own names) and carry the forward node's name (``begin``).

    ``form`` picks between equivalent emissions: ``cpu`` uses the ops onnxruntime's CPU provider
    runs best (MaxUnpool, ConvTranspose with its own pads); ``portable`` avoids the ops the CUDA
    provider lacks or sends back to the CPU (MaxUnpool, asymmetric ConvTranspose pads);
    ``standard`` is ``portable`` with MaxPool undone without any scatter (``pool.unpool_by_taps``),
    for a graph that other runtimes run too (TensorRT has no ScatterElements with a reduction).
    """

    graph: ModelGraph
    shapes: dict[str, tuple[int, ...]]
    mode: str
    form: str = "cpu"
    lrn: str = "exact"
    # One projection per run: the signal has exactly the forward's shapes, every axis is data (no
    # batch axis to follow). Used where the batch axis cannot be followed (``batch._batch_axes``).
    single: bool = False
    # Seed k goes back through input k's own forward values (``InverseSpec.paired``): the forward
    # ran on as many inputs as there are seeds, so its batch-wide indices (MaxPool's switches)
    # already point into the right input.
    paired: bool = False
    # The tensor whose signal the inverse outputs (the input, or a layer): its producer is not walked.
    source: str = ""
    # The forward tensors the inverse reads as inputs (batch 1), fed by the forward run.
    forward_inputs: dict[str, onnx.ValueInfoProto] = field(default_factory=dict)
    # ReLU outputs whose signal a MaxPool's rule rectified already, at the pooled resolution
    # (``rules/pool.py``): their ReLU passes the signal on as it is.
    rectified: set[str] = field(default_factory=set)
    # Masks the forward computes for the inverse (``passes/masks.py``): mask tensor -> tensor it reads.
    masks: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        GraphEmitter.__init__(self, "inverse", opset=INVERSE_OPSET, reserved=_ForwardNames(self.graph))
        self.prefix = "inverse"

    def begin(self, node: onnx.NodeProto) -> None:
        """Name what follows after ``node``: its inverse reads as ``<node>/inverse/...`` in Netron."""
        self.prefix = f"{node.name}/inverse"

    def ints(self, values: list[int] | tuple[int, ...], hint: str = "shape") -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def weight(self, tensor: str, node: onnx.NodeProto) -> str:
        """A constant of the forward graph, under its own name: the inverse shares the weights."""
        if tensor not in self.graph.constants:
            raise UnsupportedOpError(
                f"{node.op_type} node '{node.name}' takes '{tensor}' from the image path, not from a "
                "constant; onnxviz can only invert it with constant weights.",
                "Project from a layer before this node.",
            )
        return self.forward(tensor)

    def constant(self, tensor: str) -> np.ndarray | None:
        return self.graph.constants.get(tensor) if tensor else None

    def forward(self, tensor: str, dtype: int = TensorProto.FLOAT) -> str:
        """A forward tensor as seen by the inverse: shared constant, or an input fed (batch 1) by the
        forward run."""
        if tensor in self.graph.constants:
            return self.initializer(tensor, self.graph.constants[tensor])
        if tensor not in self.forward_inputs:
            self.input(tensor, self.shapes[tensor], dtype)
            self.forward_inputs[tensor] = self.inputs[tensor]
        return tensor

    def positive(self, tensor: str) -> str:
        """``[tensor > 0]`` as float32: in the ``cpu`` form the forward computes the boolean mask
        once (``passes/masks.py``) and the inverse only casts it; the portable forms (one exported
        model, another runtime) compare here, reading the tensor itself."""
        if self.form != "cpu" or tensor in self.graph.constants:
            zero = self.const(np.array(0.0, np.float32), "zero")
            return self.op("Cast", [self.op("Greater", [self.forward(tensor), zero])], to=TensorProto.FLOAT)
        name = f"{tensor}__positive"
        self.masks[name] = tensor
        self.shapes.setdefault(name, self.shape(tensor))
        return self.op("Cast", [self.forward(name, TensorProto.BOOL)], to=TensorProto.FLOAT)

    # -- shapes ---------------------------------------------------------------------------------

    def shape(self, tensor: str) -> tuple[int, ...]:
        try:
            return self.shapes[tensor]
        except KeyError:
            raise UnsupportedOpError(f"The shape of tensor '{tensor}' is unknown.") from None

    def sample_shape(self, tensor: str) -> tuple[int, ...]:
        """Shape without the batch axis: the signal has batch K where the forward has 1."""
        return self.shape(tensor)[1:]

    def reshape_to(self, g: str, tensor: str) -> str:
        return self.op("Reshape", [g, self.ints([-1, *self.sample_shape(tensor)])])

    def zeros_like_signal(self, like: str, tensor: str) -> str:
        """Zeros shaped (K, *sample_shape(tensor)), K taken from the signal ``like`` at run time."""
        if self.single:
            return self.const(np.zeros(self.shape(tensor), np.float32), "zeros")
        batch = self.op("Slice", [self.op("Shape", [like]), self.ints([0]), self.ints([1])])
        full = self.op("Concat", [batch, self.ints(list(self.sample_shape(tensor)))], axis=0)
        return self.op("ConstantOfShape", [full], value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))

    def add_all(self, terms: list[str]) -> str:
        return terms[0] if len(terms) == 1 else self.op("Sum", terms)

    def reduce_to(self, g: str, out_tensor: str, in_tensor: str) -> str:
        """Sum ``g`` (shaped like out_tensor) over the axes the forward broadcast ``in_tensor`` along
        (axis 0, the batch, only with ``single``: there it is data like any other axis)."""
        out_shape = self.shape(out_tensor)
        in_shape = self.shape(in_tensor)
        padded = (1,) * (len(out_shape) - len(in_shape)) + tuple(in_shape)
        first = 0 if self.single else 1
        axes = [a for a in range(first, len(out_shape)) if padded[a] == 1 and out_shape[a] != 1]
        if axes:
            g = self.op("ReduceSum", [g, self.ints(axes, "axes")], keepdims=1)
        if len(padded) != len(in_shape) or axes:
            g = self.reshape_to(g, in_tensor)
        return g

    def unsupported(self, node: onnx.NodeProto, reason: str) -> UnsupportedOpError:
        return UnsupportedOpError(
            f"{node.op_type} node '{node.name}' cannot be inverted: {reason}.",
            "Project from a layer before this node (see `onnxviz layers MODEL`).",
        )

    def attr(self, node: onnx.NodeProto, name: str, default=None):
        return node_attr(node, name, default)
