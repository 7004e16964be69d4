"""The engine's constant factor: an inverse run against a forward run, VGG16 and ResNet-50 on the CPU.

    python scripts/build_vgg16.py --random      # models/vgg16_random.onnx
    python scripts/build_resnet50.py            # models/resnet50_random.onnx
    python benchmarks/bench_engine.py           # --rounds 6 --models vgg16 resnet50 --batches 1 8

Every method is a forward plus a generated inverse, and a convolution's data gradient has the
convolution's multiply-adds, so an inverse run should cost about one forward (issue 23's target:
saliency inverse ÷ forward ≤ 1.2). Per model and batch (input 224x224, random images), a round
times once each, in an order that reverses from round to round:

- *forward*: the model file's own graph in an onnxruntime session: the plain forward;
- *saliency*, *deconvnet*: a ``Projector`` from the target back to the input with that rule: its
  forward (the plain one plus the outputs the inverse reads: ReLU masks, pool switches) and its
  inverse run;
- *layer gradient*: the ``saliency`` inverse from the target back to a layer only (what Grad-CAM
  reads), the gradient engine's projector: its forward (from the input, the layer's value out
  too) and its inverse run over the nodes between the layer and the target.

The target is the model's output: ResNet-50's logits; VGG16 is the conv feature extractor
(``build_vgg16.py``, no classifier), so its pool5. The seed is one-hot at each image's top-1
output element (the top-1 class for the logits). The projectors are paired, as the gradient
engine builds them: seed k goes back through image k's forward values, so batch B is one forward
and one inverse run of batch B. Round 0 warms up and is dropped; rows give the median and the
minimum, ratios the median of the per-round ratios (this machine's speed swings from minute to
minute; a ratio within one round is steadier than any single time).

Peak memory: each run in a fresh process, which reports its own ``VmHWM`` (the kernel's
high-water mark of its resident set). ``resource.getrusage``'s ``ru_maxrss`` is not used: Linux
carries the spawning process's peak over ``exec`` into it (a child using 13 MiB reported the
1.2 GB of its parent). Each run is measured with an empty graph cache (the graphs are built) and
again with the cache it filled (the graphs are opened).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from onnxviz.inverse import SEED, InverseSpec
from onnxviz.runtime.gradient import GradientEngine
from onnxviz.runtime.projector import Projector
from onnxviz.runtime.sessions import Device, choose_device, create_session
from onnxviz.runtime.warm_start import load_graph

ROOT = Path(__file__).resolve().parents[1]
SIZE = 224
PLAIN = "forward"
WIDTH = 50  # of a row's name


@dataclass(frozen=True)
class Case:
    """A model, its target, and the layer its layer gradient goes back to (said in words too)."""

    path: Path
    target: str
    layer: str
    layer_words: str


CASES = {
    "vgg16": Case(ROOT / "models" / "vgg16_random.onnx", "pool5", "pool4", "pool4's output = the conv5 block's input"),
    "resnet50": Case(
        ROOT / "models" / "resnet50_random.onnx",
        "logits",
        "/layer3/layer3.5/relu_2/Relu_output_0",
        "layer4's input = layer3's last block's output (its final ReLU)",
    ),
}


@dataclass(frozen=True)
class Variant:
    """One projector: the rule of its inverse and whether it stops at the case's layer."""

    name: str
    rule: str
    to_layer: bool


VARIANTS = (
    Variant("saliency", "saliency", False),
    Variant("deconvnet", "deconvnet", False),
    Variant("layer gradient", "saliency", True),
)


def one_hot_top1(value: np.ndarray) -> np.ndarray:
    """A seed shaped like ``value``: 1 at each image's largest element, 0 elsewhere."""
    flat = value.reshape(len(value), -1)
    seed = np.zeros_like(flat, dtype=np.float32)
    seed[np.arange(len(flat)), flat.argmax(axis=1)] = 1.0
    return seed.reshape(value.shape)


def build_projectors(case: Case, device: Device) -> dict[str, Projector]:
    """One projector per variant, built once and reused by every round and batch (their inverse
    takes any batch: paired, a seed per image)."""
    graph = load_graph(case.path)
    if case.layer not in graph.producer:
        raise SystemExit(f"{case.path.name} has no tensor '{case.layer}': rebuild it with scripts/")
    projectors = {}
    for variant in VARIANTS:
        source = case.layer if variant.to_layer else None
        shape = (1, 3, SIZE, SIZE)
        spec = InverseSpec(case.target, shape, source=source, rule=variant.rule, form=device.form, paired=True)
        built = projectors[variant.name] = Projector(graph, spec, device)
        print(f"  {variant.name}: built in {built.build_seconds:.1f} s, inverse one seed at a time: {built.single}")
    return projectors


def time_round(
    plain: ort.InferenceSession,
    projectors: dict[str, Projector],
    x: np.ndarray,
    target: str,
    order: list[str],
) -> dict[str, float]:
    """Seconds of each run of one round: the plain forward, then each projector's forward and
    inverse (the seed, made from the forward's value, is outside both times)."""
    input_name = plain.get_inputs()[0].name
    seconds: dict[str, float] = {}
    for name in order:
        started = time.perf_counter()
        if name == PLAIN:
            plain.run(None, {input_name: x})
            seconds[PLAIN] = time.perf_counter() - started
            continue
        projector = projectors[name]
        forward = projector.forward(x, input_name)
        seconds[f"{name} forward"] = time.perf_counter() - started
        seed = one_hot_top1(forward[target].numpy())
        started = time.perf_counter()
        projector.run_inverse({SEED: seed}, forward)
        seconds[f"{name} inverse"] = time.perf_counter() - started
    return seconds


def measure(case: Case, batches: list[int], rounds: int, device: Device) -> dict[int, list[dict[str, float]]]:
    """Per batch, one dict of seconds per kept round. The batches and the runs of a round are
    interleaved so that a slow minute of the machine falls on all of them."""
    plain = create_session(case.path, device, "plain forward")
    projectors = build_projectors(case, device)
    inputs = {b: np.random.default_rng(b).standard_normal((b, 3, SIZE, SIZE)).astype(np.float32) for b in batches}
    names = [PLAIN, *projectors]
    kept: dict[int, list[dict[str, float]]] = {b: [] for b in batches}
    for index in range(rounds + 1):
        order = names if index % 2 == 0 else names[::-1]
        for batch in batches:
            seconds = time_round(plain, projectors, inputs[batch], case.target, order)
            if index > 0:  # round 0 builds onnxruntime's arenas and caches
                kept[batch].append(seconds)
        print(f"  round {index}/{rounds} done{' (warm-up, dropped)' if index == 0 else ''}", file=sys.stderr)
    return kept


def report(model: str, batch: int, samples: list[dict[str, float]]) -> None:
    """The rows (median and minimum ms) and the per-round ratios to the plain forward."""
    rows = [PLAIN, *(f"{variant.name} {part}" for variant in VARIANTS for part in ("forward", "inverse"))]
    for row in rows:
        values = [s[row] * 1e3 for s in samples]
        print(f"{f'{model} b{batch} {row}':{WIDTH}s} {statistics.median(values):10.1f} {min(values):10.1f}")
    for variant in VARIANTS:
        for part in ("inverse", "forward"):
            ratios = [s[f"{variant.name} {part}"] / s[PLAIN] for s in samples]
            label = f"{model} b{batch} {variant.name} {part} / forward"
            spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
            print(f"{label:{WIDTH}s} {statistics.median(ratios):10.2f} {spread:>10s}  (ratio)")


def peak_child(model: str) -> None:
    """In a fresh process: a VGG16 projection (deconvnet, one channel of relu5_3, as ``project``
    builds it) or a ResNet-50 layer gradient (saliency from the logits' top-1 to layer4's input,
    as a class activation map needs), batch 1; prints its seconds and peak resident set."""
    started = time.perf_counter()
    device = choose_device("cpu")
    case = CASES[model]
    graph = load_graph(case.path)
    x = np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    if model == "vgg16":
        spec = InverseSpec("relu5_3", x.shape, rule="deconvnet", form=device.form, sparse=True)
        projector = Projector(graph, spec, device)
        forward = projector.forward(x, graph.input_name)
        activation = forward["relu5_3"].numpy()
        strongest = np.array([activation[0].reshape(len(activation[0]), -1).max(axis=1).argmax()], np.int64)
        projector.invert(activation, strongest, forward)
    else:
        engine = GradientEngine(graph, case.target, x.shape, device, source=case.layer)
        engine.value_activation_gradient(x, one_hot_top1)
    with open("/proc/self/status") as status:
        peak_kib = int(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
    print(json.dumps({"seconds": time.perf_counter() - started, "peak_mib": peak_kib / 1024}))


def peaks(models: list[str]) -> Iterator[str]:
    """One line per model and cache state, each run in a fresh process of this script."""
    runs = {"vgg16": "VGG16 projection (deconvnet, relu5_3, 1 channel)", "resnet50": "ResNet-50 layer gradient"}
    for model in models:
        with tempfile.TemporaryDirectory() as cache:
            for state in ("graphs built (empty cache)", "graphs opened (cached)"):
                env = dict(os.environ, ONNXVIZ_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
                command = [sys.executable, __file__, "--peak-child", model]  # a fresh process: its own peak
                done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
                result = json.loads(done.stdout.splitlines()[-1])
                yield f"{runs[model]:50s} {state:28s} {result['seconds']:7.1f} s {result['peak_mib']:8.0f} MiB"


def machine() -> str:
    """What the times were measured on, for the README's note."""
    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    with open("/proc/meminfo") as meminfo:
        memory = int(next(line.split()[1] for line in meminfo if line.startswith("MemTotal:"))) / 1024**2
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB; onnxruntime {ort.__version__} (CPU provider), "
        f"onnx {onnx.__version__}, numpy {np.__version__}, Python {platform.python_version()}"
    )


def load() -> str:
    """The load average: this machine is shared, and the times mean little without it."""
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6, help="kept rounds, after one warm-up round (default 6)")
    parser.add_argument("--models", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--no-peaks", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--peak-child", choices=sorted(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_child:
        peak_child(args.peak_child)
        return 0
    if args.rounds < 1 or min(args.batches) < 1:
        parser.error("--rounds and --batches must be at least 1")
    missing = [str(CASES[m].path.relative_to(ROOT)) for m in args.models if not CASES[m].path.exists()]
    if missing:
        parser.error(
            f"missing {', '.join(missing)}: build it with scripts/build_vgg16.py --random or build_resnet50.py"
        )
    print(f"machine: {machine()}")
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {load()}; {args.rounds} kept rounds, input {SIZE}x{SIZE}")
    peak_lines = [] if args.no_peaks else list(peaks(args.models))  # before this process grows
    device = choose_device("cpu")
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as cache:
        os.environ["ONNXVIZ_CACHE_DIR"] = cache  # the shared user cache is left alone
        for model in args.models:
            case = CASES[model]
            print(f"{model}: target {case.target}; layer gradient to {case.layer} ({case.layer_words})")
            for batch, samples in measure(case, args.batches, args.rounds, device).items():
                results[(model, batch)] = samples
    print(f"\n{'row':{WIDTH}s} {'median ms':>10s} {'min ms':>10s}")
    for (model, batch), samples in results.items():
        report(model, batch, samples)
    for line in peak_lines:
        print(line)
    print(f"done, {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
