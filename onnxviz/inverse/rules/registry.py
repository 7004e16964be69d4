"""The op-rule registry: ``op_type -> rule``.

A rule receives the backward signal of each output of a forward node (``None`` where no signal
arrives) and returns the signal for each input (``None`` where the input is not on the image
path). Adding an op is one rule registered here and one test; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx

from onnxviz.inverse.context import InverseContext

Rule = Callable[[InverseContext, onnx.NodeProto, list[str | None]], list[str | None]]
RULES: dict[str, Rule] = {}


def register(*op_types: str) -> Callable[[Rule], Rule]:
    def add(rule: Rule) -> Rule:
        for op_type in op_types:
            RULES[op_type] = rule
        return rule

    return add
