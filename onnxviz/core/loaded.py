"""What every analysis works on: a loaded graph, its device, its preprocessing, its warm engines.

``onnxviz.api.Model`` derives from this and adds one method per analysis; the analyses take a
``LoadedModel`` and never the facade, so they only look down.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from onnxviz.core.types import Image
from onnxviz.data.metadata import labels_of, preprocessing_of, preset_of
from onnxviz.data.preprocess import (
    LAYOUTS,
    PRESETS,
    Preprocessing,
    check_normalisation,
    default_preset,
    prepare,
    read_image,
)
from onnxviz.errors import UsageError
from onnxviz.graph.aliases import Layer
from onnxviz.graph.attributes import node_attr
from onnxviz.graph.detector_join import JOINED, check_pair, check_shapes, joined_model
from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import MODES
from onnxviz.runtime.engines import Engines, ForwardKey, ProjectorKey
from onnxviz.runtime.forward import ForwardRunner
from onnxviz.runtime.projector import Projector
from onnxviz.runtime.sessions import Device, choose_device, session_options
from onnxviz.runtime.warm_start import load_graph

LRN_MODES = ("exact", "passthrough")


@dataclass(frozen=True)
class Source:
    """How a model was loaded: enough to load it again elsewhere (a Ray actor: sessions do not
    pickle, so each worker opens the model from this, which does)."""

    path: str
    device: str = "auto"
    preset: str | None = None
    custom_ops: tuple[str, ...] = ()
    preprocessing: dict = field(default_factory=dict)
    boxes: str | None = None  # a detector's pre-NMS boxes and class scores, joined at load (``graph/detector_join``)
    scores: str | None = None


class LoadedModel:
    """A loaded ONNX CNN with its device, preprocessing and cached engines."""

    def __init__(
        self, graph: ModelGraph, device: Device, preprocessing: Preprocessing, source: Source | None = None
    ) -> None:
        self.graph = graph
        self.device = device
        self.preprocessing = preprocessing
        self.source = source  # None for a model built in memory: it cannot be opened elsewhere
        self.engines = Engines(graph, device)

    @classmethod
    def open(cls, source: Source, threads: int = 0):
        """Load ``source``: the graph (through the content cache), the device, the preprocessing;
        ``threads`` caps onnxruntime's threads per session (0: one per core)."""
        session_options(source.custom_ops)  # a library that does not register is a usage error, said now
        graph = load_graph(source.path, source.custom_ops)
        detector = check_pair(source.boxes, source.scores)
        layout = source.preprocessing.get("layout")
        if layout is not None and layout not in LAYOUTS:
            raise UsageError(f"Unknown layout '{layout}'.", f"Use one of: {', '.join(LAYOUTS)}.")
        # The model's own ``onnxviz.preset`` (checked), else ultralytics' RGB/255 or ImageNet's.
        named = preset_of(graph.metadata, source.path, tuple(PRESETS))
        preset = source.preset or named or default_preset(graph.metadata)
        given = {name: value for name, value in source.preprocessing.items() if value is not None}
        # A preset the caller names is a whole convention: the model's own values then stand aside.
        own = {} if source.preset else preprocessing_of(graph.metadata, source.path, given)
        preprocessing = Preprocessing.preset(preset, **(own | given))
        check_normalisation(preprocessing)
        check_layout(graph, preprocessing.layout, "--layout" if "layout" in given else "the model's metadata")
        if detector is not None:
            graph = with_joined_detector(graph, *detector, preprocessing.size)
        device = replace(choose_device(source.device), custom_ops=source.custom_ops, threads=threads)
        return cls(graph, device, preprocessing, source)

    def opener(self) -> functools.partial | None:
        """A picklable ``open(threads=, gpu=)`` of this model for a scan worker (None: built in memory)."""
        return None if self.source is None else functools.partial(open_worker, self.source)

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
        """Class names from the model's metadata (``onnxviz.labels``, a JSON list, checked where
        read), else the ``names`` ultralytics' exporter writes (a dict literal {0: 'person', ...})."""
        found = labels_of(self.graph.metadata, self.graph.path)
        return found if found is not None else _ultralytics_names(self.graph.metadata)

    def projector(self, tensor: str, rule: str, input_shape: tuple[int, ...], lrn: str = "exact") -> Projector:
        check_choice("rule", rule, MODES)
        check_choice("LRN mode", lrn, LRN_MODES)
        return self.engines.projector(ProjectorKey(tensor, rule, tuple(input_shape), lrn))

    def forward_runner(self, tensor: str, input_shape: tuple[int, ...]) -> ForwardRunner:
        """A forward session cut at ``tensor`` with a dynamic batch, or batch 1 with a note."""
        return self.engines.forward(ForwardKey((tensor,), tuple(input_shape)))


def open_worker(source: Source, threads: int, gpu: bool) -> LoadedModel:
    """``source`` opened in a scan worker: ``threads`` onnxruntime threads, on the worker's GPU when it
    has one (unless the model was loaded with ``device="cpu"``)."""
    device = "cuda" if gpu and source.device != "cpu" else "cpu"
    return LoadedModel.open(replace(source, device=device), threads)


def with_joined_detector(graph: ModelGraph, boxes: str, scores: str, size: tuple[int, int] | None) -> ModelGraph:
    """``graph`` with its pre-NMS ``boxes`` and ``scores`` joined as one detector output (see
    ``graph/detector_join``), their shapes checked where the input size is known."""
    model = joined_model(graph.model, boxes, scores)  # the names checked first
    if size is not None or all(isinstance(d, int) and d > 0 for d in graph.input_dims[1:]):
        check_shapes(graph.shapes(graph.concrete_input_shape(*(size or (None, None)))), boxes, scores)
    joined = ModelGraph.from_proto(model, graph.path, graph.custom_ops)
    joined.notes = [
        *graph.notes,
        f"the boxes '{boxes}' and the scores '{scores}' read as one detector output, {JOINED} (1, 4+nc, N).",
    ]
    joined.digest = None if graph.digest is None else f"{graph.digest}+{JOINED}({boxes},{scores})"
    return joined


# Ops that read their first input channels first, whatever the model's convention (ONNX's own).
CHANNELS_FIRST_OPS = frozenset(
    {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool"}
)


def check_layout(graph: ModelGraph, layout: str, origin: str) -> None:
    """A layout the graph itself contradicts is refused before anything runs: read NHWC, an input
    that a Conv reads directly would hand the model its rows as channels (and every picture, crop
    and receptive field after would be cut from the wrong axes)."""
    if layout == "auto":
        return
    for node in graph.consumers.get(graph.input_name, []):
        if node.op_type in CHANNELS_FIRST_OPS and node.input[0] == graph.input_name:
            evident = "nchw"
        elif node.op_type == "Transpose" and list(node_attr(node, "perm", [])) == [0, 3, 1, 2]:
            evident = "nhwc"
        else:
            continue
        if evident != layout:
            raise UsageError(
                f"The layout {layout.upper()} ({origin}) contradicts the model: its input "
                f"'{graph.input_name}' {list(graph.input_dims)} is read by {node.op_type} '{node.name}' as "
                f"{evident.upper()}.",
                f"Leave the layout to onnxviz (--layout auto), or give --layout {evident}.",
            )
        return


def check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UsageError(f"Unknown {what} '{value}'.", f"Use one of: {', '.join(allowed)}.")


def _ultralytics_names(metadata: dict[str, str]) -> list[str] | None:
    """The class names in ultralytics' ``names`` metadata ({0: 'person', 1: 'bicycle', ...}), or None."""
    try:
        names = ast.literal_eval(metadata.get("names", "None"))
    except (ValueError, SyntaxError):
        return None
    if isinstance(names, dict) and sorted(names) == list(range(len(names))):
        return [str(names[k]) for k in range(len(names))]
    return None
