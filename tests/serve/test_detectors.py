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
