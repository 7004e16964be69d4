"""The viewer on a detector and a segmenter: a detection clicked is explained as a box target, a
segmentation class picked as a mask target, and the picture the target was picked from is drawn
from the same result as ``explain``'s figure."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data
from starlette.testclient import TestClient

import onnxviz
from onnxviz.serve import Viewer, create_app
from tests.helpers import FIXTURES


def decoded(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(folder / "astronaut.png"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return folder


def served(name: str, images) -> tuple[TestClient, onnxviz.Model]:
    viewer = Viewer(onnxviz.load(FIXTURES / name, device="cpu"), images, None)
    return TestClient(create_app(viewer)), onnxviz.load(FIXTURES / name, device="cpu")


def test_a_clicked_detection_is_explained_as_its_box(images) -> None:
    client, fresh = served("yolov8n_tiny.onnx", images)
    params = {"image": "astronaut.png", "method": "gradcam", "target": "detection:0"}
    answer = client.get("/api/explain", params=params).json()
    target = answer["methods"]["gradcam"]["target"]
    assert answer["size"] == [128, 128] and target["kind"] == "detection" and len(target["detections"]) >= 2
    expected = fresh.explain(images / "astronaut.png", methods=["gradcam"], target="detection:0")
    np.testing.assert_array_equal(decoded(client.get("/api/explain/seen.png", params=params)), expected.seen())
    assert not np.array_equal(expected.seen(), expected.picture)  # the boxes are drawn

    clicked = target["detections"][1]  # what the page sends for a click inside the second box
    box = "box:" + ",".join(f"{v:.2f}" for v in clicked["box"]) + f":{clicked['class']}"
    again = client.get("/api/explain", params={**params, "target": box}).json()["methods"]["gradcam"]["target"]
    assert again["kind"] == "box" and again["class"] == clicked["class"]
    np.testing.assert_allclose(again["box"], clicked["box"])
    assert again["score"] == pytest.approx(clicked["score"])


def test_the_viewers_occlusion_scores_the_target_given(images) -> None:
    client, fresh = served("yolov8n_tiny.onnx", images)
    params = {"image": "astronaut.png", "patch": 32, "stride": 32, "target": "detection:0"}
    answer = client.get("/api/occlude", params=params).json()
    expected = fresh.occlude(images / "astronaut.png", patch=32, stride=32, target="detection:0").summary()
    assert answer["kind"] == "detection" and answer["resolved_target"] == expected["resolved_target"]
    assert (answer["min"], answer["max"]) == (expected["min"], expected["max"])
    refused = client.get("/api/occlude", params={**params, "target": None})  # the top-1 class of a detector
    assert refused.status_code == 400 and "[1, 7, 336]" in refused.json()["error"]


def test_a_segmentation_class_picked_is_explained_over_its_pixels(images) -> None:
    client, fresh = served("seg_lraspp_dynamo.onnx", images)
    first = {"image": "astronaut.png", "method": "gradcam", "target": "mask:predicted:0"}
    answer = client.get("/api/explain", params=first)
    if answer.status_code == 400:  # class 0 predicted nowhere on this picture: pick the first that is
        first["target"] = "mask:predicted:1"
        answer = client.get("/api/explain", params=first)
    target = answer.json()["methods"]["gradcam"]["target"]
    assert target["kind"] == "mask" and target["predicted"] and target["class"] in target["predicted"]
    picked = {**first, "target": f"mask:predicted:{target['predicted'][-1]}"}
    found = client.get("/api/explain", params=picked).json()["methods"]["gradcam"]["target"]
    expected = fresh.explain(images / "astronaut.png", methods=["gradcam"], target=picked["target"])
    assert found == expected.panels[0].target.summary()
    np.testing.assert_array_equal(decoded(client.get("/api/explain/seen.png", params=picked)), expected.seen())


def test_a_click_on_a_detection_in_the_browser_explains_that_box(images, tmp_path) -> None:
    """Headless Chromium against uvicorn: explain detection:0, then click inside the second
    detection's box on the picture; the page explains that box."""
    import shutil
    import threading
    import time

    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (the test extra has it)")
    import uvicorn

    from onnxviz.serve import LOCAL_NAMES
    from tests.serve.conftest import free_port

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed here (.ci/run installs Debian's chromium package)")
    viewer = Viewer(onnxviz.load(FIXTURES / "yolov8n_tiny.onnx", device="cpu"), images, None)
    config = uvicorn.Config(
        create_app(viewer, list(LOCAL_NAMES)), host="127.0.0.1", port=free_port(), log_level="error"
    )
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"http://127.0.0.1:{config.port}/")
            page.select_option("#image-picker", "astronaut.png")
            page.wait_for_function("() => document.querySelector('#method-picker').options.length > 0")
            page.select_option("#method-picker", "gradcam")
            page.fill("#target", "detection:0")
            page.click("#explain")
            seen = "i => i.src.includes('seen.png') && i.complete && i.naturalWidth > 0"
            page.wait_for_function(f"() => ({seen})(document.querySelector('#explain-image'))")
            explained = page.evaluate("() => state.explained")
            second = explained["target"]["detections"][1]
            x1, y1, x2, y2 = second["box"]
            width, height = page.eval_on_selector("#explain-image", "i => [i.clientWidth, i.clientHeight]")
            size_y, size_x = explained["size"]
            inside = {"x": (x1 + x2) / 2 / size_x * width, "y": (y1 + y2) / 2 / size_y * height}
            smaller = [
                d for d in explained["target"]["detections"]
                if d["box"][0] <= (x1 + x2) / 2 <= d["box"][2] and d["box"][1] <= (y1 + y2) / 2 <= d["box"][3]
            ]  # fmt: skip
            expected = min(smaller, key=lambda d: (d["box"][2] - d["box"][0]) * (d["box"][3] - d["box"][1]))
            page.click("#explain-image", position=inside)
            page.wait_for_function("() => document.querySelector('#explain-caption').textContent.includes('of box')")
            assert page.input_value("#target").startswith("box:")
            assert page.evaluate("() => state.explained.target.class") == expected["class"]
            assert page.evaluate("() => state.explained.target.box") == pytest.approx(expected["box"], abs=0.01)
            page.screenshot(path=str(tmp_path / "detector.png"), full_page=True)
            assert not errors
            browser.close()
    finally:
        server.should_exit = True
