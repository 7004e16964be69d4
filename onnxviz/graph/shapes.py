"""Static tensor shapes for one input shape: ONNX shape inference, and one real run where
inference gives up (or, after a ceil-mode pool, cannot be trusted)."""

from __future__ import annotations

import numpy as np
import onnx

from onnxviz.errors import InvalidModelError, runtime_message
from onnxviz.graph.attributes import node_attr
from onnxviz.graph.ops import CEIL_MODE_OPS

# Models with more weight bytes than this are copied without their large weights for inference.
LIGHT_COPY_LIMIT = 1 << 20
# Initializers up to this size stay in that copy: shape inference may need their values.
SMALL_TENSOR_BYTES = 4096


def static_shapes(
    model: onnx.ModelProto,
    nodes: list[onnx.NodeProto],
    input_name: str,
    input_shape: tuple[int, ...],
    signal: set[str],
    constants: dict[str, np.ndarray],
    custom_ops: tuple[str, ...] = (),
) -> dict[str, tuple[int, ...]]:
    """Full static shapes of every signal tensor, every tensor a signal node reads beside the signal
    (a class token expanded to the batch: the inverse sizes its share of a Concat), and every
    constant, for ``input_shape``."""
    shapes = inferred_shapes(model, input_name, input_shape)
    beside = {t for n in nodes if any(i in signal for i in n.input) for t in n.input if t and t not in constants}
    needed = (signal | beside) - {input_name}
    wanted = sorted(t for t in needed if t not in shapes)
    if any(n.op_type in CEIL_MODE_OPS and node_attr(n, "ceil_mode", 0) for n in nodes):
        # ONNX shape inference keeps a ceil_mode window that starts in the right padding, which
        # onnxruntime (and the spec) drop: trust only real shapes downstream of such pools.
        wanted = sorted(needed)
    if wanted:
        shapes.update(_shapes_from_run(model, input_name, input_shape, wanted, custom_ops))
    shapes[input_name] = input_shape
    for name, value in constants.items():
        shapes[name] = tuple(value.shape)
    return shapes


def inferred_shapes(model: onnx.ModelProto, input_name: str, input_shape: tuple[int, ...]) -> dict:
    """ONNX shape inference with the input fixed; large weights enter as typed inputs, so the
    (possibly hundreds of MB) weight data is never copied or serialized for it."""
    light = onnx.ModelProto()
    light.CopyFrom(model) if weight_bytes(model) < LIGHT_COPY_LIMIT else _copy_without_weights(model, light)
    del light.graph.value_info[:]
    for out in light.graph.output:
        out.type.tensor_type.ClearField("shape")
    for inp in light.graph.input:
        if inp.name == input_name:
            for dim, value in zip(inp.type.tensor_type.shape.dim, input_shape, strict=True):
                dim.Clear()
                dim.dim_value = value
    try:
        inferred = onnx.shape_inference.infer_shapes(light, strict_mode=False, data_prop=True)
    except Exception:
        return {}
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        known = vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims)
        if known and dims:
            shapes[vi.name] = tuple(d.dim_value for d in dims)
    return shapes


def weight_bytes(model: onnx.ModelProto) -> int:
    return sum(len(t.raw_data) for t in model.graph.initializer)


def _copy_without_weights(model: onnx.ModelProto, into: onnx.ModelProto) -> None:
    """Copy ``model`` into ``into`` with large initializers replaced by inputs of the same type."""
    into.CopyFrom(
        onnx.ModelProto(
            ir_version=model.ir_version, opset_import=model.opset_import, graph=onnx.GraphProto(name=model.graph.name)
        )
    )
    graph = into.graph
    graph.node.extend(model.graph.node)
    graph.output.extend(model.graph.output)
    listed = {i.name for i in model.graph.input}
    graph.input.extend(model.graph.input)
    for tensor in model.graph.initializer:
        if len(tensor.raw_data) <= SMALL_TENSOR_BYTES and not tensor.external_data:
            graph.initializer.append(tensor)
            continue
        typed = onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))
        (graph.value_info if tensor.name in listed else graph.input).append(typed)


def _shapes_from_run(
    model: onnx.ModelProto,
    input_name: str,
    input_shape: tuple[int, ...],
    wanted: list[str],
    custom_ops: tuple[str, ...] = (),
) -> dict[str, tuple[int, ...]]:
    """Real shapes from one onnxruntime run on zeros, for tensors shape inference left open."""
    import onnxruntime as ort

    from onnxviz.runtime.sessions import session_options

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in sorted(wanted))
    options = session_options(custom_ops)
    try:
        session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
        values = session.run(None, {input_name: np.zeros(input_shape, np.float32)})
    except Exception as exc:  # onnxruntime raises its own untyped exceptions for any invalid graph
        raise InvalidModelError(
            f"onnxruntime cannot run the model to infer its tensor shapes: {runtime_message(exc)}",
            "The graph is invalid as onnxruntime reads it (an attribute, a shape or a type that does not fit); "
            "re-export the model, or check that onnxruntime.InferenceSession loads and runs it.",
        ) from None
    return {t: tuple(v.shape) for t, v in zip(sorted(wanted), values, strict=True)}
