"""``onnxviz serve`` as a user starts it, driven by a bounded local client loop (loopback only).

``served(images)`` starts the real command in a subprocess on a free port and waits until it
answers; ``drive(base, count, clients)`` sends ``count`` requests from ``clients`` threads, each
with its own connection, mixing what a page does: clicks on a channel (the projection's JSON, then
its PNG), activation grids, uploads (then the uploaded picture), an occlusion now and then, and a
request the server must refuse (an unknown layer: 400). ``rss(pid)`` reads the server's resident
memory. Shared by ``tests/serve/test_load.py`` and ``benchmarks/bench_serve.py``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "models" / "demo.onnx"
NODES = ("conv1", "conv2", "conv3")
CHANNELS = 16  # conv1 of the demo has 16 maps, the later layers more: every click is a real channel


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served(images: Path, timeout_s: float = 60.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """``onnxviz serve models/demo.onnx --images IMAGES`` on a free loopback port: (base URL, process)."""
    port = free_port()
    command = [sys.executable, "-c", "from onnxviz.cli import main; main()", "serve", str(DEMO)]
    command += ["--images", str(images), "--port", str(port), "--device", "cpu"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_answering(base, process, timeout_s)
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_answering(base: str, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"onnxviz serve exited {process.returncode}: {process.stderr.read().decode()}")
        try:
            if httpx.get(base + "/api/layers", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)  # polling a condition (the port answering), not waiting out a guess
    raise RuntimeError(f"onnxviz serve did not answer within {timeout_s:g} s")


def rss(pid: int) -> int:
    """The process's resident memory in bytes (Linux: /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass
class Tally:
    """What the clients met: every status, the seconds of each click (JSON + PNG), failures."""

    statuses: list[int] = field(default_factory=list)
    clicks: list[float] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def p95_click_ms(self) -> float:
        return float(np.percentile(self.clicks, 95) * 1000) if self.clicks else float("nan")


def _uploads() -> list[bytes]:
    """Small real pictures to upload, each one different (their content is what the server keys)."""
    photo = cv2.imread(str(ROOT / "models" / "images" / "chelsea.png"))
    return [cv2.imencode(".png", np.roll(photo, 7 * i, axis=1)[::2, ::2])[1].tobytes() for i in range(24)]


UPLOADS = _uploads()


def _request(client: httpx.Client, index: int, images: list[str], tally: Tally) -> int:
    """Request ``index`` of the mix; how many requests it made (a click and an upload make two)."""
    image = images[index % len(images)]
    node, channel = NODES[index % len(NODES)], (index * 5) % CHANNELS
    kind = index % 10
    expected = {200}
    if kind in (0, 1, 2, 3, 4):  # a click: the projection, then its picture
        params = {"image": image, "node": node, "channel": channel, "rule": ("deconvnet", "guided")[index % 2]}
        started = time.perf_counter()
        answers = [client.get("/api/project", params=params), client.get("/api/project.png", params=params)]
        took = time.perf_counter() - started
        with tally.lock:
            tally.clicks.append(took)
    elif kind in (5, 6):
        answers = [client.get("/api/activations.png", params={"image": image, "node": node})]
    elif kind == 7:
        answer = client.post("/api/upload", content=UPLOADS[index % len(UPLOADS)])
        answers = [answer]
        if answer.status_code == 200:
            answers.append(client.get("/api/picture.png", params={"image": answer.json()["image"]}))
    elif kind == 8 and index % 50 == 8:
        answers = [client.get("/api/occlude", params={"image": image, "patch": 16, "stride": 8})]
    else:
        expected = {400}
        answers = [client.get("/api/project", params={"image": image, "node": "no_such_layer"})]
    with tally.lock:
        path = answers[0].request.url.path
        tally.kinds[path] = tally.kinds.get(path, 0) + 1
        for answer in answers:
            tally.statuses.append(answer.status_code)
            if answer.status_code not in expected:
                tally.unexpected.append(f"{answer.request.method} {answer.request.url}: {answer.status_code}")
    return len(answers)


def drive(base: str, count: int, clients: int = 8, start: int = 0) -> Tally:
    """Send at least ``count`` requests from ``clients`` threads; request numbers from ``start``."""
    images = httpx.get(base + "/api/images", timeout=30).json()["images"]
    tally = Tally()
    sent, lock = [0], threading.Lock()
    numbers = iter(range(start, start + count * 2))

    def client_loop() -> None:
        with httpx.Client(base_url=base, timeout=120) as client:
            while True:
                with lock:
                    if sent[0] >= count:
                        return
                    index = next(numbers)
                made = _request(client, index, images, tally)
                with lock:
                    sent[0] += made

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally
