"""The dynamic-batch pass: the input's batch axis becomes symbolic, and Reshape shapes that
hard-code the exported batch size copy it from their input instead."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnxviz.passes.base import Pass, PassPostconditionError, PassPreconditionError, PassResult


class DynamicBatch(Pass):
    """Symbolic batch on the input; Reshape targets that hard-code the exported batch stop doing so.

    The first entry of such a target becomes, in order of preference:

    * ``0`` (copy the input's batch) where the Reshape has ``allowzero=0``, as TorchScript and
      tf2onnx write it;
    * ``-1`` where ``allowzero=1`` (the dynamo exporter writes every ``view`` so) and no other entry
      is ``-1`` or ``0``: the other entries are fixed, so ``-1`` can only be the batch;
    * otherwise the input's batch read at run time, ``Concat(Shape(data)[0:1], target[1:])``;

    and constants of batch 1 (initializers, Constant nodes, and the ``unbatched`` tensors computed
    from them alone, shaped by ``shapes``) concatenated to batched tensors are expanded to their
    batch.

    Where ``shapes`` (at the exported batch) are given, only Reshapes of tensors of rank 2 or more
    whose first axis has the batch size are touched; a flatten-everything Reshape is not a batch
    Reshape, and the model then stays at batch 1.

    Requires: ``input_name`` is a graph input with a batch axis.
    Ensures: that axis is symbolic.
    Works in place: changes the model it is given and returns it.
    """

    name = "dynamic_batch"
    in_place = True

    def __init__(
        self, input_name: str, shapes: dict[str, tuple[int, ...]] | None = None, unbatched: Collection[str] = ()
    ) -> None:
        self.input_name = input_name
        self.shapes = shapes
        self.unbatched = unbatched

    def requires(self, model: onnx.ModelProto) -> None:
        """The input is a graph input with a batch axis."""
        found = _input(model, self.input_name)
        if found is None or not found.type.tensor_type.shape.dim:
            raise PassPreconditionError(
                f"'{self.input_name}' is not an input of this graph with a batch axis, so its batch cannot be "
                "made dynamic.",
                "Name the graph input that carries the batch.",
            )

    def call(self, model: onnx.ModelProto) -> PassResult:
        modified = False
        fixed_batch = None
        for inp in model.graph.input:
            if inp.name == self.input_name:
                dim = inp.type.tensor_type.shape.dim[0]
                if dim.HasField("dim_value"):
                    fixed_batch = dim.dim_value
                    dim.Clear()
                    dim.dim_param = "N"
                    modified = True
        if fixed_batch is None:
            return PassResult(model, modified)
        new_nodes = _free_reshape_targets(model, fixed_batch, self.shapes)
        if fixed_batch == 1:
            new_nodes.extend(_batch_constant_concat_inputs(model, self.shapes, self.unbatched))
        if new_nodes:
            _insert_before(model, new_nodes)
        return PassResult(model, modified)

    def ensures(self, model: onnx.ModelProto) -> None:
        """The input's batch axis is symbolic."""
        if _input(model, self.input_name).type.tensor_type.shape.dim[0].HasField("dim_value"):
            raise PassPostconditionError(f"The batch axis of '{self.input_name}' is still fixed.")


def dynamic_batch(
    model: onnx.ModelProto,
    input_name: str,
    shapes: dict[str, tuple[int, ...]] | None = None,
    unbatched: Collection[str] = (),
) -> PassResult:
    """Make the batch of ``input_name`` symbolic (see ``DynamicBatch``)."""
    return DynamicBatch(input_name, shapes, unbatched)(model)


def _input(model: onnx.ModelProto, name: str) -> onnx.ValueInfoProto | None:
    return next((i for i in model.graph.input if i.name == name), None)


def _free_reshape_targets(
    model: onnx.ModelProto, fixed_batch: int, shapes: dict[str, tuple[int, ...]] | None
) -> list[tuple[onnx.NodeProto, list[onnx.NodeProto]]]:
    """Rewrite the Reshape targets that hard-code ``fixed_batch``; returns the nodes to insert
    before a Reshape whose batch must be read from its data at run time."""
    targets = _constant_int_tensors(model)
    added: dict[str, str] = {}
    new_nodes: list[tuple[onnx.NodeProto, list[onnx.NodeProto]]] = []
    for node in model.graph.node:
        if node.op_type != "Reshape" or node.input[1] not in targets:
            continue
        data_shape = shapes.get(node.input[0]) if shapes is not None else None
        if shapes is not None and (data_shape is None or len(data_shape) < 2 or data_shape[0] != fixed_batch):
            continue
        target = targets[node.input[1]]
        if target.ndim != 1 or target.size < 2 or target[0] != fixed_batch:
            continue
        allowzero = any(a.name == "allowzero" and a.i for a in node.attribute)
        rest = target[1:]
        if not allowzero or not np.any(rest <= 0):
            copied = target.astype(np.int64)
            copied[0] = -1 if allowzero else 0
            key = f"{node.input[1]}__batch_{'free' if allowzero else 'copied'}"
            if key not in added:
                model.graph.initializer.append(numpy_helper.from_array(copied, key))
                added[key] = key
            node.input[1] = key
            continue
        # Another -1 (or a literal 0) in the target: the batch must come from the data itself.
        prefix = f"{node.name or node.output[0]}__batch"
        rest_name = f"{prefix}_rest"
        model.graph.initializer.append(numpy_helper.from_array(rest.astype(np.int64), rest_name))
        shape_node = helper.make_node("Shape", [node.input[0]], [f"{prefix}_shape"], name=f"{prefix}_shape")
        first = helper.make_node(
            "Slice",
            [f"{prefix}_shape", f"{prefix}_zero", f"{prefix}_one"],
            [f"{prefix}_n"],
            name=f"{prefix}_n",
        )
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(np.array([0], np.int64), f"{prefix}_zero"),
                numpy_helper.from_array(np.array([1], np.int64), f"{prefix}_one"),
            ]
        )
        concat = helper.make_node("Concat", [f"{prefix}_n", rest_name], [f"{prefix}_target"], axis=0, name=prefix)
        node.input[1] = f"{prefix}_target"
        new_nodes.append((node, [shape_node, first, concat]))
    return new_nodes


def _batch_constant_concat_inputs(
    model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]] | None, unbatched: Collection[str]
) -> list[tuple[onnx.NodeProto, list[onnx.NodeProto]]]:
    """Constants concatenated to batched tensors, repeated to their batch.

    The dynamo exporter folds ``cls_token.expand(x.shape[0], -1, -1)`` at the exported batch of 1
    into a constant of shape (1, …) (TorchScript into a constant Expand), which a Concat along
    another axis then joins to the batch: at batch K the shapes no longer agree. Such a constant
    is expanded to the batch of the tensor it joins, read at run time.
    """
    constants = {name: shapes[name] for name in unbatched if shapes is not None and name in shapes}
    constants.update({t.name: tuple(t.dims) for t in model.graph.initializer})
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = tuple(node.attribute[0].t.dims)
    additions = []
    for node in model.graph.node:
        if node.op_type != "Concat":
            continue
        batched = [t for t in node.input if t not in constants and (shapes is None or t in shapes)]
        fixed = [i for i, t in enumerate(node.input) if len(constants.get(t, ())) >= 2 and constants[t][0] == 1]
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if not batched or not fixed or axis % len(constants[node.input[fixed[0]]]) == 0:
            continue
        prefix = f"{node.name or node.output[0]}__batch"
        extra = [helper.make_node("Shape", [batched[0]], [f"{prefix}_shape"], name=f"{prefix}_shape", start=0, end=1)]
        for i in fixed:
            name = node.input[i]
            rest = f"{prefix}_{i}_rest"
            model.graph.initializer.append(numpy_helper.from_array(np.array(constants[name][1:], np.int64), rest))
            target = f"{prefix}_{i}_target"
            extra.append(helper.make_node("Concat", [f"{prefix}_shape", rest], [target], axis=0, name=target))
            extra.append(helper.make_node("Expand", [name, target], [f"{prefix}_{i}"], name=f"{prefix}_{i}"))
            node.input[i] = f"{prefix}_{i}"
        additions.append((node, extra))
    return additions


def _constant_int_tensors(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Integer initializers and Constant-node values of the graph, by name (Reshape targets)."""
    found: dict[str, np.ndarray] = {}
    for tensor in model.graph.initializer:
        if tensor.data_type == TensorProto.INT64 and len(tensor.dims) == 1:
            found[tensor.name] = numpy_helper.to_array(tensor)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name in ("value", "value_ints"):
            attribute = node.attribute[0]
            value = (
                numpy_helper.to_array(attribute.t) if attribute.name == "value" else np.array(attribute.ints, np.int64)
            )
            if value.dtype == np.int64 and value.ndim == 1:
                found[node.output[0]] = value
    return found


def _insert_before(model: onnx.ModelProto, additions: list[tuple[onnx.NodeProto, list[onnx.NodeProto]]]) -> None:
    """Put each list of new nodes right before the node that reads them (keeps topological order)."""
    before = {id(node): extra for node, extra in additions}
    ordered: list[onnx.NodeProto] = []
    for node in model.graph.node:
        ordered.extend(before.get(id(node), []))
        ordered.append(node)
    copies = [onnx.NodeProto() for _ in ordered]
    for copy, node in zip(copies, ordered, strict=True):
        copy.CopyFrom(node)
    del model.graph.node[:]
    model.graph.node.extend(copies)
