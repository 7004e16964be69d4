"""Does onnxviz on CUDA compute what it computes on the CPU, entirely on the GPU, and how fast?

    python benchmarks/gpu_check.py                       # needs a working CUDA provider
    python benchmarks/gpu_check.py --vgg16 models/vgg16_hed.onnx --rounds 5
    python benchmarks/gpu_check.py --candidate cpu       # the same checks, CPU against CPU

Checks, each printed as a row (exit 0: all pass, 1: a check failed, 2: no usable CUDA here):

1. **Projections**: every committed fixture (``tests/fixtures/models``), every rule, the deepest
   conv and fc layers, top-2 channels: ``max|cuda − cpu| / max|cpu| ≤ 1e-4``.
2. **Occlusion maps**: every fixture and the demo model, scores compared the same way.
3. **Placement**: every session onnxviz creates for CUDA while projecting, occluding and scanning
   (forward, inverse and occluder graphs) is profiled (``SessionOptions.enable_profiling``:
   onnxruntime records one ``<node>_kernel_time`` event per node run, whose ``args.provider``
   names the execution provider that ran it); any node run by another provider than the
   candidate's is listed and fails the check. onnxruntime may place shape computations on the CPU
   on purpose; the listed op types tell whether that is all that happened.
4. **Activation maximisation**: on CUDA, ``maximize`` runs its step as chained graphs on the
   device (``analyses/maximize/device.py``); the demo model's fc2 class objective and conv2 channel
   objective (pixel without transforms, and the fft defaults), 8 steps, against the CPU's numpy
   step: the first step's objectives within 1e-4 (the same start image through both), and every
   step's within 5e-2 relative (float32 against float64 Adam drifts from step 2 on: under the CPU
   provider the chained fft case ends 6.5e-3 from numpy after 8 steps, the pixel ones 7e-6, 6e-5).
   The ascent's own graphs (render, objective, update) are in the placement check.
5. **Timings** (VGG16 from ``scripts/build_vgg16.py``; ``--random`` weights are as fast): project
   1 and 64 channels of ``conv13``, occlude (patch 32, stride 16), top-k over a folder of
   pictures, and 4 maximisation steps of relu4_3 with K = 8 (pixel, no transforms: the
   issue's workload); medians over ``--rounds`` after one warm-up, profiling off.

The CUDA provider is probed the way onnxviz probes it (``onnxviz.runtime.sessions.cuda_status``),
so a machine where ``onnxruntime-gpu`` is installed but CUDA/cuDNN are missing stops at once
with the reason instead of quietly comparing the CPU with itself.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

import onnxviz
from onnxviz.errors import OnnxvizError
from onnxviz.runtime.sessions import cuda_status

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "models"
DEMO = ROOT / "models" / "demo.onnx"
RULES = ("deconvnet", "guided", "saliency")
TOLERANCE = 1e-4
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
KERNEL_EVENT = "_kernel_time"  # suffix of the profiler's per-node events


@dataclass
class Row:
    """One check's outcome: ``value`` against ``limit`` (both None for pass/fail checks)."""

    check: str
    subject: str
    ok: bool
    value: float | None = None
    limit: float | None = None
    note: str = ""

    def line(self) -> str:
        measured = "" if self.value is None else f"{self.value:.2e} (limit {self.limit:.0e})"
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.check:<11} {self.subject:<52} {measured} {self.note}".rstrip()


# --------------------------------------------------------------------------------------------
# comparison
# --------------------------------------------------------------------------------------------


def relative_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    """``max|candidate − reference| / max|reference|``; inf when the shapes differ, NaN appear,
    or the reference is all zero while the candidate is not (0 when both are zero)."""
    reference = np.asarray(reference, np.float64)
    candidate = np.asarray(candidate, np.float64)
    if reference.shape != candidate.shape or not (np.isfinite(reference).all() and np.isfinite(candidate).all()):
        return float("inf")
    scale = float(np.abs(reference).max(initial=0.0))
    difference = float(np.abs(candidate - reference).max(initial=0.0))
    if scale == 0.0:
        return 0.0 if difference == 0.0 else float("inf")
    return difference / scale


def deepest_layers(model: onnxviz.Model) -> list[str]:
    """The deepest layer named ``conv*`` and the deepest named ``fc*`` (where there is one)."""
    aliases = [layer.alias for layer in model.layers()]
    picked = []
    for prefix in ("conv", "fc"):
        named = [alias for alias in aliases if alias.startswith(prefix)]
        if named:
            picked.append(named[-1])
    return picked


def compare_projections(name: str, reference: onnxviz.Model, candidate: onnxviz.Model, rules=RULES) -> list[Row]:
    """Both models project the same input from the same layers; the channels are the reference's
    top 2, given explicitly to the candidate, so a different channel choice cannot hide."""
    x = np.random.default_rng(1).standard_normal(reference.input_shape()).astype(np.float32)
    rows = []
    for layer in deepest_layers(reference):
        for rule in rules:
            subject = f"{name} {layer} {rule}"
            expected = reference.project(x, node=layer, top=2, rule=rule)
            if not np.abs(expected.projections).max() > 0:
                rows.append(Row("project", subject, False, note="the CPU projection is all zero: proves nothing"))
                continue
            got = candidate.project(x, node=layer, channels=[int(c) for c in expected.channels], rule=rule)
            error = relative_error(expected.projections, got.projections)
            rows.append(Row("project", subject, error <= TOLERANCE, error, TOLERANCE))
    return rows


def occlusion_settings(model: onnxviz.Model) -> tuple[int, int]:
    """(patch, stride): a quarter of the smaller side, half-overlapping, for any input size."""
    shape = model.input_shape()
    height, width = (shape[1], shape[2]) if model.layout == "nhwc" else (shape[2], shape[3])
    patch = max(2, min(height, width) // 4)
    return patch, max(1, patch // 2)


def compare_occlusion(name: str, reference: onnxviz.Model, candidate: onnxviz.Model) -> list[Row]:
    """Occlusion scores of the same input on both; a model the CPU cannot occlude is noted, not
    failed (the CUDA side is then not asked either)."""
    x = np.random.default_rng(2).standard_normal(reference.input_shape()).astype(np.float32)
    patch, stride = occlusion_settings(reference)
    try:
        expected = reference.occlude(x, patch=patch, stride=stride)
    except OnnxvizError as exc:
        return [Row("occlude", name, True, note=f"not occludable on the CPU either: {exc}")]
    got = candidate.occlude(x, patch=patch, stride=stride, target=expected.target)
    error = relative_error(expected.scores, got.scores)
    return [Row("occlude", f"{name} patch {patch} stride {stride}", error <= TOLERANCE, error, TOLERANCE)]


MAXIMIZE_CASES = (
    ("fc2", {"param": "pixel", "jitter": 0, "zoom": (1.0, 1.0), "rotate": 0.0}),
    ("conv2", {"param": "pixel", "jitter": 0, "zoom": (1.0, 1.0), "rotate": 0.0}),
    ("conv2", {}),  # the defaults: fft, decorrelated, jitter, zoom, rotate
)
FIRST_STEP_TOLERANCE, CURVE_TOLERANCE = 1e-4, 5e-2


def compare_maximize(reference: onnxviz.Model, candidate: onnxviz.Model) -> list[Row]:
    """The objective curves of the same seeded runs on both devices."""
    rows = []
    for node, options in MAXIMIZE_CASES:
        subject = f"demo {node} {options.get('param', 'fft defaults')}"
        expected = reference.maximize(node=node, channels=[1, 3], steps=8, seed=0, **options).curve
        got = candidate.maximize(node=node, channels=[1, 3], steps=8, seed=0, **options).curve
        first = relative_error(expected[0], got[0])
        rows.append(Row("maximize", f"{subject} step 1", first <= FIRST_STEP_TOLERANCE, first, FIRST_STEP_TOLERANCE))
        error = relative_error(expected, got)
        rows.append(Row("maximize", f"{subject} 8 steps", error <= CURVE_TOLERANCE, error, CURVE_TOLERANCE))
    return rows


# --------------------------------------------------------------------------------------------
# placement
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    node: str
    op_type: str
    provider: str


def placements(events: list[dict]) -> list[Placement]:
    """Which provider ran each node, from the events of one onnxruntime profile (chrome-trace
    JSON: a list of events; per-node events have ``cat`` "Node", a name ending in
    ``_kernel_time`` and ``args.provider``/``args.op_name``). One entry per node, in run order."""
    seen: dict[str, Placement] = {}
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith(KERNEL_EVENT):
            continue
        node = name[: -len(KERNEL_EVENT)]
        args = event.get("args", {})
        seen.setdefault(node, Placement(node, str(args.get("op_name", "?")), str(args.get("provider", "?"))))
    return list(seen.values())


def off_provider(found: list[Placement], provider: str) -> list[Placement]:
    """The nodes some other provider ran."""
    return [p for p in found if p.provider != provider]


@dataclass
class ProfiledSession:
    """A session created while profiling was on, with what it was asked for."""

    session: ort.InferenceSession
    providers: list[str]
    phase: str
    events: list[dict] = field(default_factory=list)

    @property
    def role(self) -> str:
        """inverse (fed ``seed``), occluder (fed ``corners``) or forward, from its inputs."""
        inputs = {i.name for i in self.session.get_inputs()}
        if "seed" in inputs:
            return "inverse"
        if "corners" in inputs:
            return "occluder"
        if "params" in inputs or "value" in inputs:
            return "ascent"  # maximize's render, objective or update graph
        return "forward"

    def finish(self) -> list[Placement]:
        path = Path(self.session.end_profiling())
        try:
            self.events = json.loads(path.read_text())
        finally:
            path.unlink(missing_ok=True)
        return placements(self.events)


@contextlib.contextmanager
def profiled(phase: str, folder: Path) -> Iterator[list[ProfiledSession]]:
    """Every ``onnxruntime.InferenceSession`` created inside is profiled and recorded.

    onnxviz refers to ``onnxruntime.InferenceSession`` when it creates a session, so replacing
    that attribute for the duration reaches every session, wherever in the package it is made.
    """
    recorded: list[ProfiledSession] = []
    original = ort.InferenceSession
    # onnxviz opens a stored forward and inverse side by side: each session gets its own profile
    # file from a counter, not from how many were recorded when it started.
    numbers = itertools.count()

    class Profiled(original):  # type: ignore[misc, valid-type]
        def __init__(self, path_or_bytes, sess_options=None, providers=None, *args, **kwargs) -> None:
            options = sess_options if sess_options is not None else ort.SessionOptions()
            options.enable_profiling = True
            options.profile_file_prefix = str(folder / f"{phase}_{next(numbers)}")
            super().__init__(path_or_bytes, options, providers, *args, **kwargs)
            recorded.append(ProfiledSession(self, list(providers or []), phase))

    ort.InferenceSession = Profiled
    try:
        yield recorded
    finally:
        ort.InferenceSession = original


def check_placement(phase: str, provider: str, sessions: list[ProfiledSession]) -> list[Row]:
    """Rows for the sessions meant for ``provider`` (sessions asked for the CPU alone are
    onnxviz's graph-preparation probes and are left out)."""
    meant = [s for s in sessions if provider in s.providers]
    if not meant:
        return [Row("placement", phase, False, note=f"no session for {provider} was created: nothing was checked")]
    rows = []
    for index, recorded in enumerate(meant):
        found = recorded.finish()
        stray = off_provider(found, provider)
        subject = f"{phase} {recorded.role} #{index} ({len(found)} nodes)"
        if not found:
            rows.append(Row("placement", subject, True, note="created but never run: no node to place"))
        elif stray:
            listed = ", ".join(f"{p.node} [{p.op_type} on {p.provider}]" for p in stray[:8])
            more = f" and {len(stray) - 8} more" if len(stray) > 8 else ""
            rows.append(Row("placement", subject, False, note=f"{len(stray)} nodes off {provider}: {listed}{more}"))
        else:
            rows.append(Row("placement", subject, True, note=f"all on {provider}"))
    if all(row.note.startswith("created but never run") for row in rows):
        rows.append(Row("placement", phase, False, note=f"no session for {provider} ran a node: nothing was checked"))
    return rows


# --------------------------------------------------------------------------------------------
# timings
# --------------------------------------------------------------------------------------------


def median_seconds(run: Callable[[], object], rounds: int) -> float:
    run()  # warm-up: session creation and the first-run allocations are not what is timed
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def write_pictures(folder: Path, count: int) -> list[Path]:
    """``count`` photographs (scikit-image's, cycled and mirrored so none repeats) as PNG files."""
    import cv2
    import skimage.data

    sources = [skimage.data.chelsea(), skimage.data.astronaut(), skimage.data.coffee(), skimage.data.rocket()]
    paths = []
    for index in range(count):
        rgb = sources[index % len(sources)]
        if (index // len(sources)) % 2:
            rgb = rgb[:, ::-1]
        path = folder / f"picture_{index:03d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def vgg16_timings(path: Path, device: str, rounds: int, folder: Path) -> list[str]:
    model = onnxviz.load(path, device=device, preset="caffe")
    pictures = write_pictures(folder, 32)
    image = pictures[0]
    cases = {
        "project conv13, 1 channel": lambda: model.project(image, node="conv13"),
        "project conv13, 64 channels": lambda: model.project(image, node="conv13", top=64),
        "occlude patch 32 stride 16": lambda: model.occlude(image, patch=32, stride=16),
        f"topk conv13, {len(pictures)} pictures, 8 channels, k 4": lambda: model.topk(
            folder, node="conv13", top_channels=8, k=4
        ),
        "maximize relu4_3, K 8, 4 steps (pixel)": lambda: model.maximize(
            node="relu4_3", channels=list(range(8)), steps=4, param="pixel", jitter=0, zoom=(1.0, 1.0), rotate=0.0
        ),
    }
    return [f"{device:>4}  {name:<46} {median_seconds(run, rounds) * 1000:10.1f} ms" for name, run in cases.items()]


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def placement_rows(candidate: str, folder: Path) -> list[Row]:
    """Profile one projection per rule, one occlusion and one top-k scan on the demo model."""
    provider = PROVIDERS[candidate]
    rows = []
    for rule in RULES:
        with profiled(f"demo project {rule}", folder) as sessions:
            model = onnxviz.load(DEMO, device=candidate)
            model.project(np.zeros(model.input_shape(), np.float32) + 0.5, node="conv2", top=2, rule=rule)
        rows += check_placement(f"demo project {rule}", provider, sessions)
    with profiled("demo occlude", folder) as sessions:
        model = onnxviz.load(DEMO, device=candidate)
        model.occlude(
            np.random.default_rng(3).standard_normal(model.input_shape()).astype(np.float32), patch=16, stride=8
        )
    rows += check_placement("demo occlude", provider, sessions)
    pictures = folder / "pictures"
    pictures.mkdir(exist_ok=True)
    write_pictures(pictures, 4)
    with profiled("demo topk", folder) as sessions:
        onnxviz.load(DEMO, device=candidate).topk(pictures, node="conv2", top_channels=2, k=2)
    rows += check_placement("demo topk", provider, sessions)
    with profiled("demo maximize", folder) as sessions:
        onnxviz.load(DEMO, device=candidate).maximize(node="conv2", channels=[1, 3], steps=2)
    rows += check_placement("demo maximize", provider, sessions)
    return rows


def run_checks(candidate: str, fixtures: list[str], rules: tuple[str, ...], folder: Path) -> list[Row]:
    # Placement first: a session cache shared across loads could otherwise hand back sessions
    # created without profiling (the check then says it saw no session, rather than pass).
    rows = placement_rows(candidate, folder)
    for name in fixtures:
        reference = onnxviz.load(FIXTURES / name, device="cpu")
        other = onnxviz.load(FIXTURES / name, device=candidate)
        rows += compare_projections(name, reference, other, rules)
        rows += compare_occlusion(name, reference, other)
    rows += compare_occlusion("demo.onnx", onnxviz.load(DEMO, device="cpu"), onnxviz.load(DEMO, device=candidate))
    rows += compare_maximize(onnxviz.load(DEMO, device="cpu"), onnxviz.load(DEMO, device=candidate))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidate", choices=sorted(PROVIDERS), default="cuda", help="device checked against the CPU")
    parser.add_argument("--fixtures", nargs="*", help="fixture file names (default: every one)")
    parser.add_argument("--rules", nargs="*", choices=RULES, default=list(RULES))
    parser.add_argument("--vgg16", type=Path, default=ROOT / "models" / "vgg16_hed.onnx", help="model to time")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per case (default 5)")
    parser.add_argument("--no-timings", action="store_true", help="checks only")
    args = parser.parse_args(argv)

    if args.candidate == "cuda":
        usable, why = cuda_status()
        if not usable:
            print(f"gpu_check: no usable CUDA provider on this machine: {why}.", file=sys.stderr)
            print("Run it where `onnxviz project --device cuda` works (pip install onnxviz[cuda]).", file=sys.stderr)
            return 2
    fixtures = args.fixtures or sorted(p.name for p in FIXTURES.glob("*.onnx"))
    print(f"onnxruntime {ort.__version__}, providers {ort.get_available_providers()}, candidate {args.candidate}")
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        rows = run_checks(args.candidate, fixtures, tuple(args.rules), Path(tmp))
        for row in rows:
            print(row.line())
        failed = [row for row in rows if not row.ok]
        print(f"{len(rows) - len(failed)} of {len(rows)} checks passed")
        if not args.no_timings:
            if args.vgg16.exists():
                timing_folder = Path(tmp) / "timing"
                timing_folder.mkdir()
                print(f"timings: {args.vgg16.name}, 224x224, median of {args.rounds} after a warm-up")
                for line in vgg16_timings(args.vgg16, args.candidate, args.rounds, timing_folder):
                    print(line)
            else:
                print(f"timings skipped: {args.vgg16} is missing (python scripts/build_vgg16.py [--random])")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
