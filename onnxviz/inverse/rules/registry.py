"""What an op rule is: a check that says why a node cannot be inverted, and an emitter.

The builder asks every rule on the path to ``check`` its node before it emits anything, so an
unsupported node is reported (with the reason the check gives) without building half a graph, and
a caller can ask whether a layer can be projected at all (``onnxviz.inverse.unsupported_reason``).
``emit`` then receives the backward signal and returns the signal of each input (``None`` where
the input is not on the image path).

Most ops carry the signal back from their first output only: their ``Rule`` receives that signal
as a string, never ``None`` (the builder calls a rule only when a signal arrives). Ops whose every
output can carry a signal (Split) are an ``OutputsRule`` and receive one entry per output.

Each family module lists its rules in a module-level ``RULES``; ``rules/__init__.py`` concatenates
the lists. Adding an op is one rule in its family's list and one test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import onnx

from onnxviz.inverse.batch import batch_first_reason
from onnxviz.inverse.context import InverseContext

Signals = list[str | None]
Check = Callable[[InverseContext, onnx.NodeProto], str | None]
Emit = Callable[[InverseContext, onnx.NodeProto, str], Signals]
EmitOutputs = Callable[[InverseContext, onnx.NodeProto, Signals], Signals]


def invertible(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
    """The check of a rule that can invert every node of its ops."""
    return None


def all_of(*checks: Check) -> Check:
    """The first reason any of ``checks`` gives, in order."""

    def check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
        return next((reason for c in checks if (reason := c(ctx, node)) is not None), None)

    return check


def batch_first(index: int = 0) -> Check:
    """For rules written for the batch on axis 0 (convolutions, pools, resizes…): refuse an input
    on the image path whose batch axis a Transpose moved, rather than invert it in the wrong layout."""

    def check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
        tensor = node.input[index]
        return batch_first_reason(ctx, tensor) if tensor in ctx.graph.signal else None

    return check


def constant_input(index: int, reason: str) -> Check:
    """Input ``index``, where given, must be a constant of the forward graph (weights, indices, pads…)."""

    def check(ctx: InverseContext, node: onnx.NodeProto) -> str | None:
        given = index < len(node.input) and node.input[index]
        return reason if given and ctx.constant(node.input[index]) is None else None

    return check


@dataclass(frozen=True)
class Rule:
    """The inverse of ``op_types`` whose signal comes back from the first output only.

    ``other_outputs`` is the reason given when a later output (a norm's mean, a MaxPool's indices)
    is used on the image path, which this rule cannot carry back.
    """

    op_types: tuple[str, ...]
    emit: Emit
    check: Check = invertible
    other_outputs: str = "only its first output can carry the signal back, and another one is on the image path"

    def apply(self, ctx: InverseContext, node: onnx.NodeProto, grads: Signals) -> Signals:
        """Emit from the signal of each output (at least one is present: the builder sees to it)."""
        first, *rest = grads
        if first is None or any(g is not None for g in rest):
            raise ctx.unsupported(node, self.other_outputs)
        return self.emit(ctx, node, first)


@dataclass(frozen=True)
class OutputsRule:
    """The inverse of ``op_types`` whose every output may carry a signal back (``None`` where none
    arrives; the builder calls it only when at least one does)."""

    op_types: tuple[str, ...]
    emit: EmitOutputs
    check: Check = invertible

    def apply(self, ctx: InverseContext, node: onnx.NodeProto, grads: Signals) -> Signals:
        return self.emit(ctx, node, grads)


AnyRule = Rule | OutputsRule


def by_op_type(rules: list[AnyRule]) -> dict[str, AnyRule]:
    """``op_type -> rule``; an op claimed by two rules is a programming error caught at import."""
    table: dict[str, AnyRule] = {}
    for rule in rules:
        for op_type in rule.op_types:
            if op_type in table:
                raise ValueError(f"two inverse rules claim {op_type}")
            table[op_type] = rule
    return table
