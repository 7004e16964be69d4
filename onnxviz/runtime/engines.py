"""The engines a loaded model keeps warm, in small LRU caches keyed by what built them.

Each cached engine holds onnxruntime sessions with their own copy of the weights and their
working memory (hundreds of MB for a ResNet-50 at 224), so the caches are small: a notebook going
back and forth between a few layers keeps them warm, and a sweep over every layer (``check``)
holds one at a time. Keys are small frozen dataclasses, so what an engine depends on is written
down once and two kinds of engine can never collide on a key.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import InverseSpec
from onnxviz.runtime.forward import ForwardRunner
from onnxviz.runtime.gradient import GRADIENT_RULE, GradientEngine
from onnxviz.runtime.perturb import Occluder
from onnxviz.runtime.projector import Projector
from onnxviz.runtime.sessions import Device

PROJECTOR_CACHE_SIZE = 2
SESSION_CACHE_SIZE = 4

Key = TypeVar("Key")
Value = TypeVar("Value")


class LruCache(OrderedDict, Generic[Key, Value]):
    """A dict that keeps only its ``size`` most recently used entries."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_or_make(self, key: Key, make: Callable[[], Value]) -> Value:
        if key in self:
            self.move_to_end(key)
            return self[key]
        while len(self) >= self.size:
            self.popitem(last=False)  # dropped before the new entry is built: never size + 1 alive
        value = make()
        self[key] = value
        return value


@dataclass(frozen=True)
class ProjectorKey:
    """A projector depends on the target tensor, the rule, the input shape and the LRN mode."""

    tensor: str
    rule: str
    input_shape: tuple[int, ...]
    lrn: str = "exact"


@dataclass(frozen=True)
class GradientKey:
    """A gradient engine depends on the target tensor, the input shape, the source (None: the
    input; a layer for layer gradients) and the rule (the exact gradient unless a method asks for
    the deconvnet's or guided backpropagation's signal)."""

    tensor: str
    input_shape: tuple[int, ...]
    source: str | None = None
    rule: str = GRADIENT_RULE


@dataclass(frozen=True)
class ForwardKey:
    """A forward runner depends on the tensors it is cut at, the input shape and the tensor it
    starts from (None: the graph's input)."""

    tensors: tuple[str, ...]
    input_shape: tuple[int, ...]
    start: str | None = None


@dataclass(frozen=True)
class OccluderKey:
    """An occluder depends on the input shape, its layout and the patch size."""

    input_shape: tuple[int, ...]
    layout: str
    patch: int


class Engines:
    """The cached engines of one model on one device."""

    def __init__(self, graph: ModelGraph, device: Device) -> None:
        self.graph = graph
        self.device = device
        # A gradient engine is a projector (two sessions) with its batch probe: it counts as one.
        self.projectors: LruCache[ProjectorKey | GradientKey, Projector | GradientEngine] = LruCache(
            PROJECTOR_CACHE_SIZE
        )
        self.sessions: LruCache[ForwardKey | OccluderKey, ForwardRunner | Occluder] = LruCache(SESSION_CACHE_SIZE)
        self.save_optimized = True  # off for a sweep whose projectors are each used once (``check``)

    def projector(self, key: ProjectorKey) -> Projector:
        def make() -> Projector:
            spec = InverseSpec(
                key.tensor, key.input_shape, rule=key.rule, form=self.device.form, lrn=key.lrn, sparse=True
            )
            return Projector(self.graph, spec, self.device, save_optimized=self.save_optimized)

        return self.projectors.get_or_make(key, make)

    def gradient(self, key: GradientKey) -> GradientEngine:
        """Kept warm so a second ``maximize`` of the layer (a notebook's next channels, another
        seed) starts its first step at once instead of rebuilding the sessions and probing batches."""
        return self.projectors.get_or_make(
            key, lambda: GradientEngine(self.graph, key.tensor, key.input_shape, self.device, key.source, key.rule)
        )

    def forward(self, key: ForwardKey) -> ForwardRunner:
        return self.sessions.get_or_make(
            key, lambda: ForwardRunner(self.graph, list(key.tensors), key.input_shape, self.device, key.start)
        )

    def occluder(self, key: OccluderKey) -> Occluder:
        return self.sessions.get_or_make(key, lambda: Occluder(key.input_shape, key.layout, key.patch, self.device))
