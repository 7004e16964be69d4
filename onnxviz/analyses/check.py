"""The smoke test: project the strongest channel of every conv and pool layer from a fixed input.

A ``CheckReport`` is a list of ``CheckResult`` rows (what ``Model.check()`` always returned) whose
``summary()`` is exactly ``onnxviz check --json``; ``ok`` is what the exit status says.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from onnxviz.analyses._common import rule_field
from onnxviz.analyses.project import ProjectOptions, project
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.options import Options
from onnxviz.core.result import Result
from onnxviz.errors import OnnxvizError
from onnxviz.graph.aliases import Layer
from onnxviz.render import pictures as render


@dataclass(frozen=True)
class CheckOptions(Options):
    """The rule every layer is projected by."""

    rule: str = rule_field()


@dataclass(frozen=True)
class CheckResult:
    alias: str
    node: str
    op_type: str
    ok: bool
    message: str
    seconds: float

    def summary(self) -> dict:
        return {
            "alias": self.alias,
            "node": self.node,
            "op": self.op_type,
            "ok": self.ok,
            "message": self.message,
            "ms": round(self.seconds * 1000, 2),
        }


class CheckReport(list, Result):
    """One ``CheckResult`` per conv/pool layer; ``ok`` when there is at least one and all project."""

    def __init__(self, rows: list[CheckResult], model: str | None, device: str, rule: str) -> None:
        super().__init__(rows)
        self.model = model
        self.device = device
        self.rule = rule

    @property
    def ok(self) -> bool:
        return bool(self) and all(r.ok for r in self)

    def summary(self) -> dict:
        return {
            "model": self.model,
            "ok": all(r.ok for r in self),
            "device": self.device,
            "layers": [r.summary() for r in self],
        }

    def figure(self) -> np.ndarray:
        lines = [f"{r.alias:<10} {r.op_type:<12} {'ok' if r.ok else 'FAIL ' + r.message}" for r in self]
        return render.text_block(lines, f"check ({self.rule}): {sum(r.ok for r in self)}/{len(self)} layers project")


def _checked(model: LoadedModel, x: np.ndarray, layer: Layer, rule: str) -> CheckResult:
    started = time.perf_counter()
    try:
        projection = project(model, x, ProjectOptions(node=layer.alias, rule=rule))
        finite = bool(np.isfinite(projection.projections).all())
        ok = finite and projection.projections.shape == (1, *x.shape[1:])
        message = "" if ok else "projection is not finite" if not finite else "wrong projection shape"
    except OnnxvizError as exc:
        ok, message = False, exc.message
    finally:
        # This layer's sessions are not needed again: release them before the next is built,
        # so the sweep's peak memory is one projection's, not the sum over all layers.
        model.engines.projectors.clear()
    return CheckResult(layer.alias, layer.node, layer.op_type, ok, message, time.perf_counter() - started)


def check(model: LoadedModel, options: CheckOptions) -> CheckReport:
    """Every conv and pool layer projected once; each layer's sessions are released before the
    next is built, and the graph cache keeps no optimized graphs for them (each is used once)."""
    rule = options.rule
    shape = model.input_shape()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    model.engines.save_optimized = False
    try:
        layers = [layer for layer in model.graph.layers if layer.alias.startswith(("conv", "pool"))]
        rows = [_checked(model, x, layer, rule) for layer in layers]
    finally:
        model.engines.save_optimized = True
    path = model.graph.path
    return CheckReport(rows, str(path) if path is not None else None, model.device.name, rule)
