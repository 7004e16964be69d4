"""Former home of occlusion: the analysis and its result are ``onnxviz.analyses.occlusion``, the
occluder graph ``onnxviz.runtime.perturb`` and batching ``onnxviz.runtime.batching``. These names
stay importable from here."""

from onnxviz.analyses.occlusion import Grid, OcclusionMap, fill_values, make_grid, score_tensor, softmax
from onnxviz.runtime.batching import batch_size_for
from onnxviz.runtime.perturb import OCCLUDED, occluder_model

__all__ = [
    "OCCLUDED",
    "Grid",
    "OcclusionMap",
    "batch_size_for",
    "fill_values",
    "make_grid",
    "occluder_model",
    "score_tensor",
    "softmax",
]
