"""faithfulness's curves as batches: their throughput against plain onnxruntime forwards.

``onnxviz faithfulness`` with 100 deletion steps on ResNet-50 at 224 (``scripts/build_resnet50.py``)
scores 101 perturbed inputs per image and method. Row A is ``Model.faithfulness`` with the
``random`` method (its map costs nothing, so the row is the curve: making each step's input,
scoring it, the softmax) on two photos (scikit-image's astronaut and chelsea, 224 × 224), batch
``--batch``; row B is a plain ``onnxruntime.InferenceSession`` of the same file running the same
number of inputs (made beforehand) at the same batch size, default session options on both
sides. The rows alternate (A B A B …), round 0 is a warm-up and is dropped; the ratio is the
median per-round throughput of A over B (the contract: ≥ 0.8).

Usage::

    python scripts/build_resnet50.py
    python benchmarks/bench_trust.py            # --rounds 4 --batch 16 --steps 100
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
RESNET50 = ROOT / "models" / "resnet50_random.onnx"
SIZE = 224
LIMIT = 0.8


def photos(model: onnxviz.Model) -> list[np.ndarray]:
    """astronaut and chelsea at 224 × 224, prepared as the model reads them (float32, no batch)."""
    pictures = [cv2.resize(p, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for p in (data.astronaut(), data.chelsea())]
    return [model.prepare(p)[0][0] for p in pictures]


def timed_faithfulness(model: onnxviz.Model, images: list[np.ndarray], steps: int, batch: int) -> float:
    started = time.perf_counter()
    model.faithfulness(images, method=["random"], steps=steps, batch_size=batch)
    return time.perf_counter() - started


def timed_plain(session: ort.InferenceSession, inputs: np.ndarray, batch: int) -> float:
    name = session.get_inputs()[0].name
    started = time.perf_counter()
    for start in range(0, len(inputs), batch):
        session.run(None, {name: inputs[start : start + batch]})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=RESNET50)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    model = onnxviz.load(args.model, device="cpu")
    images = photos(model)
    count = len(images) * (args.steps + 1)
    rng = np.random.default_rng(0)
    inputs = (np.stack(images)[rng.integers(0, len(images), count)] * rng.random((count, 1, 1, 1))).astype(np.float32)
    session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    rows: dict[str, list[float]] = {"onnxviz faithfulness": [], "ort plain forwards": []}
    for round_ in range(args.rounds + 1):
        a = timed_faithfulness(model, images, args.steps, args.batch)
        b = timed_plain(session, inputs, args.batch)
        if round_ == 0:
            continue  # the warm-up: sessions built, memory touched
        rows["onnxviz faithfulness"].append(a)
        rows["ort plain forwards"].append(b)
        print(f"round {round_}: faithfulness {a:.2f} s, plain {b:.2f} s, throughput ratio {b / a:.3f}", flush=True)
    print(f"\n{count} inputs per row (2 images × {args.steps + 1} steps), batch {args.batch}\n")
    print("| row | median s | inputs/s |\n| --- | ---: | ---: |")
    for name, seconds in rows.items():
        median = statistics.median(seconds)
        print(f"| {name} | {median:.2f} | {count / median:.1f} |")
    ratios = [b / a for a, b in zip(rows["onnxviz faithfulness"], rows["ort plain forwards"], strict=True)]
    ratio = statistics.median(ratios)
    verdict = "met" if ratio >= LIMIT else "**missed**"
    print(f"\nthroughput onnxviz / plain (median per round): {ratio:.3f} (target ≥ {LIMIT}: {verdict})")


if __name__ == "__main__":
    main()
