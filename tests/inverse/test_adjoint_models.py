"""Whole exported models: the saliency inverse is the adjoint of the model's linearisation.

Every committed fixture, from its deepest conv layer and (where it has one) its logits, in both
emitted forms. Through a deep random net, central differences on float32 cross the odd ReLU kink
and lose digits to cancellation, so the tolerance is looser than for single ops (a wrong rule
gives gaps of order 1); ``test_reference_models.py`` then checks the same inverses exactly
against a float64 reference.
"""

from __future__ import annotations

import numpy as np
import pytest

from onnxviz.graph.model import ModelGraph
from onnxviz.runtime.projector import seeded_tensor
from tests.helpers import FIXTURE_MODELS, Linearisation, adjoint_gaps, load_fixture

TOLERANCE = 1e-2


def targets(graph: ModelGraph) -> list[str]:
    convs = [la for la in graph.layers if la.alias.startswith("conv")]
    chosen = [convs[-1].tensor]
    fcs = [la for la in graph.layers if la.alias.startswith("fc")]
    if fcs:
        chosen.append(seeded_tensor(graph, fcs[-1].tensor))
    return chosen


@pytest.mark.parametrize("fixture", FIXTURE_MODELS)
@pytest.mark.parametrize("form", ["cpu", "portable"])
def test_saliency_inverse_is_the_adjoint_of_the_whole_model(fixture: str, form: str) -> None:
    model = load_fixture(fixture)
    graph = ModelGraph.from_proto(model)
    shape = graph.concrete_input_shape()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    for target in targets(graph):
        lin = Linearisation(graph.model, target, x, "saliency", form)
        gaps = adjoint_gaps(lin, rng, k=3, eps=1e-4)
        assert max(gaps) < TOLERANCE, f"{fixture} {target}: {gaps}"
