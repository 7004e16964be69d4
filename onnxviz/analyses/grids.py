"""Layer activation grids and filter grids (as in cs231n's visualisations).

Activations: every feature map of one layer for one image, on a shared scale so strong and weak
maps can be compared; the strongest is framed and dead (all-zero) maps are counted. Filters: the
weights of a conv layer, in colour for a first layer that reads the image, and one grey tile per
(output, input channel) pair for deeper layers, centred on grey = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from onnxviz.analyses._common import node_field
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.options import Options
from onnxviz.core.result import Result
from onnxviz.core.types import Image
from onnxviz.errors import UsageError
from onnxviz.render import pictures as render

MAX_FILTERS = 64
MAX_INPUTS = 32
FRAME = (230, 40, 40)


@dataclass(frozen=True)
class GridOptions(Options):
    """The layer whose maps (``activations``) or filters (``filters``) are drawn."""

    node: str = node_field()


@dataclass
class ActivationGrid(Result):
    """All maps (C, h, w) of one layer for one image."""

    maps: np.ndarray
    node: str
    tensor: str

    @property
    def strongest(self) -> int:
        return int(self.maps.reshape(len(self.maps), -1).max(axis=1).argmax())

    @property
    def dead(self) -> int:
        return int((np.abs(self.maps.reshape(len(self.maps), -1)).max(axis=1) == 0).sum())

    def figure(self) -> np.ndarray:
        peak = float(np.abs(self.maps).max()) or 1.0
        size = max(32, min(96, 768 // math.ceil(math.sqrt(len(self.maps)))))
        tiles = []
        for index, fmap in enumerate(self.maps):
            grey = np.clip(np.abs(fmap) / peak * 255, 0, 255).astype(np.uint8)
            tile = cv2.cvtColor(cv2.resize(grey, (size, size), interpolation=cv2.INTER_NEAREST), cv2.COLOR_GRAY2RGB)
            if index == self.strongest:
                cv2.rectangle(tile, (0, 0), (size - 1, size - 1), FRAME, 3)
            tiles.append(tile)
        columns = math.ceil(math.sqrt(len(tiles)))
        return render.with_header(
            render.grid(tiles, columns, gap=2),
            f"{self.node}: {len(self.maps)} maps, strongest {self.strongest} (framed), {self.dead} dead",
        )

    def summary(self) -> dict:
        strengths = self.maps.reshape(len(self.maps), -1).max(axis=1)
        return {
            "node": self.node,
            "tensor": self.tensor,
            "maps": len(self.maps),
            "strongest": self.strongest,
            "dead": self.dead,
            "max_per_map": [float(v) for v in strengths],
        }


@dataclass
class FilterGrid(Result):
    """The weights (O, I, kh, kw) of one conv layer; ``order`` is the input's channel order."""

    weights: np.ndarray
    node: str
    order: str = "rgb"

    def figure(self) -> np.ndarray:
        outputs = min(len(self.weights), MAX_FILTERS)
        size = max(40, 8 * self.weights.shape[2])
        peak = float(np.abs(self.weights).max()) or 1.0
        shown = np.clip(128 + 127 * self.weights[:outputs] / peak, 0, 255).astype(np.uint8)
        if self.weights.shape[1] == 3:
            tiles = [
                cv2.resize(
                    np.ascontiguousarray(
                        w.transpose(1, 2, 0)[:, :, ::-1] if self.order == "bgr" else w.transpose(1, 2, 0)
                    ),
                    (size, size),
                    interpolation=cv2.INTER_NEAREST,
                )
                for w in shown
            ]
            body = render.grid(tiles, math.ceil(math.sqrt(len(tiles))), gap=2)
            title = f"{self.node}: {outputs} of {len(self.weights)} filters (RGB)"
        else:
            inputs = min(self.weights.shape[1], MAX_INPUTS)
            tiles = [
                cv2.cvtColor(cv2.resize(w, (size, size), interpolation=cv2.INTER_NEAREST), cv2.COLOR_GRAY2RGB)
                for row in shown
                for w in row[:inputs]
            ]
            body = render.grid(tiles, inputs, gap=1)
            title = (
                f"{self.node}: rows = {outputs} of {len(self.weights)} filters, columns = {inputs} of "
                f"{self.weights.shape[1]} input channels"
            )
        return render.with_header(body, title)

    def summary(self) -> dict:
        return {"node": self.node, "filters": int(self.weights.shape[0]), "shape": list(self.weights.shape)}


def spatial_maps(activation: np.ndarray, node: str) -> np.ndarray:
    if activation.ndim != 4:
        raise UsageError(
            f"'{node}' has no spatial feature maps (shape {list(activation.shape)}).", "Pick a conv or pool layer."
        )
    return activation[0]


def activations(model: LoadedModel, image: Image, options: GridOptions) -> ActivationGrid:
    """Every feature map of layer ``options.node`` for one image."""
    node = options.node
    x, _, shape = model.prepare(image)
    layer = model.resolve(node)
    (activation,) = model.forward_runner(layer.tensor, shape).run(x)
    return ActivationGrid(spatial_maps(activation, layer.alias), layer.alias, layer.tensor)


def filters(model: LoadedModel, options: GridOptions) -> FilterGrid:
    """The weights of the conv layer ``options.node`` (``conv1``: the filters that read the image)."""
    node = options.node
    layer = model.resolve(node)
    conv = model.graph.node_by_name(layer.node)
    weights = model.graph.constants.get(conv.input[1]) if conv.op_type == "Conv" else None
    if weights is None or weights.ndim != 4:
        raise UsageError(
            f"'{node}' is not a conv layer with constant 2-D filters.",
            "Pick a conv alias such as conv1 (see `onnxviz layers MODEL`).",
        )
    return FilterGrid(weights.astype(np.float32), layer.alias, model.preprocessing.order)
