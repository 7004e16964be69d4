"""What the viewer refuses: files outside its folders, however named, and uploads too big or not pictures.

Every refused name points at a file that exists (the ``outside`` folder's secret, the model, this
repository's files), so a refusal that failed would answer 200 with the file, not 404.
"""

from __future__ import annotations

import http.client
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np
import pytest
from starlette.testclient import TestClient

import onnxviz
import onnxviz.serve
from onnxviz.serve import Viewer, create_app
from onnxviz.serve.viewer import UPLOAD_LIMIT
from tests.helpers import DEMO

# Names for --images (served/images) that lead to served/outside/secret.png or further up.
ESCAPES = [
    ("..%2Foutside%2Fsecret.png", 403),  # encoded '/', decoded by the router into ../outside/secret.png
    ("%2e%2e/outside/secret.png", 403),  # encoded dots
    ("%2E%2E%2Foutside%2Fsecret.png", 403),
    ("nested/..%2F..%2Foutside%2Fsecret.png", 403),
    ("..%5Coutside%5Csecret.png", 403),  # backslashes
    ("%2Fetc%2Fpasswd", 403),  # absolute, encoded
    ("/etc/passwd", 403),  # absolute: the route's path begins with '/'
    ("C:%5CWindows%5Cwin.ini", 403),  # a drive
    ("leak.png", 403),  # a symlink to outside/secret.png
    ("leakdir/secret.png", 403),  # through a symlinked folder
]


@pytest.mark.parametrize(("name", "status"), ESCAPES)
def test_images_route_refuses_names_that_lead_out(client, served, name, status) -> None:
    response = client.get(f"/images/{name}")
    assert response.status_code == status, response.text
    assert response.content != (served["outside"] / "secret.png").read_bytes()
    assert response.json()["error"]


@pytest.mark.parametrize(("name", "status"), ESCAPES)
def test_image_parameters_refuse_names_that_lead_out(client, name, status) -> None:
    """The same names as the ``image`` of an analysis (decoded once, as a query parameter)."""
    for endpoint in ("/api/picture.png", "/api/activations"):
        response = client.get(endpoint, params={"image": unquote(name), "node": "conv1"})
        assert response.status_code == status, (endpoint, name, response.text)


@pytest.mark.parametrize("name", ["..%2Fimages%2Fchelsea.png", "%2e%2e/outside/secret.png", "leak_maximize.png"])
def test_state_route_refuses_names_that_lead_out(client, name) -> None:
    assert client.get(f"/state/{name}").status_code == 403


def test_literal_dot_dot_in_the_raw_path_is_refused(live_server, served) -> None:
    """HTTP clients remove ``..`` segments before sending; a hostile one does not. Sent raw to uvicorn."""
    address = urlsplit(live_server)
    for path in ("/images/../outside/secret.png", "/images/nested/../../outside/secret.png", "/state/../images/x"):
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        assert response.status in (403, 404), (path, response.status)
        assert body != (served["outside"] / "secret.png").read_bytes()


def test_served_files_inside_the_folders_are_answered(client, served) -> None:
    for route, name in (("images", "nested/stripes.png"), ("images", "chelsea.png"), ("state", "fc2_maximize.png")):
        response = client.get(f"/{route}/{name}")
        assert response.status_code == 200 and response.content == (served[route] / name).read_bytes()
    assert client.get("/images/nothing.png").status_code == 404


def test_without_folders_nothing_is_served(served) -> None:
    bare = TestClient(create_app(Viewer(onnxviz.load(DEMO, device="cpu"))))
    assert bare.get("/images/chelsea.png").status_code == 404
    assert bare.get("/state/fc2_maximize.png").status_code == 404
    assert bare.get("/api/picture.png", params={"image": "chelsea.png"}).status_code == 404
    assert bare.get("/api/images").json() == {"images": []}


def test_an_upload_over_the_limit_is_refused_with_413(client) -> None:
    response = client.post("/api/upload", content=b"\0" * (UPLOAD_LIMIT + 1))
    assert response.status_code == 413 and "16 MB" in response.json()["error"]

    def chunks():  # no Content-Length: the size is counted as the body arrives
        for _ in range(UPLOAD_LIMIT // 2**20 + 1):
            yield b"\0" * 2**20

    response = client.post("/api/upload", content=chunks())
    assert response.status_code == 413 and "16 MB" in response.json()["error"]


def test_an_upload_at_the_limit_is_decoded(client) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (2200, 2200, 3), np.uint8)
    data = cv2.imencode(".png", noise)[1].tobytes()
    assert len(data) <= UPLOAD_LIMIT
    response = client.post("/api/upload", content=data)
    assert response.status_code == 200 and response.json()["image"].startswith("upload:")


@pytest.mark.parametrize(
    "data", [b"", b"GIF89a not really", b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"\x89PNG\r\n"]
)
def test_an_upload_that_is_not_a_picture_is_refused_with_400(client, data) -> None:
    response = client.post("/api/upload", content=data)
    assert response.status_code == 400 and "not a picture" in response.json()["error"]


@pytest.mark.parametrize(("bind", "answered"), [("127.0.0.1", False), ("localhost", False), ("0.0.0.0", True)])
def test_a_local_server_answers_only_to_local_host_names(served, monkeypatch, bind, answered) -> None:
    """A page on another site that points its own name at 127.0.0.1 (DNS rebinding) gets 400."""
    apps = []
    monkeypatch.setattr(onnxviz.serve.uvicorn, "run", lambda app, **options: apps.append((app, options)))
    onnxviz.serve.run(onnxviz.load(DEMO, device="cpu"), served["images"], None, bind, 8000)
    ((app, options),) = apps
    assert options["host"] == bind and options["port"] == 8000
    for base in ("http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"):
        assert TestClient(app, base_url=base).get("/api/images").status_code == 200
    other = TestClient(app, base_url="http://attacker.example:8000").get("/api/images")
    assert (other.status_code == 200) == answered
