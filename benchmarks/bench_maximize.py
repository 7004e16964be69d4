"""Activation maximisation speed: onnxviz's steps against a PyTorch loop doing the same.

    python scripts/build_vgg16.py --random     # models/vgg16_random.onnx (or the trained HED one)
    python benchmarks/bench_maximize.py [--model models/vgg16_random.onnx] [--rounds 5] [--steps 4]

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

Also checks that the two compute the same thing: one step's input gradient from onnxviz and from
torch autograd at the same start images (max relative difference printed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import onnxviz
from onnxviz.analyses.maximize import objective_gradient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from torch_deconvnet import onnx_to_torch  # noqa: E402

CHANNELS = [0, 17, 60, 101, 200, 300, 411, 500]


def onnxviz_steps(model: onnxviz.Model, steps: int) -> float:
    """Seconds per step of ``maximize`` with the benchmark's settings."""
    started = time.perf_counter()
    model.maximize("relu4_3", CHANNELS, param="pixel", steps=steps, jitter=0, zoom=(1.0, 1.0), rotate=0.0, lr=0.05)
    return (time.perf_counter() - started) / steps


def torch_steps(network: torch.nn.Module, start: np.ndarray, steps: int) -> float:
    x = torch.from_numpy(start.copy()).requires_grad_(True)
    optimiser = torch.optim.Adam([x], lr=0.05)
    index = torch.arange(len(CHANNELS))
    chosen = torch.tensor(CHANNELS)
    started = time.perf_counter()
    for _ in range(steps):
        optimiser.zero_grad()
        activation = network(x)
        objective = activation[index, chosen].mean(dim=(1, 2)).sum()
        (-objective).backward()  # ascent
        optimiser.step()
    return (time.perf_counter() - started) / steps


def gradient_agreement(model: onnxviz.Model, network: torch.nn.Module, start: np.ndarray) -> float:
    _, ours = objective_gradient(model, "relu4_3", start, CHANNELS, param="pixel")
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
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args(argv)
    if not args.model.exists():
        print(f"{args.model} is missing: python scripts/build_vgg16.py --random", file=sys.stderr)
        return 2
    torch.set_num_threads(os.cpu_count() or 1)
    model = onnxviz.load(args.model, device="cpu", preset="caffe")
    network = onnx_to_torch(args.model).upto("conv4_3")  # maximize reads a rectified map before its ReLU
    start = np.random.default_rng(0).standard_normal((len(CHANNELS), 3, 224, 224)).astype(np.float32)
    agreement = gradient_agreement(model, network, start)
    print(f"one step's gradient, onnxviz vs torch autograd: relative L2 difference {agreement:.2e}")
    ours, theirs = [], []
    for round_ in range(args.rounds + 1):
        a = onnxviz_steps(model, args.steps)
        b = torch_steps(network, start, args.steps)
        print(f"round {round_}: onnxviz {1 / a:.3f} steps/s, torch {1 / b:.3f} steps/s, ratio {b / a:.2f}")
        if round_ > 0:
            ours.append(a)
            theirs.append(b)
    ratios = [t / o for o, t in zip(ours, theirs, strict=True)]
    print(
        f"median: onnxviz {1 / statistics.median(ours):.3f} steps/s, torch {1 / statistics.median(theirs):.3f} "
        f"steps/s; median ratio onnxviz/torch {statistics.median(ratios):.2f} (K={len(CHANNELS)}, 224x224, relu4_3)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
