"""Constant folding: what rules read as arrays is computed once, at load.

Old model-zoo graphs make weights with ConstantOfShape/Mul chains, exporters put pads and shapes
in Constant nodes, and TorchScript computes channel-split bounds from ``Shape → Gather → Div →
Mul``. Folding evaluates every node whose inputs are known, with ONNX's reference evaluator (or
onnxruntime for the ops it lacks), and records the values; the graph itself is not changed, so
the forward model still computes them at run time, at any batch.
"""

from __future__ import annotations

import numpy as np
import onnx

from onnxviz.graph.attributes import constant_node_value, node_attr
from onnxviz.graph.emit import GraphEmitter
from onnxviz.graph.ops import NON_FOLDABLE_OPS, SHAPE_READER_OPS


def fold_constants(nodes: list[onnx.NodeProto], constants: dict[str, np.ndarray], opset: int) -> None:
    """Add to ``constants`` the outputs of every node (in topological ``nodes``) whose inputs are
    all constant."""
    from onnx.reference import ReferenceEvaluator

    for node in nodes:
        if node.op_type == "Constant":
            constants[node.output[0]] = constant_node_value(node)
            continue
        if not _foldable(node) or not all((not t) or t in constants for t in node.input):
            continue
        try:
            values = evaluate_node(ReferenceEvaluator, node, constants, opset)
        except Exception:  # a node the evaluators cannot run stays a computed tensor
            continue
        for name, value in zip(node.output, values, strict=False):
            if name:
                constants[name] = np.asarray(value)


def fold_shape_arithmetic(
    nodes: list[onnx.NodeProto],
    constants: dict[str, np.ndarray],
    signal: set[str],
    shapes: dict[str, tuple[int, ...]],
    opset: int,
) -> bool:
    """Evaluate the arithmetic on ``Shape``/``Size`` of image tensors for the shapes (batch 1) given.

    Rules need such values (a channel split's Slice bounds) as numbers, but only those that do not
    depend on the batch size: the arithmetic is evaluated twice, with the signal tensors' batch
    axis at 1 and at 2, and a value enters ``constants`` (and its shape ``shapes``) only if both
    agree. ``Shape(x)[0]`` and whatever is computed from it stay unknown, as they must.
    Returns whether anything was folded.
    """
    from onnx.reference import ReferenceEvaluator

    batches = (1, 2)
    known: list[dict[str, np.ndarray]] = [{}, {}]
    folded = False
    for node in nodes:
        if node.op_type in SHAPE_READER_OPS and node.input[0] in signal:
            if node.input[0] not in shapes:
                continue
            for values, batch in zip(known, batches, strict=True):
                values[node.output[0]] = shape_reader_value(node, (batch, *shapes[node.input[0]][1:]))
            continue
        if not _foldable(node) or not node.input:
            continue
        inputs = [t for t in node.input if t]
        if not any(t in known[0] for t in inputs) or any(t in signal for t in inputs):
            continue
        if not all(t in known[0] or t in constants for t in inputs):
            continue
        try:
            results = [evaluate_node(ReferenceEvaluator, node, {**constants, **values}, opset) for values in known]
        except Exception:  # not evaluable: the value stays unknown, as an unfolded tensor
            continue
        for i, name in enumerate(node.output):
            if not name or i >= len(results[0]):
                continue
            at_one, at_two = (np.asarray(r[i]) for r in results)
            known[0][name], known[1][name] = at_one, at_two
            if at_one.shape == at_two.shape and np.array_equal(at_one, at_two) and name not in signal:
                constants[name] = at_one
                shapes[name] = tuple(at_one.shape)
                folded = True
    return folded


def _foldable(node: onnx.NodeProto) -> bool:
    return node.op_type not in NON_FOLDABLE_OPS and node.domain in ("", "ai.onnx")


def shape_reader_value(node: onnx.NodeProto, shape: tuple[int, ...]) -> np.ndarray:
    """What ``Shape`` (with its ``start``/``end``) or ``Size`` returns for a tensor of ``shape``."""
    if node.op_type == "Size":
        return np.array(int(np.prod(shape)), np.int64)
    start, end = node_attr(node, "start", 0), node_attr(node, "end", None)
    return np.array(shape[start:end], np.int64)


def evaluate_node(evaluator_cls, node: onnx.NodeProto, constants: dict[str, np.ndarray], opset: int):
    """The node's outputs for constant inputs: ONNX's reference evaluator, or onnxruntime for the
    ops the evaluator lacks at this opset (it has DequantizeLinear only from opset 19, so the
    weights of a QDQ model at opset 17 would otherwise stay unfolded)."""
    try:
        return _evaluate_with(evaluator_cls, node, constants, opset)
    except Exception:
        return _evaluate_with_onnxruntime(node, constants, opset)


def _evaluate_with_onnxruntime(node: onnx.NodeProto, constants: dict[str, np.ndarray], opset: int):
    import onnxruntime as ort

    from onnxviz.runtime.sessions import ir_version_for

    model = _single_node_model(node, constants, opset, ir_version_for(opset))
    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: a refusal here is reported (or handled) by onnxviz
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {t: constants[t] for t in node.input if t})


def _single_node_model(
    node: onnx.NodeProto, constants: dict[str, np.ndarray], opset: int, ir_version: int
) -> onnx.ModelProto:
    probe = GraphEmitter("fold", opset=opset)
    for tensor in node.input:
        if tensor:
            probe.input(tensor, None, onnx.helper.np_dtype_to_tensor_dtype(constants[tensor].dtype))
    probe.append(node)
    for output in node.output:
        if output:
            probe.output(output, elem=None)
    return probe.model(ir_version=ir_version)


def _evaluate_with(evaluator_cls, node: onnx.NodeProto, constants: dict[str, np.ndarray], opset: int):
    model = _single_node_model(node, constants, opset, onnx.IR_VERSION)
    return evaluator_cls(model).run(None, {t: constants[t] for t in node.input if t})
