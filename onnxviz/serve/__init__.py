"""``onnxviz serve``: a local web viewer for any ONNX CNN, backed by the model's cached sessions.

``create_app(Viewer(model, images, state))`` is the Starlette app (tests drive it in-process);
``run`` serves it with uvicorn. Starlette and uvicorn come with ``pip install "onnxviz[serve]"``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import socket
import sys
from pathlib import Path

import uvicorn

from onnxviz.api import Model
from onnxviz.errors import UsageError
from onnxviz.serve.app import create_app
from onnxviz.serve.viewer import Viewer

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# What a browser sends as Host to a local server (the port is not part of the check).
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")

__all__ = ["LOCAL_HOSTS", "Viewer", "check_bindable", "create_app", "run"]


def run(model: Model, images: Path | None, state: Path | None, host: str, port: int) -> None:
    """Serve ``model`` on ``host:port`` until interrupted."""
    hosts = list(LOCAL_NAMES) if host in LOCAL_HOSTS else None
    check_bindable(host, port)
    share_malloc_arenas()
    uvicorn.run(create_app(Viewer(model, images, state), hosts), host=host, port=port, log_level="warning")


MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # glibc's mallopt parameter


def share_malloc_arenas() -> None:
    """Cap glibc's malloc arenas for the server's threads (Linux with glibc; elsewhere nothing).

    Requests run on Starlette's pool of up to 40 threads, and glibc gives each thread that
    allocates its own arena, kept when freed: the server's memory crept up with every thread that
    ever ran a request (+9 % from 100 to 1,000 requests on the demo, measured by
    ``benchmarks/bench_serve.py --load``) although what it keeps is bounded. The model's work is
    serialised by the viewer's lock, so two arenas cost no speed.
    """
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS)
    except OSError:  # no C library to load (a static build): its allocator is left as it is
        return


def check_bindable(host: str, port: int) -> None:
    """Bind ``host:port`` once and let go, so that a port in use, out of range or an address this
    machine does not have is one clear error rather than uvicorn's log line and exit code 3."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be 0 to 65535; got {port}.")
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(
            f"Cannot serve on {host}:{port}: {reason}.", "Pick another --port, or stop what is using it."
        ) from None
