"""onnxviz: make any exported ONNX CNN explain itself.

import onnxviz
model = onnxviz.load("model.onnx")
p = model.project("cat.png", node="conv5", top=9)
p.save("conv5.png")
"""

from onnxviz.analyses.project import Projection
from onnxviz.api import CheckResult, Engine, LayerInfo, Model, compare, evolution, load
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

__version__ = "0.1.0"
__all__ = [
    "CheckResult",
    "DeviceError",
    "Engine",
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
    "evolution",
    "load",
]
