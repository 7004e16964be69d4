"""A paired gradient inverse split at Concats (``inverse/split.py``): one forward session, and a
tree of inverse sessions in which a branch runs only where its slice of the gradient is not all
zeros.

An ultralytics detector's output is a Concat of the decoded boxes and the class scores, each of
them a Concat of the three scales' heads along the anchor axis: a detection's class score goes
back through the class half, then through one scale's head, and nothing else. Each split is a
first inverse from the stage's target back to the Concat (none where the Concat is the target),
then one stage per branch, split again where that pays (``find_split``).

Branches may share nodes (the backbone, for an input gradient), so a seed that reaches several
branches of a split (a dense objective) is not run branch by branch: that stage runs its whole
inverse instead, built the first time it is needed. Either way the result is the same sum.

It answers what a ``Projector`` answers for the gradient engine (``forward``, ``run_inverse``), so
``GradientEngine`` takes either. Its graphs are built in memory (no disk cache entry: the cache
keys one inverse per entry).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import onnxruntime as ort

from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import SEED, InverseGraph, InverseSpec, build_inverse
from onnxviz.inverse.split import SplitPoint, find_split
from onnxviz.runtime.projector import forward_for, host_tensors
from onnxviz.runtime.sessions import Device, create_session, run_bound

DEPTH = 3  # splits inside splits: the output's halves, then each half's scales


class SplitUnfit(Exception):
    """A stage's inverse takes one seed at a time or a sparse head: the engine builds one inverse."""


@dataclass
class _Inverse:
    """One inverse graph, its session opened the first time a seed reaches it (most branches of
    a detector's split never do for a detection, and opening a session is most of a build), and
    the forward tensors it reads."""

    graph: InverseGraph | None
    forward_tensors: list[str]
    session: ort.InferenceSession | None = None

    def run(self, seed: np.ndarray, forward: dict[str, ort.OrtValue], device: Device) -> np.ndarray:
        if self.session is None:
            self.session = create_session(self.graph.model, device, "inverse graph")
            self.graph = None  # its weights are in the session now
        feeds: dict[str, np.ndarray | ort.OrtValue] = {SEED: seed, **{t: forward[t] for t in self.forward_tensors}}
        (result,) = run_bound(self.session, feeds, device, "inverse graph").values()
        return result.numpy()


def _opened(inverse: InverseGraph | None) -> _Inverse | None:
    if inverse is None:
        return None
    return _Inverse(inverse, list(inverse.forward_tensors))


@dataclass
class _Stage:
    """The gradient from ``spec.target`` back to the source: one inverse (``whole``), or the
    inverse to a Concat (``head``, None where the target is the Concat's output) and a stage per
    branch (None for a branch that is the source itself), with the ``fallback`` for seeds that
    reach several branches."""

    spec: InverseSpec
    whole: _Inverse | None = None
    head: _Inverse | None = None
    split: SplitPoint | None = None
    branches: dict[str, _Stage | None] = field(default_factory=dict)
    fallback: _Inverse | None = None  # the whole inverse of a split stage, for seeds on several branches
    fallback_tried: bool = False

    def run(self, seed: np.ndarray, forward: dict[str, ort.OrtValue], context: _Context) -> np.ndarray | None:
        """The stage's gradient at the source; None where every branch's seed is zero."""
        if self.whole is not None:
            return self.whole.run(seed, forward, context.device)
        at_split = seed if self.head is None else self.head.run(seed, forward, context.device)
        parts = {}
        for branch in self.split.branches:
            part = at_split[(slice(None),) * self.split.axis + (slice(branch.start, branch.stop),)]
            if part.any():
                parts[branch.tensor] = part
        if len(parts) > 1 and self._fallback(context) is not None:
            return self.fallback.run(seed, forward, context.device)
        total = None
        for tensor, part in parts.items():
            stage = self.branches[tensor]
            gradient = part if stage is None else stage.run(part, forward, context)
            if gradient is not None:
                total = gradient if total is None else total + gradient
        return total

    def _fallback(self, context: _Context) -> _Inverse | None:
        """The stage's one inverse, built the first time, where the forward hands it all it reads
        (else None: the branches are run one by one and summed)."""
        if not self.fallback_tried:
            self.fallback_tried = True
            inverse = build_inverse(context.graph, self.spec)
            if set(inverse.forward_tensors) <= context.available and not (inverse.single or inverse.sparse):
                self.fallback = _opened(inverse)
        return self.fallback


@dataclass(frozen=True)
class _Context:
    """What a stage needs to build its whole inverse when a seed reaches several branches."""

    graph: ModelGraph
    device: Device
    available: frozenset[str]  # the forward session's outputs


class SplitProjector:
    """Forward and split inverse sessions for a paired ``InverseSpec`` (the gradient engine's)."""

    single = False  # the split is only taken where every stage takes the K seeds as a batch

    def __init__(self, graph: ModelGraph, spec: InverseSpec, split: SplitPoint, device: Device) -> None:
        started = time.perf_counter()
        self.target = spec.target
        self.source = spec.source or graph.input_name
        self.device = device
        self.source_shape = graph.shapes(spec.input_shape)[self.source]
        built: list[InverseGraph] = []
        stage = _planned(graph, spec, split, built, DEPTH)
        forward, outputs = forward_for(graph, spec, built)
        self.forward_session = create_session(forward, device, "forward graph")
        self._on_device = frozenset(outputs) - set(host_tensors(graph, spec))
        self._context = _Context(graph, device, frozenset(outputs))
        self.stage = _open_stage(stage, built)
        self.build_seconds = time.perf_counter() - started

    def forward(self, x: np.ndarray, input_name: str) -> dict[str, ort.OrtValue]:
        return run_bound(self.forward_session, {input_name: x}, self.device, "forward graph", self._on_device)

    def run_inverse(self, seeds: dict[str, np.ndarray], forward: dict[str, ort.OrtValue]) -> np.ndarray:
        """∂⟨seed, target⟩/∂source, through the branches the seed reaches."""
        seed = seeds[SEED]
        total = self.stage.run(seed, forward, self._context)
        if total is None:  # a zero seed: the gradient of a constant
            return np.zeros((len(seed), *self.source_shape[1:]), np.float32)
        return total


def _planned(graph: ModelGraph, spec: InverseSpec, split: SplitPoint | None, built: list, depth: int) -> _Stage:
    """The stages from ``spec.target`` back to the source with their inverse graphs (in ``built``,
    by index, until ``_open_stage`` opens them): the forward must produce what each reads."""

    def inverse(stage_spec: InverseSpec) -> int:
        result = build_inverse(graph, stage_spec)
        if result.single or result.sparse:
            raise SplitUnfit(stage_spec.target)
        built.append(result)
        return len(built) - 1

    if split is None or depth == 0:
        return _Stage(spec, whole=inverse(spec))
    head = inverse(replace(spec, source=split.tensor)) if split.tensor != spec.target else None
    source = spec.source or graph.input_name
    branches: dict[str, _Stage | None] = {}
    for branch in split.branches:
        if branch.tensor == source:
            branches[branch.tensor] = None
            continue
        deeper = find_split(graph, branch.tensor, spec.source, spec.input_shape) if depth > 1 else None
        branches[branch.tensor] = _planned(graph, replace(spec, target=branch.tensor), deeper, built, depth - 1)
    return _Stage(spec, head=head, split=split, branches=branches)


def _open_stage(stage: _Stage | None, built: list[InverseGraph]) -> _Stage | None:
    """The planned stage with its inverses (opened when first run) in place of the graphs' indices."""
    if stage is None:
        return None

    def session(index: int | None) -> _Inverse | None:
        return None if index is None else _opened(built[index])

    branches = {tensor: _open_stage(inner, built) for tensor, inner in stage.branches.items()}
    return replace(stage, whole=session(stage.whole), head=session(stage.head), branches=branches)
