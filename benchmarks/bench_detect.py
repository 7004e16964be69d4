"""Explaining one detection of a YOLOv8n-sized detector at 640 × 640, on CPU.

Rows (one image: skimage's astronaut resized to 640 × 640, RGB / 255, as ultralytics feeds it):

- one plain onnxruntime forward of the model (a fresh ``InferenceSession``, default options);
- onnxviz gradcam of ``detection:0`` (onnxviz's decoding, the default layer: the neck's P3 map),
  through the model loaded once (its gradient engine built in the warm-up round);
- onnxviz occlusion of the same detection as a box target (patch 64, stride 32: 19 × 19 = 361
  positions, re-matching the box on every occluded copy), in positions per second, beside the
  plain forward's own rate at batch 1.

The model is ``models/yolov8n_bench.onnx`` (``scripts/detector_fixtures.py --bench``: ultralytics'
``yolov8.yaml`` at scale n, 80 classes, seeded weights, exported by ultralytics' exporter; not
committed). Each round times the plain forward and gradcam two ways: alternating call by call
(A B A B …, 5 pairs) and in blocks of 5 calls of each, as a user's loop makes them (the blocks'
order reversed every other round). The two ways differ because onnxruntime's default sessions
keep their worker threads spinning for a while after a run, and those threads compete with the
next call's; round 0 is a warm-up and is dropped; the table gives medians and the median
per-round ratio of the medians.

Usage::

    /tmp/yolovenv/bin/python scripts/detector_fixtures.py --bench
    python benchmarks/bench_detect.py            # --rounds 7 --occlusion-rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from skimage import data

import onnxviz

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "yolov8n_bench.onnx"
SIZE = 640
LIMIT = 1.3  # gradcam of one detection / one plain forward
CALLS = 5  # calls per block, and alternating pairs per round


def timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--occlusion-rounds", type=int, default=2)
    args = parser.parse_args()
    if not MODEL.exists():
        raise SystemExit(f"{MODEL} is missing: build it with scripts/detector_fixtures.py --bench")
    picture = cv2.resize(data.astronaut(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    x = np.ascontiguousarray(picture.transpose(2, 0, 1)[None], np.float32) / 255
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    model = onnxviz.load(MODEL, device="cpu")
    first = model.cam(x, target="detection:0")
    target = first.targets[0]
    print(f"detection:0: class {target.class_index}, score {target.score:.3f}, box {[round(v) for v in target.box]}")
    print(f"layer {first.layers[0]}; {len(target.detections)} detections after the decoding")

    def forward() -> None:
        session.run(None, {name: x})

    def gradcam() -> None:
        model.cam(x, target="detection:0")

    median = statistics.median
    times: dict[str, list[float]] = {way: [] for way in ("alternating", "blocks")}
    ratios: dict[str, list[float]] = {way: [] for way in times}
    plain: dict[str, list[float]] = {way: [] for way in times}
    for round_ in range(args.rounds + 1):
        pairs = [(timed(forward), timed(gradcam)) for _ in range(CALLS)]
        order = [forward, gradcam] if round_ % 2 else [gradcam, forward]
        blocks = {run: [timed(run) for _ in range(CALLS)] for run in order}
        if round_:
            for way, a, b in (
                ("alternating", [p[0] for p in pairs], [p[1] for p in pairs]),
                ("blocks", blocks[forward], blocks[gradcam]),
            ):
                plain[way].append(median(a))
                times[way].append(median(b))
                ratios[way].append(median(b) / median(a))
    box = "box:" + ",".join(f"{v:.2f}" for v in target.box) + f":{target.class_index}"
    rates, forward_rates = [], []
    for _ in range(args.occlusion_rounds):
        occlusion = model.occlude(x, target=box, patch=64, stride=32)
        rates.append(occlusion.positions_per_second)
        forward_rates.append(1 / timed(lambda: session.run(None, {name: x})))
    print(f"{'row':<52} {'median':>10}")
    for way in times:
        verdict = "meets" if median(ratios[way]) <= LIMIT else "misses"
        ratio = median(ratios[way])
        print(f"{way + ': ort plain forward (ms)':<52} {median(plain[way]) * 1000:>10.1f}")
        print(f"{way + ': onnxviz gradcam of detection:0 (ms)':<52} {median(times[way]) * 1000:>10.1f}")
        print(f"{way + ': ratio gradcam / forward (median per round)':<52} {ratio:>10.2f}  ({verdict} ≤ {LIMIT})")
    grid = f"{occlusion.grid.rows}x{occlusion.grid.cols}, batch {occlusion.batch_size}"
    print(f"{'onnxviz occlusion of the box, positions/s':<52} {median(rates):>10.2f}  ({grid})")
    print(f"{'ort plain forwards/s at batch 1':<52} {median(forward_rates):>10.2f}")
    print(f"non-zero occlusion scores: {np.count_nonzero(occlusion.scores)}/{occlusion.scores.size}")


if __name__ == "__main__":
    main()
