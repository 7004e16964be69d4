"""What a pass is: a rewrite of an ``onnx.ModelProto`` that states what it requires of the graph,
what it ensures, and whether it works in place, in the manner of ``onnx_ir.passes``.

``requires`` is checked before the rewrite and ``ensures`` after it; either failing raises a named
error instead of handing onnxruntime a graph it would refuse with a message about some tensor.
``in_place`` says whether the pass changes the model it is given (and returns that same object)
or leaves it alone and returns a new one: a caller that must keep its model (``ModelGraph.model``
is shared by every session built from it) copies it before an in-place pass. The claim is checked
on every run. Every pass returns a ``PassResult``; a ``Pipeline`` runs passes in order and keeps
each one's result, so a caller can tell what changed (``steps``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import onnx

from onnxviz.errors import OnnxvizError, UnsupportedOpError


class PassPreconditionError(UnsupportedOpError):
    """A pass was asked to rewrite a graph that does not have what the pass requires."""


class PassPostconditionError(OnnxvizError):
    """A pass did not leave the graph as it promises: a defect in onnxviz, reported as such."""


@dataclass(frozen=True)
class PassResult:
    """The rewritten model (the object the pass was given where it works in place, else a new one)
    and whether anything changed."""

    model: onnx.ModelProto
    modified: bool


@dataclass(frozen=True)
class PipelineResult(PassResult):
    """The result of several passes, with each pass's name and whether it changed the model."""

    steps: tuple[tuple[str, bool], ...] = ()

    @property
    def changed(self) -> list[str]:
        """The names of the passes that changed the model, in the order they ran."""
        return [name for name, modified in self.steps if modified]


class Pass:
    """A rewrite with stated requirements. Subclasses declare ``in_place``, implement ``call``, and
    ``requires`` / ``ensures`` where they have something to check (raising ``PassPreconditionError``
    / ``PassPostconditionError``)."""

    name = "pass"
    # True: ``call`` changes the model it is given and returns it; False: it returns a new model
    # and leaves the one given as it was. Every pass states which (no default to forget).
    in_place: bool

    def requires(self, model: onnx.ModelProto) -> None:
        """Raise ``PassPreconditionError`` unless ``model`` is a graph this pass can rewrite."""

    def call(self, model: onnx.ModelProto) -> PassResult:
        raise NotImplementedError

    def ensures(self, model: onnx.ModelProto) -> None:
        """Raise ``PassPostconditionError`` unless the rewritten ``model`` is as promised."""

    def __call__(self, model: onnx.ModelProto) -> PassResult:
        self.requires(model)
        result = self.call(model)
        if (result.model is model) != self.in_place:
            promise = "change its model in place" if self.in_place else "return a new model"
            raise PassPostconditionError(f"The {self.name} pass did not {promise}, as it declares.")
        self.ensures(result.model)
        return result


class Pipeline:
    """Passes run in order on one model."""

    def __init__(self, passes: Iterable[Pass]) -> None:
        self.passes = list(passes)

    @property
    def in_place(self) -> bool:
        """Whether the model given is changed (every pass works in place) or left as it was."""
        return all(step.in_place for step in self.passes)

    def __call__(self, model: onnx.ModelProto) -> PipelineResult:
        steps = []
        for step in self.passes:
            result = step(model)
            steps.append((step.name, result.modified))
            model = result.model
        return PipelineResult(model, any(modified for _, modified in steps), tuple(steps))


def graph_tensors(model: onnx.ModelProto) -> set[str]:
    """Every tensor name the graph defines: inputs, initializers and node outputs."""
    graph = model.graph
    names = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    names.update(o for n in graph.node for o in n.output if o)
    return names
