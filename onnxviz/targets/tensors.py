"""Targets inside any tensor: one element (``NAME[i,j,...]``) or a whole feature map.

``NAME`` is looked up as ``--node`` is (an exact node or tensor name, an alias such as ``conv2``
or ``fc2``, or a unique substring), so the logits, a dense unit or a position of a conv map are
all one spelling. The feature map's score, the total activation of one channel, is what
``occlude --node N --channel C`` has always scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from onnxviz.errors import UsageError
from onnxviz.graph.model import ModelGraph
from onnxviz.runtime.projector import seeded_tensor
from onnxviz.targets.base import ResolvedTarget, Target, per_image


@dataclass(frozen=True)
class ElementTarget(Target):
    """Element ``index`` of tensor ``name`` for one image: a full index, the batch axis (0) first."""

    name: str
    index: tuple[int, ...]
    kind: ClassVar[str] = "element"

    @property
    def spelling(self) -> str:
        return f"{self.name}[{','.join(map(str, self.index))}]"

    def tensor(self, graph: ModelGraph) -> str:
        return graph.resolve(self.name).tensor

    def resolve(self, graph: ModelGraph, value: np.ndarray) -> ResolvedTarget:
        tensor = self.tensor(graph)
        value = per_image(value, tensor, 1, "Pick a tensor that has a batch axis.")
        shape = list(value.shape)
        if len(self.index) != value.ndim:
            raise UsageError(
                f"The target {self.spelling} gives {len(self.index)} indices, but '{tensor}' has "
                f"{value.ndim} axes (shape {shape}).",
                f"Give one index per axis, the batch axis (0) first: {self.name}[0{',0' * (value.ndim - 1)}].",
            )
        if self.index[0] != 0:
            raise UsageError(
                f"The target {self.spelling} indexes image {self.index[0]} of the batch: a target is "
                "per image, so its batch index is 0.",
                f"Write it {self.name}[0,{','.join(map(str, self.index[1:]))}].",
            )
        for axis, (position, size) in enumerate(zip(self.index, value.shape, strict=True)):
            if not 0 <= position < size:
                raise UsageError(
                    f"Index {position} on axis {axis} of {self.spelling} is out of bounds: '{tensor}' "
                    f"has shape {shape}.",
                    f"Axis {axis} takes 0…{size - 1}.",
                )
        return ResolvedTarget(self.kind, tensor, self.index, float(value[self.index]), layer=self.name)


@dataclass(frozen=True)
class ChannelTarget(Target):
    """The total activation (sum over the map) of channel ``channel`` (axis 1) of layer ``node``;
    ``None``: the channel with the strongest single activation on the image."""

    node: str
    channel: int | None = None
    kind: ClassVar[str] = "channel"

    def tensor(self, graph: ModelGraph) -> str:
        return seeded_tensor(graph, graph.resolve(self.node).tensor)

    def resolve(self, graph: ModelGraph, value: np.ndarray) -> ResolvedTarget:
        tensor = self.tensor(graph)
        if value.ndim < 2:
            raise UsageError(f"'{self.node}' has no channels to score (shape {list(value.shape)}).")
        value = per_image(value, tensor, 2, "Pick another layer.")
        count = value.shape[1]
        per_channel = value.reshape(1, count, -1)
        chosen = int(per_channel.max(axis=2).argmax()) if self.channel is None else self.channel
        if not 0 <= chosen < count:
            raise UsageError(
                f"Channel {chosen} does not exist: '{self.node}' has channels 0…{count - 1} "
                f"(shape {list(value.shape)})."
            )
        score = float(per_channel.sum(axis=2)[0, chosen])
        return ResolvedTarget(self.kind, tensor, (0, chosen), score, layer=self.node)
