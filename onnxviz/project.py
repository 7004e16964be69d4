"""Former home of the projection: the engine is ``onnxviz.runtime.projector``, the analysis and its
result ``onnxviz.analyses.project``. These names stay importable from here."""

from onnxviz.analyses.project import Projection, select_channels
from onnxviz.runtime.projector import Projector, channel_strengths, make_seeds, seeded_tensor

__all__ = ["Projection", "Projector", "channel_strengths", "make_seeds", "seeded_tensor", "select_channels"]
