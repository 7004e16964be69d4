"""Reading what a node or a model states: attributes, the default-domain opset, tensor values."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from onnxviz.errors import InvalidModelError, ModelLoadError


def node_attr(node: onnx.NodeProto, name: str, default=None):
    """An attribute's Python value (bytes decoded), or ``default``."""
    value = next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)
    return value.decode() if isinstance(value, bytes) else value


def default_opset(model: onnx.ModelProto) -> int:
    """The opset of the default (``ai.onnx``) domain; 1 when the model does not import it."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def tensor_array(tensor: onnx.TensorProto, what: str) -> np.ndarray:
    """A TensorProto's values; data that does not fill its dims (a truncated file) is an error."""
    try:
        return numpy_helper.to_array(tensor)
    except Exception as exc:  # numpy's reshape or onnx's dtype lookup, depending on the defect
        raise InvalidModelError(
            f"The data of {what} does not match its declared shape {list(tensor.dims)} ({exc}).",
            "The file is truncated or corrupt; export it again.",
        ) from None


def constant_node_value(node: onnx.NodeProto) -> np.ndarray:
    """The value of a ``Constant`` node, whichever of its value attributes it uses."""
    for a in node.attribute:
        if a.name == "value":
            return tensor_array(a.t, f"the value of Constant node '{node.name}'")
        if a.name == "value_float":
            return np.array(a.f, dtype=np.float32)
        if a.name == "value_floats":
            return np.array(list(a.floats), dtype=np.float32)
        if a.name == "value_int":
            return np.array(a.i, dtype=np.int64)
        if a.name == "value_ints":
            return np.array(list(a.ints), dtype=np.int64)
    raise ModelLoadError(f"Constant node '{node.name}' has no value onnxviz can read.")
