"""The inverse-graph builder (deconvnet, guided backprop, saliency) and its op rules."""

from onnxviz.inverse.builder import PROJECTION, SEED, InverseGraph, build_inverse, signal_path, unsupported_reason
from onnxviz.inverse.context import MODES
from onnxviz.inverse.spec import InverseSpec

__all__ = [
    "MODES",
    "PROJECTION",
    "SEED",
    "InverseGraph",
    "InverseSpec",
    "build_inverse",
    "signal_path",
    "unsupported_reason",
]
