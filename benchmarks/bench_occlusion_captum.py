"""Incremental occlusion beside captum's Occlusion, on the same networks, in one interleaved run.

    python benchmarks/bench_occlusion_captum.py [--rounds 3] [--batch 16] [--cases vgg16:16 vgg16:8 resnet50:16]

Networks: torchvision's VGG16 and ResNet-50 with seeded random weights (``torch.manual_seed(0)``,
nothing downloaded), exported once by the TorchScript exporter (opset 17) to benchmarks/out/, so
onnxviz runs the ONNX file and captum the very torch module it came from. Input: scikit-image's
chelsea at 224x224 with the ImageNet preprocessing; patch 32 filled with 0 in preprocessed space
(captum's ``baselines=0``); the score is the softmax probability of the unoccluded top-1 class.

Rows, alternating in every round (onnxviz, captum, onnxviz, captum…), each a whole call; the
ratio is the median over rounds of captum's time / onnxviz's time in the same round:

  onnxviz    ``Model.occlude(..., incremental=True)`` on a warm model (its sessions were built
             by one call before the rounds, as in a notebook): the target's forward, the cached
             unoccluded maps of the image, and the sweep
  captum     ``Occlusion(f).attribute(x, sliding_window_shapes=(3, 32, 32), strides=(3, s, s),
             baselines=0, target=top-1, perturbations_per_eval=batch)`` under ``torch.no_grad()``,
             with ``f`` = softmax of the network's logits

Both on 2 threads (``torch.set_num_threads(2)``, onnxruntime ``intra_op_num_threads = 2``).
Check, on round 1's results: ``f`` records the target's logit and probability for every batch
captum evaluates (after the unoccluded call come the positions, the row shift varying fastest),
so captum's own per-position probabilities are compared with onnxviz's scores (max |Δ|); one more
onnxviz call scores the logits tensor itself (``node`` = the last Gemm, ``channel`` = the target)
and is compared with captum's logits; and captum's per-pixel attribution is compared with the one
rebuilt from onnxviz's scores (each pixel: the mean over the windows covering it of unoccluded −
occluded probability).
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
from onnxviz.targets.tensors import ChannelTarget

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
    """softmax(logits) for captum, keeping the target's logit and probability for every batch it evaluates."""

    def __init__(self, module, target: int) -> None:
        self.module, self.target = module, target
        self.logits: list[np.ndarray] = []
        self.probabilities: list[np.ndarray] = []

    def __call__(self, batch):
        import torch

        logits = self.module(batch)
        probabilities = torch.softmax(logits, dim=1)
        self.logits.append(logits[:, self.target].numpy().copy())
        self.probabilities.append(probabilities[:, self.target].numpy().copy())
        return probabilities

    def per_position(self, values: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
        """The values of the occluded batches as a (rows, cols) map: after the unoccluded call,
        captum numbers its windows with the row shift varying fastest (column-major positions)."""
        return np.concatenate(values[1:]).reshape(shape[::-1]).T


def rebuilt_attribution(scores: np.ndarray, baseline: float, stride: int, size: int) -> np.ndarray:
    """captum's per-pixel map from per-position scores: mean drop over the windows covering a pixel."""
    total = np.zeros((size, size))
    count = np.zeros((size, size))
    for (row, col), score in np.ndenumerate(scores):
        window = np.s_[row * stride : row * stride + PATCH, col * stride : col * stride + PATCH]
        total[window] += baseline - score
        count[window] += 1
    return total / np.maximum(count, 1)


class Case:
    """One (network, stride): the two timed calls, the results of the latest, and their comparison."""

    def __init__(self, arch: str, stride: int, batch: int, networks: dict) -> None:
        import skimage.data
        import torch

        if arch not in networks:
            module, path = export(arch, OUT)
            model = onnxviz.load(path, device="cpu", preset="imagenet")
            networks[arch] = (module, model, model.prepare(skimage.data.chelsea())[0])
        self.module, self.model, self.x = networks[arch]
        self.arch, self.stride, self.batch = arch, stride, batch
        with torch.no_grad():
            self.target = int(self.module(torch.from_numpy(self.x)).argmax())
        self.forward = RecordingForward(self.module, self.target)
        self.results: dict[str, object] = {}

    def onnxviz(self) -> None:
        self.results["onnxviz"] = self.model.occlude(
            self.x,
            patch=PATCH,
            stride=self.stride,
            fill="zero",
            target=self.target,
            batch_size=self.batch,
            incremental=True,
        )

    def captum(self) -> None:
        import torch
        from captum.attr import Occlusion

        self.forward.logits.clear()
        self.forward.probabilities.clear()
        with torch.no_grad():
            self.results["captum"] = Occlusion(self.forward).attribute(
                torch.from_numpy(self.x),
                sliding_window_shapes=(3, PATCH, PATCH),
                strides=(3, self.stride, self.stride),
                baselines=0,
                target=self.target,
                perturbations_per_eval=self.batch,
            )

    def check(self) -> dict:
        """Differences between the latest results: probabilities per position, captum's per-pixel
        map, and (one more onnxviz call scoring the logits tensor) logits per position."""
        fast = self.results["onnxviz"]
        shape = fast.scores.shape
        probabilities = self.forward.per_position(self.forward.probabilities, shape)
        logits = self.forward.per_position(self.forward.logits, shape)
        layer = self.model.resolve(self.model.graph.output_names[0]).alias
        ours = self.model.occlude(
            self.x,
            patch=PATCH,
            stride=self.stride,
            fill="zero",
            target=ChannelTarget(layer, self.target),
            batch_size=self.batch,
        )
        attribution = self.results["captum"][0].numpy()
        rebuilt = rebuilt_attribution(fast.scores, fast.baseline, self.stride, self.x.shape[2])
        return {
            "target": self.target,
            "incremental": bool(fast.incremental and ours.incremental),
            "max_abs_probability_difference": float(np.abs(fast.scores - probabilities).max()),
            "max_probability": float(probabilities.max()),
            "max_abs_attribution_difference": float(np.abs(rebuilt[None] - attribution).max()),
            "max_abs_attribution": float(np.abs(attribution).max()),
            "max_abs_logit_difference": float(np.abs(ours.scores - logits).max()),
            "max_abs_logit": float(np.abs(logits).max()),
        }


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
    networks: dict = {}
    cases = [Case(arch, int(stride), args.batch, networks) for arch, stride in (c.split(":") for c in args.cases)]
    for case in cases:
        case.model.occlude(case.x, patch=PATCH, stride=case.stride, batch_size=args.batch)  # warm: sessions built once
    times = {(c.arch, c.stride): {"onnxviz": [], "captum": []} for c in cases}
    checks = {}
    for round_index in range(args.rounds):
        for case in cases:
            row = times[case.arch, case.stride]
            row["onnxviz"].append(timed(case.onnxviz))
            row["captum"].append(timed(case.captum))
            print(
                f"round {round_index + 1} {case.arch} stride {case.stride}: onnxviz {row['onnxviz'][-1]:.1f} s, "
                f"captum {row['captum'][-1]:.1f} s",
                flush=True,
            )
            if round_index == 0:
                checks[case.arch, case.stride] = case.check()
                print(f"  check: {checks[case.arch, case.stride]}", flush=True)
    report([(c.arch, c.stride) for c in cases], times, checks, args)
    return 0


def report(cases, times, checks, args) -> None:
    print(f"\npatch {PATCH}, batch {args.batch}, {args.rounds} rounds, {THREADS} threads each")
    print("network   stride positions onnxviz s captum s  ratio  max|Δp|  max|Δlogit| max|Δattr|")
    summary = []
    for arch, stride in cases:
        positions = ((224 - PATCH) // stride + 1) ** 2
        ours, theirs = times[arch, stride]["onnxviz"], times[arch, stride]["captum"]
        ratio = statistics.median(c / o for o, c in zip(ours, theirs, strict=True))
        check = checks[arch, stride]
        print(
            f"{arch:9s} {stride:6d} {positions:9d} {statistics.median(ours):9.2f} {statistics.median(theirs):8.2f} "
            f"{ratio:5.2f}x {check['max_abs_probability_difference']:8.1e} {check['max_abs_logit_difference']:11.1e} "
            f"{check['max_abs_attribution_difference']:10.1e}"
        )
        summary.append(
            {"network": arch, "stride": stride, "positions": positions, "onnxviz_s": ours, "captum_s": theirs}
            | {"median_ratio": ratio, **check}
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "occlusion_captum.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    sys.exit(main())
