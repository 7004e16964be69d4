"""What reading a detector's two pre-NMS tensors as one output (``--boxes/--scores``) costs, on CPU.

Pairs, interleaved (A B A B …, round 0 a warm-up, dropped), on the RetinaNet-style fixture
``tests/fixtures/models/pre_nms_dynamo.onnx`` (128 × 128, boxes (1, 512, 4), scores (1, 512, 3)):

- load: ``onnxviz.load`` of the file as it is (A) and with ``boxes=, scores=`` (B: the graph
  copied, three nodes appended and indexed again), the content cache on and warm;
- saliency: the same gradient, of prediction m's class-k score, as the element target
  ``scores[0,m,k]`` on the plain model (A) and as the element ``onnxviz_detections[0,4+k,m]`` of
  the joined one (B: the appended nodes' cost), then as the box target matching m (B: with the
  box matched and the image's detections decoded, for ``--json`` and the picture), each through a
  model loaded once.

The table gives each row's median and the median per-round ratio B / A.

Usage::

    python benchmarks/bench_pre_nms.py            # --rounds 9
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import onnxviz

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "tests" / "fixtures" / "models" / "pre_nms_dynamo.onnx"
FOUND = ROOT / "tests" / "fixtures" / "detectors" / "pre_nms.npz"


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def interleaved(a: Callable[[], object], b: Callable[[], object], rounds: int) -> tuple[float, float, float]:
    """Median seconds of A, of B, and the median per-round ratio B / A (round 0 dropped)."""
    pairs = [(timed(a), timed(b)) for _ in range(rounds + 1)][1:]
    return (
        statistics.median(p[0] for p in pairs),
        statistics.median(p[1] for p in pairs),
        statistics.median(p[1] / p[0] for p in pairs),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    rounds = parser.parse_args().rounds
    found = np.load(FOUND)
    x, matched, klass = found["x"], int(found["matched"]), int(found["class"])
    box = "box:" + ",".join(f"{v:.4f}" for v in found["box"])
    names = {"boxes": "boxes", "scores": "scores"}
    rows = {
        "load": interleaved(
            lambda: onnxviz.load(MODEL, device="cpu"), lambda: onnxviz.load(MODEL, device="cpu", **names), rounds
        )
    }
    plain, joined = onnxviz.load(MODEL, device="cpu"), onnxviz.load(MODEL, device="cpu", **names)
    element = f"scores[0,{matched},{klass}]"
    rows["saliency, the same element"] = interleaved(
        lambda: plain.attribute(x, method="saliency", target=element),
        lambda: joined.attribute(x, method="saliency", target=f"onnxviz_detections[0,{4 + klass},{matched}]"),
        rounds,
    )
    rows["saliency, B as a box target"] = interleaved(
        lambda: plain.attribute(x, method="saliency", target=element),
        lambda: joined.attribute(x, method="saliency", target=box),
        rounds,
    )
    print("| row | A: as it is (ms) | B: --boxes/--scores (ms) | B / A (median of rounds) |")
    print("| --- | --- | --- | --- |")
    for name, (a, b, ratio) in rows.items():
        print(f"| {name} | {a * 1e3:.1f} | {b * 1e3:.1f} | {ratio:.2f}× |")


if __name__ == "__main__":
    main()
