"""Maximisation steps on the CPU: the numpy loop against the step as chained graphs.

    python scripts/build_vgg16.py --random     # models/vgg16_random.onnx
    python benchmarks/bench_maximize_chained.py [--rounds 5] [--steps 8] [--vgg-steps 2]

Both paths run the defaults (fft, decorrelated, jitter/zoom/rotate) on the same problem: the demo
model (conv3, K = 8) and VGG16 at 224 (relu4_3, K = 8, caffe preprocessing). The gradient engine
is built and run once before timing, so both paths time steps on a warm engine; the chained path's
time includes building its three small sessions, which it does once per run. The runs are
interleaved (numpy, chained, numpy, …) and the ratio is the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import onnxviz
from onnxviz.analyses.maximize.analysis import _ascend, problem, start_image
from onnxviz.analyses.maximize.device import ascend_chained
from onnxviz.analyses.maximize.options import MaximizeOptions

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = [0, 17, 60, 101, 200, 300, 411, 500]


def timed_run(posed, settings: MaximizeOptions, chained: bool) -> tuple[float, np.ndarray]:
    """Seconds per step of one seeded run, and its final image."""
    rng = np.random.default_rng(settings.seed)
    image = start_image(posed, settings, rng)  # the defaults: fft
    started = time.perf_counter()
    if chained:
        final, _ = ascend_chained(posed, image, settings, rng)
    else:
        _ascend(posed, image, settings, rng, None)
        final = image.image()
    return (time.perf_counter() - started) / settings.steps, final


def compare(label: str, model: onnxviz.Model, node: str, channels: list[int], steps: int, rounds: int) -> None:
    settings = MaximizeOptions(node=node, channels=channels, steps=steps)
    posed = problem(model, settings)
    posed.engine.value(np.zeros((len(channels), *model.input_shape()[1:]), np.float32))  # warm
    timed_run(posed, replace(settings, steps=1), chained=True)  # warm: the small graphs' first runs
    ratios, numpy_times, chained_times = [], [], []
    for round_ in range(rounds):
        numpy_time, numpy_final = timed_run(posed, settings, chained=False)
        chained_time, chained_final = timed_run(posed, settings, chained=True)
        ratios.append(numpy_time / chained_time)
        numpy_times.append(numpy_time)
        chained_times.append(chained_time)
        difference = float(np.abs(numpy_final - chained_final).max())
        print(
            f"{label} round {round_}: numpy {1 / numpy_time:.2f} steps/s, chained {1 / chained_time:.2f} steps/s, "
            f"ratio {numpy_time / chained_time:.3f}; final images differ by ≤ {difference:.2g}"
        )
    print(
        f"{label}: median numpy {1 / statistics.median(numpy_times):.2f} steps/s, chained "
        f"{1 / statistics.median(chained_times):.2f} steps/s; median per-round speed-up chained/numpy "
        f"{statistics.median(ratios):.3f} ({rounds} rounds of {steps} steps)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vgg16", type=Path, default=ROOT / "models" / "vgg16_random.onnx")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8, help="steps per run on the demo model")
    parser.add_argument("--vgg-steps", type=int, default=2, help="steps per run on VGG16")
    args = parser.parse_args(argv)
    demo = onnxviz.load(ROOT / "models" / "demo.onnx", device="cpu")
    compare("demo conv3 K=8", demo, "conv3", list(range(8)), args.steps, args.rounds)
    if not args.vgg16.exists():
        print(f"{args.vgg16} is missing: python scripts/build_vgg16.py --random", file=sys.stderr)
        return 2
    vgg16 = onnxviz.load(args.vgg16, device="cpu", preset="caffe")
    compare("VGG16 224 relu4_3 K=8", vgg16, "relu4_3", CHANNELS, args.vgg_steps, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
