"""Real exports through the newer inverse rules (``scripts/operator_fixtures.py``): a ConvNeXt-V2
GRN block (ReduceL2), a U-Net decoder (ConvTranspose), an L2-normalised embedding head (ReduceL2,
Clip, Div) and a spatial transformer (AffineGrid or its decomposition, GridSample), each from both
torch exporters.

The saliency of the top logit equals torch autograd's (stored beside each pair with torch's own
float32-vs-float64 gap), and ``check`` projects every layer.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import onnxviz
from tests.helpers import FIXTURES, torch_saliency_gaps

NAMES = ["op_grn", "op_unet", "op_embedding", "op_stn"]
EXPORTS = [f"{name}_{exporter}.onnx" for name in NAMES for exporter in ("dynamo", "torchscript")]
COSINE_MIN = 0.9999
RELATIVE_FLOOR = 1e-4
# The operator each fixture exists for, by exporter where they write it differently.
USES = {
    "op_grn": {"ReduceL2"},
    "op_unet": {"ConvTranspose"},
    "op_embedding": {"ReduceL2"},
    "op_stn_dynamo": {"GridSample"},
    "op_stn_torchscript": {"GridSample", "AffineGrid"},
}


@pytest.fixture(autouse=True)
def no_graph_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONNXVIZ_CACHE", "0")


def _reference(fixture: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{fixture.removesuffix('.onnx').rsplit('_', 1)[0]}.npz") as stored:
        return {key: stored[key] for key in stored.files}


@pytest.mark.parametrize("fixture", EXPORTS)
def test_the_export_uses_the_operator_it_exists_for(fixture: str) -> None:
    stem = fixture.removesuffix(".onnx")
    wanted = USES.get(stem, USES.get(stem.rsplit("_", 1)[0]))
    assert wanted <= {node.op_type for node in onnx.load(str(FIXTURES / fixture)).graph.node}


@pytest.mark.parametrize("fixture", EXPORTS)
def test_top_logit_saliency_equals_torch_autograd(fixture: str) -> None:
    ref = _reference(fixture)
    model = onnxviz.load(FIXTURES / fixture, device="cpu", preset="raw")
    projection = model.project(ref["x"].astype(np.float32), node="logits", channels=[int(ref["top"])], rule="saliency")
    delta, bound, cosine = torch_saliency_gaps(projection.projections[0], ref, RELATIVE_FLOOR)
    assert delta <= bound, f"max|Δ| {delta:.3e} > {bound:.3e}"
    assert cosine >= COSINE_MIN, f"cosine {cosine:.7f}"


@pytest.mark.parametrize("fixture", EXPORTS)
def test_check_projects_every_layer(fixture: str) -> None:
    results = onnxviz.load(FIXTURES / fixture, device="cpu").check()
    failed = [(r.alias, r.message) for r in results if not r.ok]
    assert results and failed == []
