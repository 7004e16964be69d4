"""The examples that serve an explainer without onnxviz: ``examples/export/serve_map.py`` (plain
onnxruntime and OpenCV, shown on docs/export.md) gives onnxviz's own class, score and map, and
``examples/export/index.html`` runs the explainer with onnxruntime-web in headless Chromium, with
the result onnxruntime gives on the tensor the page made."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

import onnxviz
from tests.helpers import FIXTURES, ROOT

EXAMPLES = ROOT / "examples" / "export"
WEB_DIST = (
    Path(os.environ.get("ONNXVIZ_WEB_MODULES", ROOT / ".ci" / "web" / "node_modules")) / "onnxruntime-web" / "dist"
)
CDN = "https://cdn.jsdelivr.net/npm/onnxruntime-web@"
PAGE_ORIGIN = "https://explainer.example"


@pytest.fixture(scope="module")
def gradcam(tmp_path_factory) -> tuple[onnxviz.Model, Path]:
    model = onnxviz.load(FIXTURES / "cam_resnet.onnx", device="cpu")
    path = model.export(out=tmp_path_factory.mktemp("explainer") / "explainer.onnx", method="gradcam").path
    return model, path


def test_the_ten_line_script_serves_onnxvizs_own_class_score_and_map(gradcam, picture, tmp_path) -> None:
    model, path = gradcam
    written = tmp_path / "map.png"
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "serve_map.py"), str(path), str(picture), str(written)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = re.match(r"class (\d+), score (-?[\d.]+): ", done.stdout)
    own = model.cam([picture], method="gradcam")
    assert printed is not None and int(printed[1]) == own.targets[0].class_index
    assert abs(float(printed[2]) - own.targets[0].score) <= 1e-4 * max(1.0, abs(own.targets[0].score))
    _, shown, _ = model.prepare(picture)
    jet = cv2.applyColorMap(np.uint8(255 * own.raw()[0]), cv2.COLORMAP_JET)
    expected = cv2.addWeighted(cv2.cvtColor(shown, cv2.COLOR_RGB2BGR), 0.5, jet, 0.5, 0).astype(int)
    found = cv2.imread(str(written)).astype(int)
    assert found.shape == expected.shape
    assert np.mean(np.abs(found - expected) > 2) < 0.01  # a level of 255 may flip where the map sits on a step


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_browser_page_runs_the_explainer_with_onnxruntime_web(gradcam, picture) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (the test extra has it)")
    if _chromium() is None:
        pytest.skip("Chromium is not installed here (.ci/run installs Debian's chromium package)")
    if not WEB_DIST.is_dir():
        pytest.skip(f"onnxruntime-web is not installed in {WEB_DIST.parent.parent} (.ci/run installs it with npm)")
    model, path = gradcam
    served = {"index.html": EXAMPLES / "index.html", "explainer.onnx": path}

    def from_disk(route) -> None:
        url = route.request.url
        if url.startswith(CDN):
            file = WEB_DIST / url.split("/dist/", 1)[1].split("?")[0]
        else:
            file = served.get(url.removeprefix(PAGE_ORIGIN + "/").split("?")[0])
        if file is None or not file.is_file():
            route.fulfill(status=404, body="not found")
            return
        kinds = {".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm"}
        route.fulfill(
            status=200, body=file.read_bytes(), content_type=kinds.get(file.suffix, "application/octet-stream")
        )

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.route("**/*", from_disk)
        page.goto(f"{PAGE_ORIGIN}/index.html?model=explainer.onnx")
        page.set_input_files("#picture", str(picture))
        page.wait_for_function("() => window.explained !== undefined", timeout=60000)
        explained = page.evaluate("() => window.explained")
        browser.close()
    assert errors == []
    x = np.asarray(explained["input"], np.float32).reshape(explained["shape"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits, score, heatmap = session.run(None, {model.graph.input_name: x})
    assert explained["class"] == int(logits[0].argmax())
    assert abs(explained["score"] - float(score[0])) <= 1e-3 * max(1.0, abs(float(score[0])))
    found = np.asarray(explained["heatmap"], np.float32).reshape(heatmap.shape)
    assert np.abs(found - heatmap).max() <= 1e-3 * np.abs(heatmap).max()
