"""Numeric formats normalised at load: fp16 graphs run in float32, QOperator graphs become QDQ.

Both conversions keep what the model computes and only change how onnxviz can reach it:

* **fp16** (``onnxruntime.transformers.float16`` writes weights, activations and the graph's
  inputs and outputs in half precision): onnxruntime's CPU provider lacks fp16 kernels for many
  ops, and the inverse graphs are float32, so every fp16 tensor, Cast target and value type
  becomes float32. Weights convert exactly; activations are then computed more precisely than
  the fp16 model computes them, which is what a projection wants anyway.
* **QOperator** (``QLinearConv``, ``QGemm``, ``QLinearMatMul``, ``QLinearAdd`` …): each becomes
  its QDQ form, ``DequantizeLinear`` on the quantised activations and weights (W = (w − z_w)·s_w,
  bias b = b_q·s_x·s_w) → the float op → ``QuantizeLinear`` back to the same output scale and
  zero point, which onnxruntime fuses back into the same integer kernels. Activations stay
  quantised exactly where the model quantised them.
* **fused ReLUs** (both formats): quantisers drop the ReLU after a Conv, Gemm, MatMul or Add and
  let the output range do its work (zero point at the type's minimum, so negatives saturate to
  0). An explicit ``Relu`` is put back before such a QuantizeLinear: Q(relu(y)) = Q(y) for that
  range, so the forward computes the same (onnxruntime even fuses it away again), and the
  inverse sees the ReLU the paper's rules treat specially. A calibrated range starting exactly at
  0 after these ops means clipped outputs; an op whose outputs are non-negative anyway (a pool,
  a sigmoid) is not one of them, so no ReLU the float model lacked is invented there.

Quantised ops without a conversion are refused by name (``domain::Op``).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnxviz.errors import ModelLoadError, UnsupportedOpError
from onnxviz.graph.emit import GraphEmitter

HALF_TYPES = (TensorProto.FLOAT16, TensorProto.BFLOAT16)
# Quantised operator-format ops: every QLinear* op and these. Those without a converter (CONVERTERS) are refused.
QUANTIZED_PREFIX = "QLinear"
QUANTIZED_OTHERS = frozenset(
    {"QGemm", "ConvInteger", "MatMulInteger", "DynamicQuantizeMatMul", "QAttention", "QEmbedLayerNormalization"}
)


# -- fp16 -----------------------------------------------------------------------------------------


def half_to_float(model: onnx.ModelProto) -> bool:
    """Convert every fp16/bf16 tensor, Cast target and declared type of ``model`` to float32, in
    place. Returns whether the model had any."""
    changed = False
    for tensor in _tensors(model.graph):
        if tensor.data_type in HALF_TYPES:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name))
            changed = True
    for node in model.graph.node:
        for attribute in node.attribute:
            is_type = attribute.name in ("to", "dtype") and attribute.type == onnx.AttributeProto.INT
            if is_type and attribute.i in HALF_TYPES:
                attribute.i = TensorProto.FLOAT
                changed = True
    for value in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type in HALF_TYPES:
            tensor_type.elem_type = TensorProto.FLOAT
            changed = True
    return changed


def _tensors(graph: onnx.GraphProto):
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                yield attribute.t


# -- fused ReLUs ----------------------------------------------------------------------------------

RELU_FUSING_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "Add"})


def restore_fused_relus(model: onnx.ModelProto) -> int:
    """Put back, in place, the ReLUs a quantiser fused into an output range (see the module
    docstring). Returns how many."""
    initializers = {t.name: t for t in model.graph.initializer}  # read only the zero points asked for
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for tensor in node.input:
            consumers.setdefault(tensor, []).append(node)
    graph_outputs = {o.name for o in model.graph.output}
    emit = GraphEmitter(model.graph.name, reserved=_tensor_names(model))
    restored = 0
    for node in model.graph.node:
        emit.append(node)
        if node.op_type not in RELU_FUSING_OPS or not node.output or node.output[0] in graph_outputs:
            continue
        users = consumers.get(node.output[0], [])
        if len(users) != 1 or users[0].op_type != "QuantizeLinear" or len(users[0].input) < 3:
            continue
        zero_point_tensor = initializers.get(users[0].input[2])
        if zero_point_tensor is None:
            continue
        zero_point = numpy_helper.to_array(zero_point_tensor)
        if zero_point.dtype.kind not in "iu":
            continue
        if not np.all(zero_point == np.iinfo(zero_point.dtype).min):
            continue
        output = node.output[0]
        node.output[0] = emit.claim(f"{output}/before_relu")
        emit.op("Relu", [node.output[0]], outputs=[output], name=f"{node.name or output}/fused_relu")
        restored += 1
    del model.graph.node[:]
    model.graph.node.extend(emit.nodes)
    return restored


def _tensor_names(model: onnx.ModelProto) -> set[str]:
    """Every tensor name of the graph: no name an emitter generates may take one."""
    graph = model.graph
    names = {o for n in graph.node for o in n.output} | {t.name for t in graph.initializer}
    return names | {i.name for i in graph.input}


# -- QOperator → QDQ ------------------------------------------------------------------------------


def is_quantized_operator(node: onnx.NodeProto) -> bool:
    return node.op_type.startswith(QUANTIZED_PREFIX) or node.op_type in QUANTIZED_OTHERS


def operators_to_qdq(model: onnx.ModelProto) -> list[str]:
    """Rewrite the QOperator nodes of ``model`` in their QDQ form, in place. Returns the op types
    converted (empty when the model has none); an op with no conversion raises, naming it."""
    quantized = [n for n in model.graph.node if is_quantized_operator(n)]
    if not quantized:
        return []
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    writer = _Writer(model, values)
    for node in model.graph.node:
        convert = CONVERTERS.get(node.op_type) if is_quantized_operator(node) else None
        if node.op_type == "MaxPool" and len(node.output) == 1:
            convert = _integer_max_pool(writer.nodes)
        if is_quantized_operator(node) and convert is None:
            domain = node.domain or "ai.onnx"
            raise UnsupportedOpError(
                f"The quantised op {domain}::{node.op_type} (node '{node.name}') has no float equivalent in "
                "onnxviz, so the model cannot be inverted.",
                "Quantise the model in QDQ format (onnxruntime.quantization with quant_format=QDQ), or "
                "project the float model.",
            )
        if convert is None:
            writer.append(node)
            continue
        writer.prefix = node.name or node.output[0]
        try:
            convert(writer, node)
        except (ValueError, IndexError, KeyError, StopIteration):
            raise ModelLoadError(
                f"The quantised node '{node.name}' ({node.domain or 'ai.onnx'}::{node.op_type}) lacks inputs or "
                "attributes its op requires.",
                "The model is malformed; quantise the float model again.",
            ) from None
    del model.graph.node[:]
    model.graph.node.extend(writer.nodes)
    model.graph.initializer.extend(writer.initializers.values())
    return sorted({n.op_type for n in quantized})


class _Writer(GraphEmitter):
    """The converted graph: each converted node's QDQ nodes and float initializers where the node
    was (named after it: ``prefix``), the other nodes as they were."""

    def __init__(self, model: onnx.ModelProto, values: dict[str, np.ndarray]) -> None:
        super().__init__(model.graph.name, reserved=_tensor_names(model))
        self.values = values

    def dequantized(self, tensor: str, scale: str, zero_point: str, hint: str, axis: int | None = None) -> str:
        """A DequantizeLinear of a quantised input, weights included: kept quantised in the graph,
        onnxruntime fuses DQ → op → Q back into the integer kernel the QOperator model ran, so the
        forward computes what the user's model computes (onnxviz folds the weights to float for
        the inverse at load)."""
        attrs = {}
        if axis is not None and self._value(scale).size > 1:
            attrs["axis"] = axis
        inputs = [tensor, scale, zero_point] if zero_point else [tensor, scale]
        return self.op(
            "DequantizeLinear", inputs, outputs=[self.fresh(hint)], name=self.fresh(f"dequantize_{hint}"), **attrs
        )

    def bias(self, bias: str, scale: np.ndarray, axis: int) -> str:
        """DequantizeLinear of an int32 bias quantised at ``scale`` (per tensor or per channel), zero point 0."""
        scale = np.asarray(scale, np.float32).reshape(-1)
        scale_name = self.const(scale if scale.size > 1 else scale.reshape(()), "bias_scale")
        zero_name = self.const(np.zeros(scale.shape if scale.size > 1 else (), np.int32), "bias_zero_point")
        attrs = {"axis": axis} if scale.size > 1 else {}
        inputs = [bias, scale_name, zero_name]
        return self.op(
            "DequantizeLinear", inputs, outputs=[self.fresh("bias")], name=self.fresh("dequantize_bias"), **attrs
        )

    def quantized_output(self, value: str, scale: str, zero_point: str, output: str) -> None:
        inputs = [value, scale, zero_point] if zero_point else [value, scale]
        self.op("QuantizeLinear", inputs, outputs=[output], name=self.fresh("quantize"))

    def float_op(self, op_type: str, inputs: list[str], node: onnx.NodeProto, **attrs: object) -> str:
        """The float op that replaces ``node``: it keeps the name users know from the graph."""
        return self.op(op_type, inputs, outputs=[self.fresh("float")], name=node.name, **attrs)

    def _value(self, name: str) -> np.ndarray:
        if not name:
            return np.zeros((), np.uint8)
        if name not in self.values:
            raise UnsupportedOpError(
                f"The quantisation parameter '{name}' of node '{self.prefix}' is not constant; onnxviz can only "
                "convert quantised ops with constant scales and zero points."
            )
        return self.values[name]


# Ops that move quantised integers without computing: their output keeps the input's scale and zero point.
MOVING_OPS = frozenset({"Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity"})


def _integer_max_pool(emitted: list[onnx.NodeProto]):
    """A QOperator model max-pools its quantised integers directly (the max commutes with the
    monotone quantisation), which leaves onnxviz an integer layer it can neither expose nor invert.
    When the pooled tensor is quantised (it comes from a QuantizeLinear through ops that only move
    values), the pool becomes DQ → MaxPool → Q at that scale: the same values, a float layer."""
    quantized = {}
    for node in emitted:
        if node.op_type == "QuantizeLinear":
            quantized[node.output[0]] = (node.input[1], _optional(node, 2))
        elif node.op_type in MOVING_OPS | {"MaxPool"} and node.input and node.input[0] in quantized:
            quantized[node.output[0]] = quantized[node.input[0]]

    def convert(w: _Writer, node: onnx.NodeProto) -> None:
        if node.input[0] not in quantized:
            w.append(node)
            return
        scale, zero_point = quantized[node.input[0]]
        pooled = onnx.NodeProto()
        pooled.CopyFrom(node)  # name and attributes kept
        pooled.input[0] = w.dequantized(node.input[0], scale, zero_point, "x")
        pooled.output[0] = w.fresh("float")
        w.append(pooled)
        w.quantized_output(pooled.output[0], scale, zero_point, node.output[0])

    return convert


def _optional(node: onnx.NodeProto, index: int) -> str:
    return node.input[index] if len(node.input) > index else ""


def _qlinear_conv(w: _Writer, node: onnx.NodeProto) -> None:
    x, x_scale, x_zp, wq, w_scale, w_zp, y_scale, y_zp = node.input[:8]
    bias = _optional(node, 8)
    inputs = [w.dequantized(x, x_scale, x_zp, "x"), w.dequantized(wq, w_scale, w_zp, "weight", axis=0)]
    if bias:
        inputs.append(w.bias(bias, np.asarray(w._value(x_scale)) * np.asarray(w._value(w_scale)), axis=0))
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    w.quantized_output(w.float_op("Conv", inputs, node, **attrs), y_scale, y_zp, node.output[0])


def _qgemm(w: _Writer, node: onnx.NodeProto) -> None:
    """com.microsoft QGemm: the bias is int32 at scale α·s_a·s_b; no y_scale means a float output."""
    a, a_scale, a_zp, bq, b_scale, b_zp = node.input[:6]
    bias, y_scale, y_zp = _optional(node, 6), _optional(node, 7), _optional(node, 8)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    alpha = float(attrs.get("alpha", 1.0))
    b_axis = 0 if attrs.get("transB", 0) else 1
    inputs = [w.dequantized(a, a_scale, a_zp, "a"), w.dequantized(bq, b_scale, b_zp, "b", axis=b_axis)]
    if bias:
        inputs.append(w.bias(bias, alpha * np.asarray(w._value(a_scale)) * np.asarray(w._value(b_scale)), axis=0))
    gemm_attrs = {k: v for k, v in attrs.items() if k in ("alpha", "transA", "transB")}
    if not y_scale:
        w.op("Gemm", inputs, outputs=[node.output[0]], name=node.name, **gemm_attrs)
        return
    w.quantized_output(w.float_op("Gemm", inputs, node, **gemm_attrs), y_scale, y_zp, node.output[0])


def _qlinear_matmul(w: _Writer, node: onnx.NodeProto) -> None:
    a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp = node.input[:8]
    inputs = [w.dequantized(a, a_scale, a_zp, "a", axis=-2), w.dequantized(b, b_scale, b_zp, "b", axis=-1)]
    w.quantized_output(w.float_op("MatMul", inputs, node), y_scale, y_zp, node.output[0])


def _qlinear_binary(op_type: str):
    def convert(w: _Writer, node: onnx.NodeProto) -> None:
        a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp = (
            node.input[i] if i < len(node.input) else "" for i in range(8)
        )
        inputs = [w.dequantized(a, a_scale, a_zp, "a"), w.dequantized(b, b_scale, b_zp, "b")]
        w.quantized_output(w.float_op(op_type, inputs, node), y_scale, y_zp, node.output[0])

    return convert


def _qlinear_unary(op_type: str, *attribute_names: str):
    """QLinearGlobalAveragePool, QLinearAveragePool, QLinearSigmoid, QLinearLeakyRelu: X, x_scale,
    x_zp, y_scale, y_zp, and the float op's own attributes."""

    def convert(w: _Writer, node: onnx.NodeProto) -> None:
        x, x_scale, x_zp, y_scale, y_zp = (node.input[i] if i < len(node.input) else "" for i in range(5))
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.pop("channels_last", 0):
            raise UnsupportedOpError(
                f"{node.op_type} node '{node.name}' works channels-last; onnxviz converts only the NCHW form.",
                "Quantise the model in QDQ format instead.",
            )
        kept = {k: v for k, v in attrs.items() if k in attribute_names}
        pooled = w.float_op(op_type, [w.dequantized(x, x_scale, x_zp, "x")], node, **kept)
        w.quantized_output(pooled, y_scale, y_zp, node.output[0])

    return convert


def _qlinear_concat(w: _Writer, node: onnx.NodeProto) -> None:
    """com.microsoft QLinearConcat: y_scale, y_zp, then (X, x_scale, x_zp) per input."""
    y_scale, y_zp = node.input[:2]
    triples = [node.input[i : i + 3] for i in range(2, len(node.input), 3)]
    inputs = [w.dequantized(x, s, z, f"x{i}") for i, (x, s, z) in enumerate(triples)]
    axis = next(helper.get_attribute_value(a) for a in node.attribute if a.name == "axis")
    w.quantized_output(w.float_op("Concat", inputs, node, axis=axis), y_scale, y_zp, node.output[0])


POOL_ATTRIBUTES = ("kernel_shape", "strides", "pads", "auto_pad", "ceil_mode", "count_include_pad", "dilations")
CONVERTERS = {
    "QLinearConv": _qlinear_conv,
    "QGemm": _qgemm,
    "QLinearMatMul": _qlinear_matmul,
    "QLinearAdd": _qlinear_binary("Add"),
    "QLinearMul": _qlinear_binary("Mul"),
    "QLinearGlobalAveragePool": _qlinear_unary("GlobalAveragePool"),
    "QLinearAveragePool": _qlinear_unary("AveragePool", *POOL_ATTRIBUTES),
    "QLinearSigmoid": _qlinear_unary("Sigmoid"),
    "QLinearLeakyRelu": _qlinear_unary("LeakyRelu", "alpha"),
    "QLinearConcat": _qlinear_concat,
}
