"""A fixed target keeps another run's tensor, index, kind and class, and reads the score anew."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from onnxviz.errors import UsageError
from onnxviz.graph.model import ModelGraph
from onnxviz.targets.classes import ClassTarget
from onnxviz.targets.fixed import FixedTarget
from tests.helpers import FIXTURES


def test_a_fixed_class_is_scored_on_a_new_value_not_chosen_again():
    graph = ModelGraph.from_proto(onnx.load(FIXTURES / "attr_vgg.onnx"))
    original = ClassTarget().resolve(graph, np.array([[0.0, 5.0, 1.0]]))
    fixed = FixedTarget(original)
    assert fixed.tensor(graph) == original.tensor
    again = fixed.resolve(graph, np.array([[9.0, 2.0, 1.0]]))  # another top-1 now: class 1 is kept
    assert (again.kind, again.class_index, again.index, again.score) == ("class", 1, (0, 1), 2.0)
    with pytest.raises(UsageError):
        fixed.resolve(graph, np.array([2.0, 1.0]))  # no batch axis
