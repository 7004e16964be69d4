"""``onnxviz serve``: a local web viewer for any ONNX CNN, backed by the model's cached sessions.

``create_app(Viewer(model, images, state))`` is the Starlette app (tests drive it in-process);
``run`` serves it with uvicorn. Starlette and uvicorn come with ``pip install "onnxviz[serve]"``.
"""

from __future__ import annotations

from pathlib import Path

import uvicorn

from onnxviz.api import Model
from onnxviz.serve.app import create_app
from onnxviz.serve.viewer import Viewer

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# What a browser sends as Host to a local server (the port is not part of the check).
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")

__all__ = ["LOCAL_HOSTS", "Viewer", "create_app", "run"]


def run(model: Model, images: Path | None, state: Path | None, host: str, port: int) -> None:
    """Serve ``model`` on ``host:port`` until interrupted."""
    hosts = list(LOCAL_NAMES) if host in LOCAL_HOSTS else None
    uvicorn.run(create_app(Viewer(model, images, state), hosts), host=host, port=port, log_level="warning")
