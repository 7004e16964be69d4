"""Incremental occlusion beside captum's Occlusion, on the same networks, in one interleaved run.

    python benchmarks/bench_occlusion_captum.py [--rounds 3] [--batch 16] [--cases vgg16:16 vgg16:8 resnet50:16]

Networks: torchvision's VGG16 and ResNet-50 with seeded random weights (``torch.manual_seed(0)``,
nothing downloaded), exported once by the TorchScript exporter (opset 17) to benchmarks/out/, so
onnxviz runs the ONNX file and captum the very torch module it came from. Input: scikit-image's
chelsea at 224x224 with the ImageNet preprocessing; patch 32 filled with 0 in preprocessed space
(captum's ``baselines=0``); the score is the softmax probability of the unoccluded top-1 class.

Rows, alternating in every round (onnxviz, captum, onnxviz, captum…), each a whole call:

  onnxviz    ``Model.occlude(..., incremental=True)``: the cached forward, the per-layer sessions
             and the sweep (the per-layer sessions are built in every call)
  captum     ``Occlusion(f).attribute(x, sliding_window_shapes=(3, 32, 32), strides=(3, s, s),
             baselines=0, target=top-1, perturbations_per_eval=batch)`` under ``torch.no_grad()``,
             with ``f`` = softmax of the network's logits

Both on 2 threads (``torch.set_num_threads(2)``, onnxruntime ``intra_op_num_threads = 2``).
Check: ``f`` records every batch captum evaluates; after the unoccluded call come the positions
(the row shift varying fastest), so captum's own per-position probabilities are compared with onnxviz's
scores (max |Δ|), and captum's per-pixel attribution with the one rebuilt from onnxviz's scores
(each pixel: the mean over the windows covering it of unoccluded − occluded probability).
captum, torch and torchvision are dev-only tools.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import onnxviz
from onnxviz.runtime import sessions

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
THREADS = 2
PATCH = 32


def export(arch: str, folder: Path):
    """(torch module, ONNX path) of torchvision's ``arch`` with seeded random weights."""
    import torch
    import torchvision

    torch.manual_seed(0)
    module = getattr(torchvision.models, arch)(weights=None).eval()
    path = folder / f"{arch}_224_seed0.onnx"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            torch.onnx.export(
                module,
                (torch.randn(1, 3, 224, 224),),
                str(path),
                input_names=["input"],
                output_names=["logits"],
                opset_version=17,
                dynamo=False,
            )
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module, path


def two_threads() -> None:
    """Every onnxruntime session onnxviz makes from here on runs on ``THREADS`` intra-op threads."""
    plain = sessions.session_options

    def limited(custom_ops: tuple[str, ...] = ()):
        options = plain(custom_ops)
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        return options

    sessions.session_options = limited


class RecordingForward:
    """softmax(logits) for captum, keeping the target's probability of every batch it evaluates."""

    def __init__(self, module, target: int) -> None:
        self.module, self.target, self.batches = module, target, []

    def __call__(self, batch):
        import torch

        probabilities = torch.softmax(self.module(batch), dim=1)
        self.batches.append(probabilities[:, self.target].numpy().copy())
        return probabilities


def rebuilt_attribution(scores: np.ndarray, baseline: float, stride: int, size: int) -> np.ndarray:
    """captum's per-pixel map from per-position scores: mean drop over the windows covering a pixel."""
    total = np.zeros((size, size))
    count = np.zeros((size, size))
    for (row, col), score in np.ndenumerate(scores):
        window = np.s_[row * stride : row * stride + PATCH, col * stride : col * stride + PATCH]
        total[window] += baseline - score
        count[window] += 1
    return total / np.maximum(count, 1)


def case_rows(arch: str, stride: int, batch: int, cache: dict) -> tuple[dict, dict]:
    """The two timed calls of one (network, stride) and a check that their scores agree."""
    import skimage.data
    import torch
    from captum.attr import Occlusion

    if arch not in cache:
        module, path = export(arch, OUT)
        model = onnxviz.load(path, device="cpu", preset="imagenet")
        x = model.prepare(skimage.data.chelsea())[0]
        cache[arch] = (module, model, x)
    module, model, x = cache[arch]
    target = int(module(torch.from_numpy(x)).argmax())
    forward = RecordingForward(module, target)
    occlusion = Occlusion(forward)

    def onnxviz_row():
        return model.occlude(x, PATCH, stride, fill="zero", target_class=target, batch_size=batch, incremental=True)

    def captum_row():
        forward.batches.clear()
        with torch.no_grad():
            return occlusion.attribute(
                torch.from_numpy(x),
                sliding_window_shapes=(3, PATCH, PATCH),
                strides=(3, stride, stride),
                baselines=0,
                target=target,
                perturbations_per_eval=batch,
            )

    fast = onnxviz_row()
    attribution = captum_row()[0].numpy()
    # captum numbers its windows with the row shift varying fastest: column-major positions.
    captum_scores = np.concatenate(forward.batches[1:]).reshape(fast.scores.shape[::-1]).T
    rebuilt = rebuilt_attribution(fast.scores, fast.baseline, stride, x.shape[2])
    check = {
        "target": target,
        "engaged": fast.incremental,
        "max_abs_score_difference": float(np.abs(fast.scores - captum_scores).max()),
        "max_abs_attribution_difference": float(np.abs(rebuilt[None] - attribution).max()),
        "max_abs_score": float(np.abs(captum_scores).max()),
    }
    return {"onnxviz": onnxviz_row, "captum": captum_row}, check


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--cases", nargs="+", default=["vgg16:16", "vgg16:8", "resnet50:16"])
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(THREADS)
    two_threads()
    cache: dict = {}
    cases = [(arch, int(stride)) for arch, stride in (case.split(":") for case in args.cases)]
    rows, checks = {}, {}
    for arch, stride in cases:
        rows[arch, stride], checks[arch, stride] = case_rows(arch, stride, args.batch, cache)
        print(f"{arch} stride {stride}: {checks[arch, stride]}", flush=True)
    times: dict[tuple, dict[str, list[float]]] = {case: {"onnxviz": [], "captum": []} for case in cases}
    for round_index in range(args.rounds):
        for case in cases:
            for name, fn in rows[case].items():
                times[case][name].append(timed(fn))
            print(f"round {round_index + 1} {case}: " + ", ".join(f"{n} {v[-1]:.1f} s" for n, v in times[case].items()))
    report(cases, times, checks, args)
    return 0


def report(cases, times, checks, args) -> None:
    print(f"\npatch {PATCH}, batch {args.batch}, {args.rounds} rounds, {THREADS} threads each")
    print(
        f"{'network':10s} {'stride':>6s} {'positions':>9s} {'onnxviz s':>9s} {'captum s':>9s} {'ratio':>6s} "
        f"{'max|Δp|':>8s}"
    )
    summary = []
    for arch, stride in cases:
        positions = ((224 - PATCH) // stride + 1) ** 2
        ours, theirs = times[arch, stride]["onnxviz"], times[arch, stride]["captum"]
        ratio = statistics.median(c / o for o, c in zip(ours, theirs, strict=True))
        check = checks[arch, stride]
        print(
            f"{arch:10s} {stride:6d} {positions:9d} {statistics.median(ours):9.2f} {statistics.median(theirs):9.2f} "
            f"{ratio:5.2f}x {check['max_abs_score_difference']:8.1e}"
        )
        summary.append(
            {
                "network": arch,
                "stride": stride,
                "positions": positions,
                "onnxviz_s": ours,
                "captum_s": theirs,
                "median_ratio": ratio,
                **check,
            }
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "occlusion_captum.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    sys.exit(main())
