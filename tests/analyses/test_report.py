"""The HTML report is self-contained and renders in a real browser with every image decoded."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess

import cv2
import numpy as np
import onnx
import pytest

import onnxviz
from tests.cli_helpers import run_cli
from tests.helpers import FIXTURES, session

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
    onnxviz.load(DEMO, device="cpu").report([IMAGES / "triangle.png", IMAGES / "chelsea.png"], out=path, top=3)
    return path


def _embedded(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_embeds_every_picture_and_the_layer_table(report) -> None:
    page = report.read_text()
    pictures = _embedded(page)
    # per image: 1 occlusion + the methods side by side + 3 conv layers x (projections + activations);
    # the invariance curves of both images to translation, rotation and scaling; the sanity grid and
    # the deletion and insertion curves
    assert len(pictures) == 2 * (1 + 1 + 3 * 2) + 3 + 3
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
    assert 'data-images="22"' in dom, dom[-500:]  # 19, and the sanity grid and two curve figures
    assert 'data-broken="0"' in dom


def test_report_cli(capsys, tmp_path) -> None:
    out = tmp_path / "r.html"
    code, _, err = run_cli(capsys, "report", DEMO, IMAGES / "circle.png", "--out", out, "--top", "2")
    assert code == 0, err
    assert len(_embedded(out.read_text())) == 8 + 3 + 3
    code, _, err = run_cli(capsys, "report", DEMO, IMAGES / "missing.png", "--out", tmp_path / "x.html")
    assert code == 2 and not (tmp_path / "x.html").exists()


def test_report_layers_option_limits_the_sections(capsys, tmp_path) -> None:
    out = tmp_path / "r.html"
    code, _, err = run_cli(
        capsys, "report", DEMO, IMAGES / "circle.png", "--out", out, "--layers", "conv2", "--no-trust"
    )
    assert code == 0, err
    page = out.read_text()
    assert len(_embedded(page)) == 4 + 3 and "<h3>conv2</h3>" in page and "<h3>conv1</h3>" not in page
    code, _, err = run_cli(capsys, "report", DEMO, IMAGES / "circle.png", "--out", out, "--layers", "conv9")
    assert code == 2 and "conv3" in err


def test_report_shows_each_images_methods_side_by_side_as_explain_draws_them(report, demo_model) -> None:
    page = report.read_text()
    for name in ("triangle.png", "chelsea.png"):
        section = re.search(rf"<section><h2>{name}</h2>(.*?)</section>", page, re.S)
        assert section is not None, name
        heading = re.search(r"<h3>methods side by side \(([^)]*)\)</h3>(<img [^>]*>)", section.group(1))
        assert heading is not None and heading.group(1) == "gradcam, guided, ig, smoothgrad"
        (data,) = _embedded(heading.group(2))
        shown = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(shown, demo_model.explain(IMAGES / name).figure())


def test_report_shows_the_invariance_curves_of_its_images(report, demo_model) -> None:
    """One section per transform: the curves of both images as the analysis draws them, and a table
    whose numbers are the analysis's (checked against the model itself at the untransformed input)."""
    page = report.read_text()
    pictures = [IMAGES / "triangle.png", IMAGES / "chelsea.png"]
    plain = session(onnx.load(str(DEMO)))
    top1 = [int(plain.run(None, {"input": demo_model.prepare(p)[0]})[0].argmax()) for p in pictures]
    labels = demo_model.labels()
    for transform in ("translate", "rotate", "scale"):
        section = re.search(rf"<h2>invariance to {transform}</h2>(.*?)</section>", page, re.S)
        assert section is not None, transform
        curves = demo_model.invariance(pictures, transform=transform)
        (data,) = _embedded(section.group(1))
        shown = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(shown, curves.figure())
        rows = re.findall(
            r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td></tr>",
            section.group(1),
        )
        assert [row[:2] for row in rows] == [("triangle.png", labels[top1[0]]), ("chelsea.png", labels[top1[1]])]
        for i, (_, _, lowest, conv1, code) in enumerate(rows):
            assert lowest == f"{curves.probability[i].min():.3g}"  # the numbers as shown, to 3 digits
            assert conv1 == f"{curves.relative[0, i].max():.3g}" and code == f"{curves.relative[1, i].max():.3g}"
            assert float(lowest) < 0.99 and float(conv1) > 0.1  # the transforms do move something


def test_report_on_a_model_whose_output_the_input_does_not_reach_is_an_onnxviz_error(tmp_path) -> None:
    """Found by the fuzz: the report's classifier check read the output's shape and met a KeyError."""
    from onnxviz.errors import OnnxvizError
    from tests.helpers import DEMO

    model = onnx.load(str(DEMO))
    gemm = next(n for n in model.graph.node if n.name == "/classifier/fc1/Gemm")
    gemm.input[0] = "features.conv1.bias"  # the classifier now reads a constant
    path = tmp_path / "cut_off.onnx"
    onnx.save(model, str(path))
    with pytest.raises(OnnxvizError):
        onnxviz.load(path, device="cpu").report([DEMO.parent / "images" / "chelsea.png"], out=tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()
