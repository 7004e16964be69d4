"""Server-side time of a click in ``onnxviz serve``: the page's two requests for one channel.

    python benchmarks/bench_serve.py [--vgg models/vgg16_random.onnx] [--rounds 41] [--vgg-rounds 9]
    python benchmarks/bench_serve.py --load [--requests 1000] [--clients 8]

A click on a channel makes the page ask ``/api/project`` (JSON: computes the projection) and then
``/api/project.png`` (the same result, kept by the viewer, drawn as a PNG). The app is called
in-process (Starlette's TestClient) through an ASGI wrapper that times each request from the
moment the app receives it until its response is sent: server-side time, without the client or
the network. Every click is on a channel not clicked before, so nothing is served from the
viewer's result cache; the projector (one per layer and rule) is warm after the first click,
whose time (graph build included) is reported apart.

Demo model (64×64): median over rounds against the 150 ms target. VGG16 conv5_3 (224×224,
``conv13``, caffe preprocessing): interleaved per round with a direct ``Model.project`` of
another channel on the same warm model, i.e. one forward + inverse; the median per-round ratio
says what the server adds. ``scripts/build_vgg16.py --random`` builds the VGG16 file.

``--load``: the real ``onnxviz serve`` (a subprocess, demo model, the bundled pictures) under
``--clients`` concurrent local clients sending the mix of ``tests/serve/load.py`` (clicks,
activation grids, uploads, an occlusion, refused requests): the statuses, the click latency seen
by a client (median, p95) and the server's resident memory after 100 requests and after
``--requests``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import onnxruntime
from starlette.testclient import TestClient

import onnxviz
from onnxviz.serve import Viewer, create_app

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "models" / "images"
sys.path.insert(0, str(ROOT))  # the load driver is the test's (tests/serve/load.py)


class Timed:
    """An ASGI wrapper remembering how long the last request took inside the app."""

    def __init__(self, app) -> None:
        self.app = app
        self.last = 0.0

    async def __call__(self, scope, receive, send) -> None:
        started = time.perf_counter()
        await self.app(scope, receive, send)
        self.last = time.perf_counter() - started


def click(client: TestClient, timed: Timed, node: str, channel: int) -> tuple[float, float]:
    """(JSON, PNG) server-side seconds of one click on ``channel`` of ``node``."""
    params = {"image": "chelsea.png", "node": node, "channel": channel, "rule": "deconvnet"}
    client.get("/api/project", params=params).raise_for_status()
    computed = timed.last
    client.get("/api/project.png", params=params).raise_for_status()
    return computed, timed.last


def serve(model: onnxviz.Model) -> tuple[TestClient, Timed]:
    timed = Timed(create_app(Viewer(model, IMAGES)))
    return TestClient(timed), timed


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.1f} ms median, {min(values) * 1000:8.1f} min"


def demo(rounds: int) -> None:
    client, timed = serve(onnxviz.load(ROOT / "models" / "demo.onnx", device="cpu"))
    first = click(client, timed, "conv3", 0)
    clicks = [click(client, timed, "conv3", 1 + i % 63) for i in range(rounds)]
    print(f"demo.onnx conv3, {rounds} clicks (first click, projector build included: {sum(first) * 1000:.1f} ms)")
    print(f"  /api/project (computes)      {ms([c[0] for c in clicks])}")
    print(f"  /api/project.png (kept)      {ms([c[1] for c in clicks])}")
    print(f"  click = both                 {ms([sum(c) for c in clicks])}   target < 150 ms")


def vgg(path: Path, rounds: int) -> None:
    model = onnxviz.load(path, device="cpu", preset="caffe")
    client, timed = serve(model)
    picture = IMAGES / "chelsea.png"
    first = click(client, timed, "conv13", 0)
    model.project(picture, node="conv13", channels=[1])  # warms the shared forward of direct calls too
    clicks, direct, ratios = [], [], []
    for i in range(rounds):
        clicks.append(click(client, timed, "conv13", 2 + 2 * i))
        started = time.perf_counter()
        model.project(picture, node="conv13", channels=[3 + 2 * i])
        direct.append(time.perf_counter() - started)
        ratios.append(sum(clicks[-1]) / direct[-1])
    print(f"{path.name} conv13 (conv5_3), 224x224, {rounds} interleaved rounds (first click: {sum(first):.2f} s)")
    print(f"  /api/project (computes)      {ms([c[0] for c in clicks])}")
    print(f"  /api/project.png (kept)      {ms([c[1] for c in clicks])}")
    print(f"  click = both                 {ms([sum(c) for c in clicks])}")
    print(f"  Model.project (fwd + inv)    {ms(direct)}")
    print(f"  click / Model.project        {statistics.median(ratios):8.2f} median per-round ratio")


def load(requests: int, clients: int) -> None:
    from tests.serve.load import drive, rss, served

    with served(IMAGES) as (base, process):
        started = time.perf_counter()
        first = drive(base, 100, clients)
        after_100 = rss(process.pid)
        rest = drive(base, requests - 100, clients, start=len(first.statuses))
        took = time.perf_counter() - started
        after = rss(process.pid)
    statuses = Counter(first.statuses + rest.statuses)
    clicks = first.clicks + rest.clicks
    print(f"onnxviz serve demo.onnx, {sum(statuses.values())} requests from {clients} clients in {took:.1f} s")
    print(f"  statuses {dict(sorted(statuses.items()))}, unexpected {len(first.unexpected + rest.unexpected)}")
    p95 = sorted(clicks)[int(0.95 * len(clicks))] * 1000
    print(f"  click (JSON + PNG, client side) {ms(clicks)}, p95 {p95:.1f} ms")
    print(f"  server RSS {after_100 / 2**20:.0f} MiB after 100 requests, {after / 2**20:.0f} MiB after {requests}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vgg", type=Path, default=ROOT / "models" / "vgg16_random.onnx")
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--vgg-rounds", type=int, default=9)
    parser.add_argument("--load", action="store_true", help="The served viewer under concurrent clients.")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, onnxruntime {onnxruntime.__version__} CPU provider")
    if args.load:
        load(args.requests, args.clients)
        return
    demo(args.rounds)
    if args.vgg.is_file():
        vgg(args.vgg, args.vgg_rounds)
    else:
        print(f"{args.vgg} not found: build it with `python scripts/build_vgg16.py --random`")


if __name__ == "__main__":
    main()
