"""Projection of feature maps back to pixels (Zeiler & Fergus): one forward run, one batched
inverse run on the cached Projector (``runtime/projector.py``).

``channels`` picks channels by index, ``top`` the K strongest (by the map's maximum); neither
picks the single strongest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from onnxviz.analyses._common import channels_field, checked_channels, lrn_field, node_field, rule_field, top_field
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.options import Options
from onnxviz.core.result import Result
from onnxviz.core.types import Image
from onnxviz.data.preprocess import Preprocessing, picture_from_tensor
from onnxviz.errors import OptionError
from onnxviz.render import pictures as render
from onnxviz.runtime.engines import ProjectorKey
from onnxviz.runtime.projector import channel_strengths, seeded_tensor


@dataclass(frozen=True)
class ProjectOptions(Options):
    """Which layer and channels to project, and by which rule."""

    node: str = node_field()
    channels: list[int] | None = channels_field()
    top: int | None = top_field("Project the K strongest channels.")
    rule: str = rule_field()
    lrn: str = lrn_field()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.channels is not None and self.top is not None:
            raise OptionError("top", "Give either {channels} or {option}, not both.")


def project(model: LoadedModel, image: Image, options: ProjectOptions) -> Projection:
    """Project channels of layer ``options.node`` of ``image`` back to input space."""
    node, rule, lrn = options.node, options.rule, options.lrn
    started = time.perf_counter()
    x, picture, shape = model.prepare(image)
    layer = model.resolve(node)
    tensor = seeded_tensor(model.graph, layer.tensor)
    # Only a projector built by this call costs "build" time; a cached one cost nothing now.
    built_now = ProjectorKey(tensor, rule, shape, lrn) not in model.engines.projectors
    projector = model.projector(tensor, rule, shape, lrn)
    build = projector.build_seconds if built_now else 0.0
    prepared = time.perf_counter()
    forward = projector.forward(x, model.graph.input_name)
    forwarded = time.perf_counter()
    activation = forward[tensor].numpy()
    strengths = channel_strengths(activation)
    chosen = select_channels(strengths, options.channels, options.top)
    selected = time.perf_counter()
    projections = projector.invert(activation, chosen, forward)
    finished = time.perf_counter()
    return Projection(
        projections=projections,
        channels=chosen,
        activations=strengths[chosen],
        node=layer.alias,
        tensor=tensor,
        rule=rule,
        layout=model.layout,
        input_tensor=x,
        preprocessing=model.preprocessing,
        picture=picture,
        device=model.device.name,
        timings={
            "prepare": prepared - started - build,
            "build": build,
            "forward": forwarded - prepared,
            "inverse": finished - selected,
            "total": finished - started,
        },
    )


def select_channels(strengths: np.ndarray, channels: list[int] | None, top: int | None) -> np.ndarray:
    count = strengths.shape[0]
    chosen = checked_channels(channels, top, count, "this layer")
    if chosen is not None:
        return np.asarray(chosen, np.int64)
    top = 1 if top is None else top
    if not 1 <= top <= count:
        raise OptionError("top", f"{{option}} must be between 1 and {count} (the layer's channel count); got {top}.")
    order = np.argsort(-strengths, kind="stable")
    return order[:top].astype(np.int64)


@dataclass
class Projection(Result):
    """Projections of K channels of one layer for one input.

    ``projections`` is float32 (K, *input shape without batch) in the model's input layout and
    preprocessed-input space: exactly what ``onnxviz project --raw`` writes.
    """

    projections: np.ndarray
    channels: np.ndarray
    activations: np.ndarray
    node: str
    tensor: str
    rule: str
    layout: str
    input_tensor: np.ndarray
    preprocessing: Preprocessing
    picture: np.ndarray | None = None
    device: str = "cpu"
    timings: dict[str, float] = field(default_factory=dict)

    def figure(self) -> np.ndarray:
        """The input beside a grid of the K projections, each titled with channel and activation."""
        picture = self.picture
        if picture is None:
            picture = picture_from_tensor(self.input_tensor[0], self.layout, self.preprocessing)
        size = render.tile_size(*picture.shape[:2])
        left = render.titled_tile(picture, size, ["input", self.node])
        tiles = [
            render.titled_tile(
                render.projection_to_rgb(p, self.layout, self.preprocessing.order),
                size,
                [f"{self.node} ch {c}", f"act {a:.3g}"],
            )
            for p, c, a in zip(self.projections, self.channels, self.activations, strict=True)
        ]
        columns = min(len(tiles), max(1, int(np.ceil(np.sqrt(len(tiles))))))
        body = render.beside(render.grid([left], 1), render.grid(tiles, columns))
        return render.with_header(body, f"{self.rule} projection of {self.node} ({self.tensor})")

    def summary(self) -> dict:
        return {
            "node": self.node,
            "tensor": self.tensor,
            "rule": self.rule,
            "channels": [int(c) for c in self.channels],
            "activations": [float(a) for a in self.activations],
            "projection_shape": list(self.projections.shape),
            "layout": self.layout,
            "device": self.device,
            "timings_ms": {k: round(v * 1000, 3) for k, v in self.timings.items()},
        }
