"""Small-width versions of every model family people export, through both torch exporters.

Each fixture (``scripts/make_fixtures.py``: the family's torchvision/timm constructor at small
widths, or a faithful miniature of its distinctive blocks) comes with the torch autograd saliency
of its top logit on a fixed input, stored beside it with torch's own float32-vs-float64 gap, so
these tests compare with torch without needing it:

- the saliency of the top logit equals torch's: max|Δ| within twice torch's own float32-vs-float64
  difference (or 1e-4 of max|ref|, whichever is larger) and cosine ≥ 0.9999;
- the whole-model saliency inverse is the adjoint of the model's linearisation (dot-product test,
  as in ``test_adjoint_models.py``), from the logits and from the deepest conv;
- ``check`` projects every conv and pool layer.

Cases that need a rule or a loading fix not made yet are strict xfails naming what they need:
they fail the suite the day the fix lands, so the mark is removed then.
"""

from __future__ import annotations

import numpy as np
import pytest

import onnxviz
from onnxviz.errors import OnnxvizError
from onnxviz.graph.model import ModelGraph
from onnxviz.runtime.projector import seeded_tensor
from tests.helpers import FAMILY_MODELS, FIXTURES, Linearisation, torch_saliency_gaps

COSINE_MIN = 0.9999
RELATIVE_FLOOR = 1e-4
ADJOINT_TOLERANCE = 1e-2
NOISE_LIMIT = 0.1
STEPS = (1e-3, 1e-4)

# (fixture file, test) -> what it needs; test is "saliency", "adjoint" or "check".
NEEDS: dict[tuple[str, str], str] = {}


@pytest.fixture(autouse=True)
def no_graph_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each family's graphs are built and used once here: storing them in the graph cache (tested in
    ``tests/runtime/test_graph_cache.py``) would only add writing them, 40 % of these tests' time."""
    monkeypatch.setenv("ONNXVIZ_CACHE", "0")


def cases(test: str) -> list:
    return [
        pytest.param(
            name,
            marks=[pytest.mark.xfail(strict=True, reason=NEEDS[(name, test)])] if (name, test) in NEEDS else [],
        )
        for name in FAMILY_MODELS
    ]


def reference(fixture: str) -> dict[str, np.ndarray]:
    family = fixture.removesuffix(".onnx").rsplit("_", 1)[0]
    with np.load(FIXTURES / f"{family}.npz") as stored:
        return {key: stored[key] for key in stored.files}


@pytest.mark.parametrize("fixture", cases("saliency"))
def test_top_logit_saliency_equals_torch_autograd(fixture: str) -> None:
    ref = reference(fixture)
    model = onnxviz.load(FIXTURES / fixture, device="cpu", preset="raw")
    x = ref["x"].astype(np.float32)
    projection = model.project(x, node="logits", channels=[int(ref["top"])], rule="saliency")
    delta, bound, cosine = torch_saliency_gaps(projection.projections[0], ref, RELATIVE_FLOOR)
    assert delta <= bound, f"max|Δ| {delta:.3e} > {bound:.3e}"
    assert cosine >= COSINE_MIN, f"cosine {cosine:.7f}"


def adjoint_targets(graph: ModelGraph) -> list[str]:
    """The logits (through any final Softmax, as projection seeds them) and the deepest conv."""
    targets = [seeded_tensor(graph, graph.model.graph.output[0].name)]
    convs = [layer for layer in graph.layers if layer.alias.startswith("conv")]
    if convs:
        targets.append(convs[-1].tensor)
    return targets


def clean_directions(
    lin: Linearisation, rng: np.random.Generator, count: int
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Random directions u with their central difference J·u and its noise, where that is small.

    Through a deep random net in float32, a central difference is not exactly J·u: x ± εu may
    cross a ReLU kink or a max switch, and float32 cancellation costs digits. Both show as the
    forward and backward one-sided differences disagreeing; their relative mismatch bounds the
    central difference's error. Each direction tries two step sizes and keeps the cleaner; a
    direction whose mismatch exceeds ``NOISE_LIMIT`` is drawn again.
    """
    centre = lin.values[lin.target].astype(np.float64)
    chosen = []
    for _ in range(6 * count):
        u = rng.standard_normal(lin.x.shape)
        best = None
        for eps in STEPS:
            plus = lin.run_forward(lin.x + eps * u)[lin.target].astype(np.float64)
            minus = lin.run_forward(lin.x - eps * u)[lin.target].astype(np.float64)
            forward, backward = plus - centre, centre - minus
            size = np.linalg.norm(forward) + np.linalg.norm(backward)
            # A layer dead at x (every ReLU off) has J = 0 exactly: no noise, and Jᵀ·v must be 0 too.
            noise = float(np.linalg.norm(forward - backward) / size) if size > 0 else 0.0
            if best is None or noise < best[2]:
                best = (u, (plus - minus)[0] / (2 * eps), noise)
        if best[2] < NOISE_LIMIT:
            chosen.append(best)
            if len(chosen) == count:
                break
    return chosen


@pytest.mark.parametrize("fixture", cases("adjoint"))
def test_saliency_inverse_is_the_adjoint_of_the_whole_family_model(fixture: str) -> None:
    """⟨J·u, v⟩ = ⟨u, Jᵀ·v⟩ up to the measured noise of the central difference (a wrong rule: O(1))."""
    graph = ModelGraph.load(FIXTURES / fixture)
    rng = np.random.default_rng(0)
    x = reference(fixture)["x"].astype(np.float32)
    for target in adjoint_targets(graph):
        for form in ("cpu", "portable"):
            lin = Linearisation(graph.model, target, x, "saliency", form)
            directions = clean_directions(lin, rng, 2)
            assert directions, f"{target}: no direction with a clean central difference"
            seeds = rng.standard_normal((2, *lin.values[target].shape[1:]))
            jtv = lin.vjp(seeds).astype(np.float64)
            for u, ju, noise in directions:
                tolerance = max(ADJOINT_TOLERANCE, 2 * noise)
                for seed, back in zip(seeds, jtv, strict=True):
                    left, right = float(np.sum(ju * seed)), float(np.sum(u[0] * back))
                    gap = abs(left - right) / (float(np.linalg.norm(ju) * np.linalg.norm(seed)) + 1e-12)
                    assert gap < tolerance, f"{target} ({form}): gap {gap:.3e} > {tolerance:.3e}"


@pytest.mark.parametrize("fixture", cases("check"))
def test_check_projects_every_layer(fixture: str) -> None:
    model = onnxviz.load(FIXTURES / fixture, device="cpu", preset="raw")
    try:
        results = model.check()
    except OnnxvizError as exc:
        pytest.fail(f"check raised: {exc.message}")
    assert results, "no conv or pool layer found"
    failed = [f"{r.alias} ({r.node}): {r.message}" for r in results if not r.ok]
    assert not failed, "; ".join(failed[:3])
