"""One way to write ONNX graphs: the inverse rules, the ascent graphs, the QDQ conversion and the
tests' toy models all grow their graphs through ``GraphEmitter``.

Why one: each of them needs the same four things, and getting any of them subtly wrong breaks a
graph onnxruntime then refuses with a message about some tensor: names that never collide (with
each other and with the tensors of a model being extended), constants as initializers (numpy's
float64 narrowed to the float32 the graphs compute in), nodes appended in the order they run,
and a ``ModelProto`` with its opset and an IR version that may carry it.

Naming: ``fresh(hint)`` is ``<prefix>/<hint>`` (or ``<hint>`` without a prefix), then
``_2``, ``_3``… until the name is neither emitted yet nor ``reserved`` (the tensors of the graph
being extended or the names a caller gives its inputs and outputs later). A prefix such as
``conv3/inverse`` lets a reader of the file in Netron tell which forward node each part serves.
"""

from __future__ import annotations

from collections.abc import Container, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DEFAULT_OPSET = 17


class GraphEmitter:
    """The nodes, initializers, inputs and outputs of one graph being written, in emission order."""

    def __init__(self, name: str, *, opset: int = DEFAULT_OPSET, reserved: Container[str] = ()) -> None:
        self.name = name
        self.opset = opset
        self.prefix = ""
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, TensorProto] = {}
        self.inputs: dict[str, onnx.ValueInfoProto] = {}
        self.outputs: list[onnx.ValueInfoProto] = []
        self._reserved = reserved
        self._used: set[str] = set()

    # -- names ----------------------------------------------------------------------------------

    def fresh(self, hint: str) -> str:
        """A name not used before in this graph nor reserved, built from ``hint`` (see the module doc)."""
        base = f"{self.prefix}/{hint}" if self.prefix else hint
        name, count = base, 1
        while name in self._used or name in self._reserved:
            count += 1
            name = f"{base}_{count}"
        self._used.add(name)
        return name

    def claim(self, name: str) -> str:
        """Take ``name`` as given (a graph input or output the caller's contract names), so that no
        fresh name takes it later."""
        self._used.add(name)
        return name

    # -- constants and nodes --------------------------------------------------------------------

    def const(self, value: np.ndarray | Sequence | float, hint: str = "const", dtype: type | None = None) -> str:
        """A new initializer holding ``value``; float64 (numpy's default) is stored as float32."""
        array = np.asarray(value, dtype=dtype)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        return self.initializer(self.fresh(hint), array)

    def initializer(self, name: str, value: np.ndarray) -> str:
        """An initializer under a name the caller chose (a weight shared with another graph keeps its
        own); a second call with the same name keeps the first."""
        if name not in self.initializers:
            self.initializers[name] = numpy_helper.from_array(np.asarray(value), self.claim(name))
        return name

    def op(
        self,
        op_type: str,
        inputs: Sequence[str],
        *,
        outputs: int | Sequence[str] = 1,
        name: str | None = None,
        **attrs: object,
    ) -> str:
        """Append one node and return its first output's name.

        ``outputs`` is a count of fresh outputs (named after the op) or the names to give them;
        ``name`` names the node (fresh when omitted); attributes given as None are left out, so a
        caller can pass an optional attribute through without a branch.
        """
        if isinstance(outputs, int):
            names = [self.fresh(op_type if outputs == 1 else f"{op_type}:{i}") for i in range(outputs)]
        else:
            names = [self.claim(o) for o in outputs]
        node_name = self.claim(name) if name is not None else self.fresh(f"{op_type}#node")
        kept = {key: value for key, value in attrs.items() if value is not None}
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=node_name, **kept))
        return names[0]

    def append(self, node: onnx.NodeProto) -> None:
        """Take ``node`` as it is (a node of the graph being rewritten), in emission order."""
        self.claim(node.name)
        for output in node.output:
            self.claim(output)
        self.nodes.append(node)

    # -- the graph's interface ------------------------------------------------------------------

    def input(
        self,
        name: str,
        shape: Sequence[int | str | None] | None,
        elem: int = TensorProto.FLOAT,
        *,
        leading: bool = False,
    ) -> str:
        """Declare graph input ``name`` (once: a second declaration of it keeps the first).

        ``leading`` puts it before the inputs declared so far: an interface input known only once
        emission ends (the inverse's seed) still comes first, where a reader looks for it.
        """
        if name not in self.inputs:
            info = helper.make_tensor_value_info(self.claim(name), elem, _dims(shape))
            if leading:
                self.inputs = {name: info, **self.inputs}
            else:
                self.inputs[name] = info
        return name

    def output(
        self, name: str, shape: Sequence[int | str | None] | None = None, elem: int | None = TensorProto.FLOAT
    ) -> str:
        """Declare tensor ``name`` a graph output (shape None: left to whoever runs it; elem None: no
        type at all, for a probe whose output type onnxruntime must find itself)."""
        if elem is None:
            info = helper.make_empty_tensor_value_info(self.claim(name))
        else:
            info = helper.make_tensor_value_info(self.claim(name), elem, _dims(shape))
        self.outputs.append(info)
        return name

    def model(self, *, ir_version: int, producer_name: str = "onnxviz") -> onnx.ModelProto:
        """The ModelProto of everything emitted, importing the default domain at ``opset``."""
        graph = helper.make_graph(
            self.nodes, self.name, list(self.inputs.values()), self.outputs, list(self.initializers.values())
        )
        opsets = [helper.make_opsetid("", self.opset)]
        model = helper.make_model(graph, opset_imports=opsets, producer_name=producer_name)
        model.ir_version = ir_version
        return model


def _dims(shape: Sequence[int | str | None] | None) -> list[int | str | None] | None:
    return None if shape is None else list(shape)
