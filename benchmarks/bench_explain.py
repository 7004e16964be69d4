"""Explaining a target: onnxviz's cam and attribute against pytorch-grad-cam and captum, on CPU.

Rows (one image, 1×3×224×224, seeded normal noise; the target is onnxruntime's top-1 class, given
to both sides):

- ResNet-50 (``scripts/build_resnet50.py``): onnxviz gradcam at its default layer (layer4's
  output) vs pytorch-grad-cam's GradCAM at ``model.layer4`` vs one plain onnxruntime forward;
- ResNet-50: ig with 50 Gauss–Legendre steps, batch 50, vs captum's IntegratedGradients
  (``n_steps=50, method="gausslegendre", internal_batch_size=50``);
- ResNet-18 (``--depth 18``): scorecam on the last block (512 channels) vs pytorch-grad-cam's
  ScoreCAM, both at ``--scorecam-batch`` copies per run;
- peak RSS (VmHWM) of a fresh process running one onnxviz gradcam vs one running a plain forward.

The torch side runs in the reference venv (``--venv``, torch + torchvision + grad-cam + captum),
as a worker process that this script starts with ``--worker`` and asks for one timing at a time,
so the two sides alternate (A B A B …) with their models loaded once. The torch models are
torchvision's, loaded from the ``.pt`` state_dict the builder saves beside the ONNX file; torch
gets as many threads as onnxruntime uses. Before timing, each pair's maps are checked to agree
(max difference ≤ 1e-3 of the reference's largest value). Round 0 is a warm-up and is dropped;
the tables give medians and median per-round ratios.

Usage::

    python scripts/build_resnet50.py && python scripts/build_resnet50.py --depth 18
    /tmp/refvenv/bin/pip install captum
    python benchmarks/bench_explain.py                 # --rounds 5 --repeats 5 --threads 2 --venv /tmp/refvenv
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESNET50 = ROOT / "models" / "resnet50_random.onnx"
RESNET18 = ROOT / "models" / "resnet18_random.onnx"
SIZE = 224
IG_STEPS = 50
TOLERANCE = 1e-3
TARGETS = {  # ratio: (numerator row, denominator row, limit)
    "gradcam: onnxviz / pytorch-grad-cam": ("onnxviz gradcam", "pytorch-grad-cam GradCAM", 0.5),
    "gradcam: onnxviz / plain forward": ("onnxviz gradcam", "ort plain forward", 1.3),
    "ig: onnxviz / captum": ("onnxviz ig", "captum IntegratedGradients", 0.7),
    "scorecam: onnxviz / pytorch-grad-cam": ("onnxviz scorecam", "pytorch-grad-cam ScoreCAM", 0.7),
}


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM) so far, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


# --- torch side: runs in the reference venv ---------------------------------------------------


def torch_worker(args: argparse.Namespace) -> None:
    """Load both torchvision models and the three explainers, then answer requests on stdin: a
    row name, written back as ``{"ms": …}``, or ``check ROW`` which saves that row's map to the
    path given and answers ``{}``."""
    import torch
    import torchvision
    from captum.attr import IntegratedGradients
    from pytorch_grad_cam import GradCAM, ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.set_num_threads(args.threads)
    x = torch.from_numpy(np.load(args.input))
    models = {}
    for depth, onnx_path in ((50, args.resnet50), (18, args.resnet18)):
        model = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        model.load_state_dict(torch.load(onnx_path.with_suffix(".pt"), weights_only=True))
        models[depth] = model.eval()
    gradcam = GradCAM(models[50], target_layers=[models[50].layer4])
    scorecam = ScoreCAM(models[18], target_layers=[models[18].layer4])
    scorecam.batch_size = args.scorecam_batch
    in_float64 = copy.deepcopy(models[50]).double()

    def ig(model: torch.nn.Module, dtype: torch.dtype) -> np.ndarray:
        attribution = IntegratedGradients(model).attribute(
            x.to(dtype), target=args.target50, n_steps=IG_STEPS, method="gausslegendre", internal_batch_size=IG_STEPS
        )
        return attribution.detach().numpy()

    rows: dict[str, Callable[[], np.ndarray]] = {
        "pytorch-grad-cam GradCAM": lambda: gradcam(x, targets=[ClassifierOutputTarget(args.target50)]),
        "captum IntegratedGradients": lambda: ig(models[50], torch.float32),
        "captum IntegratedGradients float64": lambda: ig(in_float64, torch.float64),
        "pytorch-grad-cam ScoreCAM": lambda: scorecam(x, targets=[ClassifierOutputTarget(args.target18)]),
    }
    for line in sys.stdin:
        words = line.split()
        if words[0] == "check":
            np.save(words[1], rows[" ".join(words[2:])]())
            print("{}", flush=True)
            continue
        start = time.perf_counter()
        rows[" ".join(words)]()
        print(json.dumps({"ms": (time.perf_counter() - start) * 1e3}), flush=True)


# --- onnxviz side: the main environment ----------------------------------------------------------


class TorchSide:
    """The worker in the reference venv, asked for one row at a time."""

    def __init__(self, args: argparse.Namespace, input_path: Path) -> None:
        command = [str(args.venv / "bin" / "python"), __file__, "--worker", "--input", str(input_path)]
        command += ["--threads", str(args.threads), "--scorecam-batch", str(args.scorecam_batch)]
        command += ["--resnet50", str(args.resnet50), "--resnet18", str(args.resnet18)]
        command += ["--target50", str(args.target50), "--target18", str(args.target18)]
        environment = {**os.environ, "TQDM_DISABLE": "1"}
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment
        )

    def ask(self, request: str) -> dict:
        """Send one request line and read its JSON answer."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(request + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"the torch worker exited (status {self.process.wait()}) on {request!r}")
        return json.loads(answer)

    def close(self) -> None:
        """End the worker by closing its input."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


def onnxviz_rows(args: argparse.Namespace, x: np.ndarray) -> tuple[dict[str, Callable[[], np.ndarray]], str]:
    """The onnxviz rows and the plain forward, each returning its map, and gradcam's layer."""
    import onnxruntime as ort

    import onnxviz

    resnet50 = onnxviz.load(args.resnet50, device="cpu")
    resnet18 = onnxviz.load(args.resnet18, device="cpu")
    plain = ort.InferenceSession(str(args.resnet50), providers=["CPUExecutionProvider"])
    layer = resnet50.cam(x, method="gradcam", target=args.target50).layers[0]
    rows = {
        "ort plain forward": lambda: plain.run(None, {plain.get_inputs()[0].name: x[None]})[0],
        "onnxviz gradcam": lambda: resnet50.cam(x, method="gradcam", target=args.target50).heatmaps,
        "onnxviz ig": lambda: (
            resnet50.attribute(x, method="ig", steps=IG_STEPS, target=args.target50, batch_size=IG_STEPS).attribution
        ),
        "onnxviz scorecam": lambda: (
            resnet18.cam(x, method="scorecam", target=args.target18, batch_size=args.scorecam_batch).heatmaps
        ),
    }
    return rows, layer


def top1(path: Path, x: np.ndarray) -> int:
    """onnxruntime's top-1 class for the image: the target both sides explain."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return int(session.run(None, {session.get_inputs()[0].name: x[None]})[0].argmax())


def check_agreement(rows: dict, torch_side: TorchSide, scratch: Path) -> None:
    """Each onnxviz map against its torch reference: max |difference| ≤ 1e-3 of the reference's
    largest value. ig is held to float32 torch's own accuracy instead: on a deep ReLU net with
    random weights, captum in float32 is 3e-3 to 1e-2 of the max away from captum in float64
    (ReLUs near 0 flip between the 50 steps), so onnxviz's relative L2 distance from the float64
    attribution may be at most 1.5 times float32 captum's (and at most 1e-3 where that is less)."""

    def reference(row: str) -> np.ndarray:
        path = scratch / f"{row.replace(' ', '_')}.npy"
        torch_side.ask(f"check {path} {row}")
        return np.load(path)

    def distances(found: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
        found = found.reshape(expected.shape)
        return (
            float(np.abs(found - expected).max() / np.abs(expected).max()),
            float(np.linalg.norm(found - expected) / np.linalg.norm(expected)),
        )

    for name, ours, theirs in (
        ("gradcam", "onnxviz gradcam", "pytorch-grad-cam GradCAM"),
        ("scorecam", "onnxviz scorecam", "pytorch-grad-cam ScoreCAM"),
    ):
        worst, _ = distances(np.asarray(rows[ours]()), reference(theirs))
        print(f"agreement {name}: max difference {worst:.2e} of the max", flush=True)
        if worst > TOLERANCE:
            raise SystemExit(f"{name}: onnxviz and the torch reference differ by {worst:.2e} > {TOLERANCE}")
    exact = reference("captum IntegratedGradients float64")
    ours_worst, ours_l2 = distances(np.asarray(rows["onnxviz ig"]()), exact)
    captum_worst, captum_l2 = distances(reference("captum IntegratedGradients"), exact)
    print(
        f"agreement ig, from captum in float64: onnxviz max {ours_worst:.2e}, relative L2 {ours_l2:.2e}; "
        f"captum in float32 max {captum_worst:.2e}, relative L2 {captum_l2:.2e}",
        flush=True,
    )
    if ours_l2 > max(TOLERANCE, 1.5 * captum_l2):
        raise SystemExit(f"ig: onnxviz is {ours_l2:.2e} from float64 captum, float32 captum {captum_l2:.2e}")


def timed(run: Callable[[], object]) -> float:
    """Milliseconds of one call."""
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1e3


def interleave(rows: dict, torch_side: TorchSide, rounds: int, repeats: int) -> dict[str, list[float]]:
    """Every row once per round, onnxviz and torch rows alternating; round 0 dropped. The gradcam
    rows (tens of milliseconds, where one call's noise would decide the ratio) run ``repeats``
    times in a row within a round and count with their median: back-to-back calls of one row are
    what a user's loop does, while alternating single calls of two onnxruntime sessions measures
    how each one's worker threads, still spinning after its run, slow the other (plain forward:
    25.6 ms alternating with onnxviz's sessions that spin, 70.9 ms; onnxviz's now sleep). The row
    order is reversed every other round."""
    groups = [
        (("ort plain forward", "onnxviz gradcam", "pytorch-grad-cam GradCAM"), repeats),
        (("onnxviz ig", "captum IntegratedGradients"), 1),
        (("onnxviz scorecam", "pytorch-grad-cam ScoreCAM"), 1),
    ]
    times: dict[str, list[float]] = {row: [] for group, _ in groups for row in group}
    for round_index in range(rounds + 1):
        for group, count in groups:
            samples: dict[str, list[float]] = {row: [] for row in group}
            for row in group if round_index % 2 else reversed(group):
                for _ in range(count):
                    samples[row].append(timed(rows[row]) if row in rows else torch_side.ask(row)["ms"])
            for row, values in samples.items():
                if round_index:
                    times[row].append(statistics.median(values))
        latest = ", ".join(f"{row} {values[-1]:.0f}" for row, values in times.items()) if round_index else "warm-up"
        print(f"round {round_index}: {latest}", flush=True)
    return times


def rss_child(kind: str, path: Path, threads: int, target: int) -> None:
    """In a fresh process: VmHWM after the imports and after one gradcam or one plain forward."""
    import onnxruntime as ort

    if kind == "gradcam":
        import onnxviz
    imported = peak_rss_mib()
    x = np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    if kind == "gradcam":
        onnxviz.load(path, device="cpu").cam(x[0], method="gradcam", target=target)
    else:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        session.run(None, {session.get_inputs()[0].name: x})
    print(json.dumps({"imported": imported, "peak": peak_rss_mib()}))


def peak_rss(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """VmHWM of a fresh process per kind, the median of three, the kinds alternating."""
    samples: dict[str, list[dict[str, float]]] = {"forward": [], "gradcam": []}
    for _ in range(3):
        for kind in samples:
            command = [sys.executable, __file__, "--rss", kind, "--resnet50", str(args.resnet50)]
            command += ["--threads", str(args.threads), "--target50", str(args.target50)]
            output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout
            samples[kind].append(json.loads(output.splitlines()[-1]))
    return {
        kind: {key: statistics.median(s[key] for s in values) for key in ("imported", "peak")}
        for kind, values in samples.items()
    }


def report(times: dict[str, list[float]], rss: dict[str, dict[str, float]], layer: str) -> None:
    """Markdown tables: medians per row, median per-round ratios against the issue's targets."""
    print(f"\ngradcam layer: {layer}\n\n| row | median ms | min ms |\n| --- | ---: | ---: |")
    for row, values in times.items():
        print(f"| {row} | {statistics.median(values):.1f} | {min(values):.1f} |")
    print("\n| ratio (median per round) | value | target | |\n| --- | ---: | ---: | --- |")
    for name, (numerator, denominator, limit) in TARGETS.items():
        ratio = statistics.median(a / b for a, b in zip(times[numerator], times[denominator], strict=True))
        print(f"| {name} | {ratio:.2f} | ≤ {limit} | {'met' if ratio <= limit else 'missed'} |")
    memory = rss["gradcam"]["peak"] / rss["forward"]["peak"]
    print(f"| peak RSS: gradcam / plain forward | {memory:.2f} | ≤ 1.5 | {'met' if memory <= 1.5 else 'missed'} |")
    print("\n| process | VmHWM after imports MiB | VmHWM at the end MiB |\n| --- | ---: | ---: |")
    for kind, values in rss.items():
        print(f"| {kind} | {values['imported']:.0f} | {values['peak']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds after the warm-up round (default 5)")
    parser.add_argument("--repeats", type=int, default=5, help="gradcam rows' calls per round (default 5)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch and onnxruntime threads")
    parser.add_argument("--scorecam-batch", type=int, default=16, help="copies per run, both sides (default 16)")
    parser.add_argument("--venv", type=Path, default=Path("/tmp/refvenv"), help="torch, grad-cam, captum")
    parser.add_argument("--resnet50", type=Path, default=RESNET50)
    parser.add_argument("--resnet18", type=Path, default=RESNET18)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rss", choices=("forward", "gradcam"), help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--target50", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--target18", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return torch_worker(args)
    if args.rss:
        return rss_child(args.rss, args.resnet50, args.threads, args.target50)
    x = np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    args.target50, args.target18 = top1(args.resnet50, x[0]), top1(args.resnet18, x[0])
    with tempfile.TemporaryDirectory() as scratch:
        input_path = Path(scratch) / "input.npy"
        np.save(input_path, x)
        torch_side = TorchSide(args, input_path)
        rows, layer = onnxviz_rows(args, x[0])
        check_agreement(rows, torch_side, Path(scratch))
        times = interleave(rows, torch_side, args.rounds, args.repeats)
        torch_side.close()
    report(times, peak_rss(args), layer)


if __name__ == "__main__":
    main()
