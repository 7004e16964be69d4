"""onnxviz: make any exported ONNX CNN explain itself.

import onnxviz
model = onnxviz.load("model.onnx")
p = model.project("cat.png", node="conv5", top=9)
p.save("conv5.png")
"""

from onnxviz.api import CheckResult, LayerInfo, Model, compare, load
from onnxviz.errors import (
    DeviceError,
    ImageError,
    InferenceError,
    ModelLoadError,
    OnnxvizError,
    UnknownNodeError,
    UnsupportedOpError,
    UsageError,
)
from onnxviz.project import Projection

__version__ = "0.1.0"
__all__ = [
    "CheckResult",
    "DeviceError",
    "ImageError",
    "InferenceError",
    "LayerInfo",
    "Model",
    "ModelLoadError",
    "OnnxvizError",
    "Projection",
    "UnknownNodeError",
    "UnsupportedOpError",
    "UsageError",
    "compare",
    "load",
]
