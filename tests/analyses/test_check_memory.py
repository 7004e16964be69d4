"""`check` and long sessions hold a bounded number of projectors (each: two onnxruntime sessions
with their own copy of the weights), instead of one per layer ever projected."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np

import onnxviz
from onnxviz import api
from onnxviz.runtime import engines, projector

DEMO = Path(__file__).resolve().parents[2] / "models" / "demo.onnx"


def track_projectors(monkeypatch) -> tuple[list[weakref.ref], list[int]]:
    """Weak references to every Projector built, and how many were alive when each was built."""
    built: list[weakref.ref] = []
    alive_at_build: list[int] = []

    class Tracked(projector.Projector):
        def __init__(self, *args, **kwargs) -> None:
            gc.collect()
            alive_at_build.append(sum(ref() is not None for ref in built))
            super().__init__(*args, **kwargs)
            built.append(weakref.ref(self))

    monkeypatch.setattr(engines, "Projector", Tracked)
    return built, alive_at_build


def test_check_releases_each_layers_projector_before_the_next(monkeypatch) -> None:
    built, alive_at_build = track_projectors(monkeypatch)
    model = onnxviz.load(DEMO, device="cpu")
    results = model.check()
    assert len(results) == 6 and all(r.ok for r in results)
    assert len(built) == 6 and alive_at_build == [0] * 6
    gc.collect()
    assert all(ref() is None for ref in built)


def test_projector_cache_keeps_only_the_most_recently_used(monkeypatch) -> None:
    built, alive_at_build = track_projectors(monkeypatch)
    model = onnxviz.load(DEMO, device="cpu")
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    for node in ("conv1", "conv2", "conv1", "conv3", "conv1", "conv2"):
        model.project(x, node=node)
    # conv1 stays warm (used every other time); conv2 is evicted by conv3 and built again.
    assert len(built) == 4 and max(alive_at_build) < api.PROJECTOR_CACHE_SIZE
    gc.collect()
    assert sum(ref() is not None for ref in built) == api.PROJECTOR_CACHE_SIZE
