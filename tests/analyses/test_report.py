"""The HTML report is self-contained and renders in a real browser with every image decoded."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest

import onnxviz
from tests.cli_helpers import run_cli
from tests.helpers import FIXTURES

DEMO = FIXTURES.parents[2] / "models" / "demo.onnx"
IMAGES = FIXTURES.parents[2] / "models" / "images"
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const broken = images.filter((i) => !(i.complete && i.naturalWidth > 0)).length;
  document.body.setAttribute("data-images", images.length);
  document.body.setAttribute("data-broken", broken);
});
</script></body>"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    onnxviz.load(DEMO, device="cpu").report([IMAGES / "triangle.png", IMAGES / "chelsea.png"], path, top=3)
    return path


def _embedded(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_embeds_every_picture_and_the_layer_table(report) -> None:
    page = report.read_text()
    pictures = _embedded(page)
    # per image: 1 occlusion + 3 conv layers x (projections + activations)
    assert len(pictures) == 2 * (1 + 3 * 2)
    for data in pictures:
        assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None
    assert "<td>conv3</td>" in page and "receptive field" in page and 'src="http' not in page


def test_report_renders_in_headless_chromium(report, tmp_path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("headless Chromium is not installed here (.ci/run installs Debian's chromium package)")
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", PROBE))
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probe.as_uri(),
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    assert 'data-images="14"' in dom, dom[-500:]
    assert 'data-broken="0"' in dom


def test_report_cli(capsys, tmp_path) -> None:
    out = tmp_path / "r.html"
    code, _, err = run_cli(capsys, "report", DEMO, IMAGES / "circle.png", "--out", out, "--top", "2")
    assert code == 0, err
    assert len(_embedded(out.read_text())) == 7
    code, _, err = run_cli(capsys, "report", DEMO, IMAGES / "missing.png", "--out", tmp_path / "x.html")
    assert code == 2 and not (tmp_path / "x.html").exists()


def test_report_layers_option_limits_the_sections(capsys, tmp_path) -> None:
    out = tmp_path / "r.html"
    code, _, err = run_cli(capsys, "report", DEMO, IMAGES / "circle.png", "--out", out, "--layers", "conv2")
    assert code == 0, err
    page = out.read_text()
    assert len(_embedded(page)) == 3 and "<h3>conv2</h3>" in page and "<h3>conv1</h3>" not in page
    code, _, err = run_cli(capsys, "report", DEMO, IMAGES / "circle.png", "--out", out, "--layers", "conv9")
    assert code == 2 and "conv3" in err
