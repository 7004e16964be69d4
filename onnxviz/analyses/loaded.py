"""What every analysis works on: a loaded graph, its device, its preprocessing, its warm engines.

``onnxviz.api.Model`` derives from this and adds one method per analysis; the analyses take a
``LoadedModel`` and never the facade, so they only look down.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from onnxviz.data.preprocess import Preprocessing, prepare, read_image
from onnxviz.errors import UsageError
from onnxviz.graph.model import Layer, ModelGraph
from onnxviz.inverse import MODES
from onnxviz.runtime.engines import Engines, ForwardKey, ProjectorKey
from onnxviz.runtime.forward import ForwardRunner
from onnxviz.runtime.projector import Projector
from onnxviz.runtime.sessions import Device

LRN_MODES = ("exact", "passthrough")
Image = str | Path | np.ndarray


class LoadedModel:
    """A loaded ONNX CNN with its device, preprocessing and cached engines."""

    def __init__(self, graph: ModelGraph, device: Device, preprocessing: Preprocessing) -> None:
        self.graph = graph
        self.device = device
        self.preprocessing = preprocessing
        self.engines = Engines(graph, device)

    @property
    def layout(self) -> str:
        return self.graph.layout if self.preprocessing.layout == "auto" else self.preprocessing.layout

    @property
    def height_axis(self) -> int:
        return 1 if self.layout == "nhwc" else 2

    def input_shape(self, image: np.ndarray | None = None) -> tuple[int, ...]:
        """The concrete input shape (batch 1): the model's own, or --size / the image where free."""
        size = self.preprocessing.size
        height, width = size if size else (None, None)
        if image is not None and height is None:
            if image.dtype == np.uint8 and image.ndim >= 2:
                height, width = image.shape[:2]
            elif image.dtype != np.uint8 and image.ndim >= 3:
                h_axis = -3 if self.layout == "nhwc" else -2
                height, width = image.shape[h_axis], image.shape[h_axis + 1]
        shape = self.graph.concrete_input_shape(height, width)
        if size is not None:
            h_axis = self.height_axis
            if (shape[h_axis], shape[h_axis + 1]) != tuple(size):
                raise UsageError(
                    f"--size {size[0]},{size[1]} does not fit the model, whose input is fixed at "
                    f"{shape[h_axis]}x{shape[h_axis + 1]}.",
                    "Leave --size out for models with a fixed input size.",
                )
        return shape

    def prepare(self, image: Image) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...]]:
        """(input tensor, the picture shown beside results or None for a tensor input, input shape)."""
        if isinstance(image, (str, Path)):
            image = read_image(image)
        image = np.asarray(image)
        shape = self.input_shape(image)
        prepared = prepare(image, shape, self.layout, self.preprocessing)
        if prepared.tensor.shape != shape:
            raise UsageError(
                f"The prepared input has shape {list(prepared.tensor.shape)}, but the model's input "
                f"'{self.graph.input_name}' is {list(shape)}: the {self.layout.upper()} layout does not fit it.",
                f"Use --layout auto (this model reads {self.graph.layout.upper()}).",
            )
        return prepared.tensor, prepared.picture, shape

    def resolve(self, node: str) -> Layer:
        return self.graph.resolve(node)

    def labels(self) -> list[str] | None:
        """Class names from the model's metadata (``onnxviz.labels``, a JSON list), if any."""
        text = self.graph.metadata.get("onnxviz.labels")
        try:
            return [str(v) for v in json.loads(text)] if text else None
        except ValueError:
            return None

    def projector(self, tensor: str, rule: str, input_shape: tuple[int, ...], lrn: str = "exact") -> Projector:
        check_choice("rule", rule, MODES)
        check_choice("LRN mode", lrn, LRN_MODES)
        return self.engines.projector(ProjectorKey(tensor, rule, tuple(input_shape), lrn))

    def forward_runner(self, tensor: str, input_shape: tuple[int, ...]) -> ForwardRunner:
        """A forward session cut at ``tensor`` with a dynamic batch, or batch 1 with a note."""
        return self.engines.forward(ForwardKey((tensor,), tuple(input_shape)))


def check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UsageError(f"Unknown {what} '{value}'.", f"Use one of: {', '.join(allowed)}.")
