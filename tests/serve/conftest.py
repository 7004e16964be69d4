"""The served folders and the viewer the serve tests share, and a real uvicorn server on a free port.

The viewer loads its own copy of the demo model (it widens the model's engine caches, which the
session-wide ``demo_model`` must not see). ``--images`` holds the bundled pictures, one in a
sub-folder, one with a hostile name and a symlink that leads out of the folder; ``--state`` holds a
real top-k output of conv1 and a real maximisation picture.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.testclient import TestClient

import onnxviz
from onnxviz.serve import LOCAL_NAMES, Viewer, create_app
from tests.helpers import DEMO

PICTURES = DEMO.parent / "images"
HOSTILE = "<img src=x onerror=alert(1)>.png"


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("served")
    images, state, outside = root / "images", root / "state", root / "outside"
    (images / "nested").mkdir(parents=True)
    outside.mkdir()
    for name in ("chelsea.png", "triangle.png", "circle.png"):
        shutil.copy(PICTURES / name, images / name)
    shutil.copy(PICTURES / "stripes.png", images / "nested" / "stripes.png")
    shutil.copy(PICTURES / "coffee.png", images / HOSTILE)
    (outside / "secret.png").write_bytes((PICTURES / "circle.png").read_bytes())
    (images / "leak.png").symlink_to(outside / "secret.png")
    (images / "leakdir").symlink_to(outside, target_is_directory=True)
    model = onnxviz.load(DEMO, device="cpu")
    model.topk(PICTURES, node="conv1", channels=[0, 3], k=2).save(state / "topk_conv1")
    model.maximize(node="fc2", channels=[1], steps=2).save(state / "fc2_maximize.png")
    (state / "leak_maximize.png").symlink_to(outside / "secret.png")
    return {"root": root, "images": images, "state": state, "outside": outside}


@pytest.fixture(scope="session")
def viewer(served) -> Viewer:
    return Viewer(onnxviz.load(DEMO, device="cpu"), served["images"], served["state"])


@pytest.fixture(scope="session")
def client(viewer) -> TestClient:
    return TestClient(create_app(viewer))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(viewer) -> Iterator[str]:
    """uvicorn serving the viewer in a thread; yields its base URL."""
    app = create_app(viewer, list(LOCAL_NAMES))  # as ``onnxviz serve`` on localhost makes it
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        pytest.fail("uvicorn did not start within 20 s")
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(timeout=10)
