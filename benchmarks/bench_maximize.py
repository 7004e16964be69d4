"""Activation maximisation speed: onnxviz's steps against a PyTorch loop doing the same.

    python scripts/build_vgg16.py --random     # models/vgg16_random.onnx (or the trained HED one)
    python benchmarks/bench_maximize.py [--model models/vgg16_random.onnx] [--rounds 5] [--steps 6]

Both sides do the issue's workload: VGG16 at 224, layer relu4_3, K = 8 channels as one batch,
objective the mean of each channel's map before the ReLU (conv4_3's output, which is what
``maximize`` optimises for a rectified map), pixel parameterisation,
Adam (lr 0.05), no transforms and no regularisers. onnxviz runs one forward and one inverse
(``saliency``) onnxruntime run per step and Adam in numpy; torch runs the same network (rebuilt
from the ONNX weights by ``scripts/torch_deconvnet.py``) forward to conv4_3, autograd backward
and ``torch.optim.Adam``. Threads: both use the machine's cores (``torch.set_num_threads``,
onnxruntime's default intra-op pool). The runs are interleaved (onnxviz, torch, onnxviz, …) and
the ratio of steps/s is quoted as the median over rounds; the first round of each warms up
(sessions built, graphs cached) and is dropped.

Two measures per round and side. *Throughput*: the seconds between the end of step 1 and the end
of step N (onnxviz's step times come from its progress callback), i.e. steady-state steps, what a
256-step run is made of. *Whole call*: the call from start to result divided by N, which on
onnxviz's side also holds the per-call set-up (the objective's seeds, the engine looked up) and
the final forward run that measures the last image's objective; at N = 256 that costs under 0.5 %
of a run, at the few steps a benchmark can afford it is most of the gap.

Also checks that the two compute the same thing: one step's input gradient from onnxviz and from
torch autograd at the same start images (max relative difference printed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import onnxviz
from onnxviz.analyses.maximize.analysis import objective_gradient
from onnxviz.analyses.maximize.options import MaximizeOptions

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from torch_deconvnet import onnx_to_torch  # noqa: E402

CHANNELS = [0, 17, 60, 101, 200, 300, 411, 500]


@dataclass(frozen=True)
class Timing:
    """One side's round: seconds per steady-state step (steps 2 … N) and per step of the whole call."""

    step: float
    call: float


def onnxviz_steps(model: onnxviz.Model, steps: int) -> Timing:
    ends: list[float] = []
    started = time.perf_counter()
    model.maximize(
        node="relu4_3",
        channels=CHANNELS,
        param="pixel",
        steps=steps,
        jitter=0,
        zoom=(1.0, 1.0),
        rotate=0.0,
        lr=0.05,
        progress=lambda *_: ends.append(time.perf_counter()),
    )
    finished = time.perf_counter()
    return Timing((ends[-1] - ends[0]) / (steps - 1), (finished - started) / steps)


def torch_steps(network: torch.nn.Module, start: np.ndarray, steps: int) -> Timing:
    ends: list[float] = []
    started = time.perf_counter()
    x = torch.from_numpy(start.copy()).requires_grad_(True)
    optimiser = torch.optim.Adam([x], lr=0.05)
    index = torch.arange(len(CHANNELS))
    chosen = torch.tensor(CHANNELS)
    for _ in range(steps):
        optimiser.zero_grad()
        activation = network(x)
        objective = activation[index, chosen].mean(dim=(1, 2)).sum()
        (-objective).backward()  # ascent
        optimiser.step()
        ends.append(time.perf_counter())
    return Timing((ends[-1] - ends[0]) / (steps - 1), (ends[-1] - started) / steps)


def gradient_agreement(model: onnxviz.Model, network: torch.nn.Module, start: np.ndarray) -> float:
    options = MaximizeOptions(node="relu4_3", channels=CHANNELS, param="pixel", jitter=0, zoom=(1.0, 1.0), rotate=0.0)
    _, ours = objective_gradient(model, start, options)
    x = torch.from_numpy(start.copy()).requires_grad_(True)
    activation = network(x)
    activation[torch.arange(len(CHANNELS)), torch.tensor(CHANNELS)].mean(dim=(1, 2)).sum().backward()
    theirs = x.grad.numpy()
    # ‖Δ‖/‖g‖, not max |Δ|: a max-pool window whose two largest values lie within float32 round-off
    # of each other may route its gradient to either, in either library.
    return float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "vgg16_random.onnx")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2 (throughput is timed from step 1's end)")
    if not args.model.exists():
        print(f"{args.model} is missing: python scripts/build_vgg16.py --random", file=sys.stderr)
        return 2
    torch.set_num_threads(os.cpu_count() or 1)
    model = onnxviz.load(args.model, device="cpu", preset="caffe")
    network = onnx_to_torch(args.model).upto("conv4_3")  # maximize reads a rectified map before its ReLU
    start = np.random.default_rng(0).standard_normal((len(CHANNELS), 3, 224, 224)).astype(np.float32)
    agreement = gradient_agreement(model, network, start)
    print(f"one step's gradient, onnxviz vs torch autograd: relative L2 difference {agreement:.2e}")
    ours: list[Timing] = []
    theirs: list[Timing] = []
    for round_ in range(args.rounds + 1):
        a = onnxviz_steps(model, args.steps)
        b = torch_steps(network, start, args.steps)
        print(
            f"round {round_}: steps/s onnxviz {1 / a.step:.3f}, torch {1 / b.step:.3f} (ratio {b.step / a.step:.2f}); "
            f"whole call onnxviz {1 / a.call:.3f}, torch {1 / b.call:.3f} (ratio {b.call / a.call:.2f})"
        )
        if round_ > 0:
            ours.append(a)
            theirs.append(b)
    for measure in ("step", "call"):
        mine = [getattr(t, measure) for t in ours]
        other = [getattr(t, measure) for t in theirs]
        ratios = [o / m for m, o in zip(mine, other, strict=True)]
        print(
            f"{'throughput' if measure == 'step' else 'whole call'}: onnxviz {1 / statistics.median(mine):.3f} "
            f"steps/s, torch {1 / statistics.median(other):.3f} steps/s; median ratio onnxviz/torch "
            f"{statistics.median(ratios):.2f} (per round {', '.join(f'{r:.2f}' for r in ratios)}; "
            f"K={len(CHANNELS)}, 224x224, relu4_3, {args.steps} steps)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
