"""Time `project` on a VGG16-sized model at 224x224 on the CPU, beside a PyTorch reference.

    python benchmarks/bench_project.py [--model models/vgg16_hed.onnx] [--rounds 5] [--node conv13]

Measured, each round in the same interleaved order (this machine's speed swings by up to 2x
from minute to minute, so every comparison is a median of per-round ratios):

  ort forward (plain)        the forward graph cut at the layer, no switches
  ort forward (+switches)    the same with every MaxPool emitting its indices
  ort project 1 channel      forward + inverse, K=1
  ort project 64 batched     forward + one inverse run of batch 64
  ort project 64 single      64 x (forward + inverse, K=1)
  torch forward              PyTorch eager, to the same layer
  torch deconvnet 1 / 64     autograd with ReLU backward hooks (scripts/torch_deconvnet.py)

torch is a dev-only tool: `pip install torch==2.13.0`. Without it the torch rows are skipped.
The model is built by `python scripts/build_vgg16.py` (trained HED weights) or
`python scripts/build_vgg16.py --random` (same architecture, random weights: same speed).
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import onnxviz
from onnxviz.passes.rewrite import forward_model
from onnxviz.runtime.sessions import create_session

ROOT = Path(__file__).resolve().parents[1]


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def load_torch_reference():
    """scripts/torch_deconvnet.py as a module, or None without torch."""
    if importlib.util.find_spec("torch") is None:
        return None
    spec = importlib.util.spec_from_file_location("torch_deconvnet", ROOT / "scripts" / "torch_deconvnet.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["torch_deconvnet"] = module
    spec.loader.exec_module(module)
    return module


def photo() -> np.ndarray:
    import skimage.data

    return skimage.data.chelsea()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--node", default="conv13")
    parser.add_argument("--rounds", type=int, default=15, help="rounds for the fast rows")
    parser.add_argument("--slow-rounds", type=int, default=3, help="rounds for the 64-channel rows")
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--skip-single", action="store_true", help="skip the 64 single-run row (slow)")
    args = parser.parse_args(argv)
    path = args.model or next(
        (p for p in (ROOT / "models" / "vgg16_hed.onnx", ROOT / "models" / "vgg16_random.onnx") if p.exists()), None
    )
    if path is None:
        print("no VGG16 model: run `python scripts/build_vgg16.py` (or --random) first")
        return 1

    model = onnxviz.load(path, device="cpu", preset="caffe")
    x, _, shape = model.prepare(photo())
    layer = model.resolve(args.node)
    projector = model.projector(layer.tensor, "deconvnet", shape)
    plain = create_session(
        forward_model(model.graph, [layer.tensor], {}, model.graph.shapes(shape)), model.device, "plain forward"
    )
    name = model.graph.input_name
    activation = projector.forward(x, name)[layer.tensor].numpy()
    strengths = activation[0].reshape(activation.shape[1], -1).max(axis=1)
    top = np.argsort(-strengths)[: args.channels].astype(np.int64)

    def ort_project(channels: np.ndarray) -> np.ndarray:
        forward = projector.forward(x, name)
        return projector.invert(forward[layer.tensor].numpy(), channels, forward)

    rows: dict[str, Callable[[], object]] = {
        "ort forward (plain)": lambda: plain.run(None, {name: x}),
        "ort forward (+switches)": lambda: projector.forward(x, name),
        "ort project 1 channel": lambda: ort_project(top[:1]),
        f"ort project {args.channels} batched": lambda: ort_project(top),
    }
    if not args.skip_single:
        rows[f"ort project {args.channels} single"] = lambda: [ort_project(top[i : i + 1]) for i in range(len(top))]

    reference = load_torch_reference()
    if reference is not None:
        import torch

        torch.set_num_threads(max(1, len(__import__("os").sched_getaffinity(0))))
        net = reference.onnx_to_torch(path)
        torch_layer = layer.tensor
        sub = net.upto(torch_layer)
        xt = torch.from_numpy(x)

        def torch_forward() -> None:
            with torch.no_grad():
                sub(xt)

        rows["torch forward"] = torch_forward
        rows["torch deconvnet 1 channel"] = lambda: reference.project(net, x, torch_layer, [int(top[0])])
        rows[f"torch deconvnet {args.channels} batched"] = lambda: reference.project(
            net, x, torch_layer, [int(c) for c in top], batching="expand"
        )
        ours = ort_project(top[:4])
        theirs = reference.project(net, x, torch_layer, [int(c) for c in top[:4]])
        error = float(np.abs(ours - theirs).max() / np.abs(theirs).max())
        print(f"onnxviz vs torch projections (4 channels): max relative difference {error:.2e}")

    times: dict[str, list[float]] = {key: [] for key in rows}
    for fn in rows.values():  # warm-up
        fn()
    slow = {key for key in rows if str(args.channels) in key}
    for round_index in range(args.rounds):
        for key, fn in rows.items():
            if key not in slow or round_index < args.slow_rounds:
                times[key].append(timed(fn))

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))

    print(
        f"\nmodel {path.name}, node {args.node} ({layer.tensor}), input {shape}, {args.rounds} rounds, "
        f"{platform.processor() or platform.machine()}, onnxruntime CPU"
    )
    print(f"{'row':32s} {'median ms':>10s} {'min ms':>10s}")
    for key, values in times.items():
        print(f"{key:32s} {statistics.median(values) * 1e3:10.1f} {min(values) * 1e3:10.1f}")
    k = args.channels
    print("\nmedian per-round ratios")
    print(
        f"  switches overhead: forward(+switches) / forward(plain) = "
        f"{ratio('ort forward (+switches)', 'ort forward (plain)'):.3f}"
    )
    if not args.skip_single:
        print(f"  {k} batched / {k} single = {ratio(f'ort project {k} batched', f'ort project {k} single'):.3f}")
    if reference is not None:
        print(f"  forward: ort / torch = {ratio('ort forward (+switches)', 'torch forward'):.3f}")
        print(f"  1 channel: onnxviz / torch = {ratio('ort project 1 channel', 'torch deconvnet 1 channel'):.3f}")
        print(
            f"  {k} channels: onnxviz / torch = {ratio(f'ort project {k} batched', f'torch deconvnet {k} batched'):.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
