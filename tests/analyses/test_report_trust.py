"""The report's trust section shows exactly what ``sanity`` and ``faithfulness`` compute for its
images, escaped, and ``--no-trust`` leaves it out."""

from __future__ import annotations

import base64
import html
import re

import cv2
import numpy as np

import onnxviz
from onnxviz.analyses.report import TRUSTED_METHODS
from tests.cli_helpers import run_cli
from tests.helpers import ROOT

DEMO = ROOT / "models" / "demo.onnx"
IMAGE = ROOT / "models" / "images" / "circle.png"


def _pictures(section: str) -> list[np.ndarray]:
    found = []
    for data in re.findall(r'src="data:image/png;base64,([^"]+)"', section):
        decoded = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        found.append(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB))
    return found


def test_the_report_shows_the_sanity_grid_and_both_curves_with_their_numbers(capsys, tmp_path):
    out = tmp_path / "report.html"
    code, _, _ = run_cli(capsys, "report", DEMO, IMAGE, "--out", out, "--top", "1", "--layers", "conv1")
    assert code == 0
    page = out.read_text()
    section = page[page.index("<h2>can the explanations be trusted?</h2>") :]
    model = onnxviz.load(DEMO, device="cpu")
    checked = model.sanity([IMAGE], method=TRUSTED_METHODS)
    curves = [
        model.faithfulness([IMAGE], method=[*TRUSTED_METHODS, "random"], metric=m) for m in ("deletion", "insertion")
    ]
    grid, deletion, insertion = _pictures(section)
    np.testing.assert_array_equal(grid, checked.figure())
    np.testing.assert_array_equal(deletion, curves[0].figure())
    np.testing.assert_array_equal(insertion, curves[1].figure())
    rows = re.findall(r"<tr><td>([^<]*)</td><td>circle.png</td><td>([^<]*)</td><td>([^<]*)</td></tr>", section)
    assert [row[0] for row in rows[: len(TRUSTED_METHODS)]] == TRUSTED_METHODS
    for method, rho, _ in rows[: len(TRUSTED_METHODS)]:
        value = checked.spearman[method][0, -1]
        assert html.unescape(rho) == ("–" if np.isnan(value) else f"{value:.3g}")
    for method, deleted, inserted in rows[len(TRUSTED_METHODS) :]:
        assert deleted == f"{curves[0].aucs[method][0]:.3g}" and inserted == f"{curves[1].aucs[method][0]:.3g}"


def test_no_trust_leaves_the_section_out(capsys, tmp_path):
    out = tmp_path / "report.html"
    code, _, _ = run_cli(capsys, "report", DEMO, IMAGE, "--out", out, "--top", "1", "--layers", "conv1", "--no-trust")
    assert code == 0
    assert "can the explanations be trusted" not in out.read_text()
