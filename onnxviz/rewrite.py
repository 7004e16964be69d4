"""Forward surgery, as small passes that each state what they need of the graph.

* ``add_switches``: the MaxPools on the projection path also emit their argmax indices;
* ``expose_outputs``: the chosen activation and every tensor the inverse reads become the graph's
  outputs, and nothing else is (so the forward stops at the chosen layer);
* ``prune``: nodes no output needs are dropped;
* ``dynamic_batch``: the input's batch axis becomes symbolic, and Reshape shapes that hard-code
  the exported batch size copy it from their input instead.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnxviz.errors import UnsupportedOpError
from onnxviz.model import MIN_OPSET_FOR_SWITCHES, ModelGraph, default_opset, upstream_nodes


@dataclass
class PassResult:
    model: onnx.ModelProto
    modified: bool


def add_switches(model: onnx.ModelProto, switches: dict[str, str]) -> PassResult:
    """Give each named MaxPool node the Indices output ``switches[node]``."""
    if switches and default_opset(model) < MIN_OPSET_FOR_SWITCHES:
        raise UnsupportedOpError(
            f"MaxPool has no Indices output before opset {MIN_OPSET_FOR_SWITCHES}; this graph is opset "
            f"{default_opset(model)}.",
            "Upgrade the model with onnx.version_converter.",
        )
    modified = False
    for node in model.graph.node:
        wanted = switches.get(node.name)
        if wanted is None:
            continue
        if len(node.output) > 1 and node.output[1]:
            if node.output[1] != wanted:
                raise UnsupportedOpError(f"MaxPool '{node.name}' already names its indices '{node.output[1]}'.")
            continue
        if len(node.output) == 1:
            node.output.append(wanted)
        else:
            node.output[1] = wanted
        modified = True
    return PassResult(model, modified)


def expose_outputs(
    model: onnx.ModelProto, outputs: list[str], int64_outputs: set[str], shapes: dict[str, tuple[int, ...]]
) -> PassResult:
    """Make ``outputs`` the graph outputs, in this order, with a symbolic batch axis."""
    del model.graph.output[:]
    for name in outputs:
        elem = TensorProto.INT64 if name in int64_outputs else TensorProto.FLOAT
        dims = ["N", *shapes[name][1:]] if name in shapes else None
        model.graph.output.append(helper.make_tensor_value_info(name, elem, dims))
    return PassResult(model, True)


def prune(model: onnx.ModelProto) -> PassResult:
    """Drop nodes and initializers that no graph output depends on."""
    producer = {o: n for n in model.graph.node for o in n.output}
    needed = {id(n) for n in upstream_nodes(producer, [o.name for o in model.graph.output])}
    kept = [n for n in model.graph.node if id(n) in needed]
    modified = len(kept) != len(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    used = {i for n in kept for i in n.input}
    initializers = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)
    inputs = [i for i in model.graph.input if i.name in used]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    del model.graph.value_info[:]
    return PassResult(model, modified)


def dynamic_batch(
    model: onnx.ModelProto,
    input_name: str,
    shapes: dict[str, tuple[int, ...]] | None = None,
    unbatched: Collection[str] = (),
) -> PassResult:
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

    Requires: where ``shapes`` (at the exported batch) are given, only Reshapes of tensors of rank 2
    or more whose first axis has the batch size are touched; a flatten-everything Reshape is not
    a batch Reshape, and the model then stays at batch 1.
    """
    modified = False
    fixed_batch = None
    for inp in model.graph.input:
        if inp.name == input_name:
            dim = inp.type.tensor_type.shape.dim[0]
            if dim.HasField("dim_value"):
                fixed_batch = dim.dim_value
                dim.Clear()
                dim.dim_param = "N"
                modified = True
    if fixed_batch is None:
        return PassResult(model, modified)
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
    if fixed_batch == 1:
        new_nodes.extend(_batch_constant_concat_inputs(model, shapes, unbatched))
    if new_nodes:
        _insert_before(model, new_nodes)
    return PassResult(model, modified)


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


def forward_model(
    graph: ModelGraph, outputs: list[str], switches: dict[str, str], shapes: dict[str, tuple[int, ...]]
) -> onnx.ModelProto:
    """The forward graph for a projection: switches on, chosen tensors out, the rest cut away."""
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    add_switches(model, switches)
    shapes = dict(shapes)
    for node in graph.nodes:
        if node.name in switches:
            shapes[switches[node.name]] = shapes[node.output[0]]
    expose_outputs(model, outputs, set(switches.values()), shapes)
    prune(model)
    dynamic_batch(model, graph.input_name, shapes, graph.constants.keys())
    return model


def cut_between(
    graph: ModelGraph, start: str, shapes: dict[str, tuple[int, ...]], outputs: list[str]
) -> onnx.ModelProto:
    """The part of the graph from tensor ``start`` (made the input) to ``outputs``, batch made dynamic."""
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    keep = {n.name for n in upstream_nodes(graph.producer, outputs, frozenset({start}))}
    kept = [n for n in model.graph.node if n.name in keep]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    del model.graph.input[:]
    model.graph.input.append(helper.make_tensor_value_info(start, TensorProto.FLOAT, list(shapes[start])))
    expose_outputs(model, outputs, set(), shapes)
    prune(model)
    dynamic_batch(model, start, shapes, graph.constants.keys())
    return model
