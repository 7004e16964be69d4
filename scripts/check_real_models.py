#!/usr/bin/env python
"""Real torchvision/timm architectures through onnxviz: top-logit saliency against torch autograd, and `check`.

Dev-only (needs torch, torchvision and timm, which are never package dependencies). For every
family of the issue's list, the real architecture is built with random seeded weights (no
download), its normalisation layers get random affine parameters and batch-calibrated running
statistics (so BatchNorm is not an identity and a residual branch whose last gamma starts at zero
is alive), and it is exported by both torch exporters:

- ``dynamo``: ``torch.onnx.export(dynamo=True)``, the default exporter, static shapes, weights in
  a ``.onnx.data`` external-data file beside the model (what users get by default);
- ``torchscript``: ``dynamo=False``, opset 17, a dynamic batch axis (the usual tutorial recipe).

Then, per model and exporter, in a fresh subprocess (so VmHWM is that run's own peak):

(a) the saliency of the top logit from onnxviz's API (``project(x, node=<logits>, channels=[top],
    rule="saliency")``) against torch autograd of the same logit on the same fixed random input.
    Pass: max|Δ| ≤ max(2 × torch's own float32-vs-float64 gap on that model, 1e-4 × max|ref|) and
    cosine ≥ 0.9999;
(b) ``model.check()`` (every conv/pool layer projects).

The exports and references are cached under ``benchmarks/out/real_models/`` (git-ignored) and
reused when present. The table is printed and, with ``--out``, written as Markdown.

Usage::

    python scripts/check_real_models.py --families resnet50,convnext_tiny --exporters dynamo --out table.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "out" / "real_models"
EXPORTERS = ("dynamo", "torchscript")
SEED = 20261129
COSINE_MIN = 0.9999


@dataclass(frozen=True)
class Spec:
    family: str
    source: str  # "torchvision" or "timm"
    name: str
    size: int
    kwargs: dict = field(default_factory=dict)


SPECS = [
    Spec("VGG/AlexNet", "torchvision", "alexnet", 224),
    Spec("VGG/AlexNet", "torchvision", "vgg11_bn", 224),
    Spec("ResNet", "torchvision", "resnet50", 160),
    Spec("ResNeXt", "torchvision", "resnext50_32x4d", 128),
    Spec("ResNet-D", "timm", "resnet50d", 128),
    Spec("Res2Net", "timm", "res2net50_26w_4s", 128),
    Spec("DenseNet", "torchvision", "densenet121", 128),
    Spec("SqueezeNet", "torchvision", "squeezenet1_1", 224),
    Spec("ShuffleNetV2", "torchvision", "shufflenet_v2_x1_0", 224),
    Spec("MobileNetV2", "torchvision", "mobilenet_v2", 224),
    Spec("MobileNetV3", "torchvision", "mobilenet_v3_small", 224),
    Spec("MnasNet", "torchvision", "mnasnet1_0", 224),
    Spec("EfficientNet", "torchvision", "efficientnet_b0", 224),
    Spec("EfficientNetV2", "torchvision", "efficientnet_v2_s", 128),
    Spec("RegNet", "torchvision", "regnet_y_800mf", 224),
    Spec("ConvNeXt", "torchvision", "convnext_tiny", 128),
    Spec("GoogLeNet", "torchvision", "googlenet", 160, {"aux_logits": False, "init_weights": True}),
    Spec("Inception v3", "torchvision", "inception_v3", 160, {"aux_logits": False, "init_weights": True}),
    Spec("Xception", "timm", "legacy_xception", 160),
    Spec("DLA", "timm", "dla34", 160),
    Spec("DPN", "timm", "dpn68", 128),
    Spec("CSPDarkNet", "timm", "cspdarknet53", 128),
    Spec("HRNet", "timm", "hrnet_w18_small", 128),
    Spec("NF-ResNet", "timm", "nf_resnet26", 128),
    Spec("RepVGG", "timm", "repvgg_a0", 160),
    Spec("GhostNet", "timm", "ghostnet_100", 224),
    Spec("ReXNet", "timm", "rexnet_100", 224),
    Spec("MobileViT", "timm", "mobilevit_xxs", 128),
    Spec("ViT", "timm", "vit_tiny_patch16_224", 224),
]
BY_NAME = {s.name: s for s in SPECS}


# -- worker: build, randomise, export, torch reference (needs torch) ----------------------------


def build(spec: Spec):
    import torch
    from make_fixtures import randomise_norms  # scripts/ is on the path of a script run from it

    torch.manual_seed(SEED)
    if spec.source == "torchvision":
        import torchvision

        model = torchvision.models.get_model(spec.name, weights=None, **spec.kwargs)
    else:
        import timm

        model = timm.create_model(spec.name, pretrained=False, **spec.kwargs)
    return randomise_norms(model, SEED + 1, spec.size, batches=2, batch_size=4)


def paths(spec: Spec, exporter: str) -> tuple[Path, Path]:
    folder = CACHE / f"{spec.name}_{spec.size}"
    return folder / f"{exporter}.onnx", folder / "reference.npz"


def export_worker(name: str, exporter: str) -> dict:
    import numpy as np
    import torch

    spec = BY_NAME[name]
    onnx_path, reference_path = paths(spec, exporter)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    model = build(spec)
    x = np.random.default_rng(SEED).standard_normal((1, 3, spec.size, spec.size)).astype(np.float32)
    started = time.perf_counter()
    if not reference_path.exists():
        references = torch_reference(model, x)
        np.savez(reference_path, x=x, **references)
    example = (torch.from_numpy(x),)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            program = torch.onnx.export(
                model, example, dynamo=True, input_names=["input"], output_names=["logits"], verbose=False
            )
            program.save(str(onnx_path), external_data=True)
        else:
            torch.onnx.export(
                model,
                example,
                str(onnx_path),
                dynamo=False,
                opset_version=17,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )
    return {"export_seconds": time.perf_counter() - started}


def torch_reference(model, x) -> dict:
    """Autograd of the top logit in float32 and in float64; their gap is torch's own rounding."""
    import copy

    import numpy as np
    import torch

    def gradient(net, dtype):
        inp = torch.from_numpy(x).to(dtype).requires_grad_(True)
        logits = net(inp)
        return logits, inp

    logits, inp = gradient(model, torch.float32)
    top = int(logits[0].argmax())
    logits[0, top].backward()
    grad32 = inp.grad.numpy().astype(np.float32)
    double = copy.deepcopy(model).double()
    logits64, inp64 = gradient(double, torch.float64)
    logits64[0, top].backward()
    grad64 = inp64.grad.numpy()
    return {
        "top": np.int64(top),
        "logits": logits.detach().numpy(),
        "gradient": grad32,
        "gradient64": grad64,
        "gap": np.float64(np.max(np.abs(grad32.astype(np.float64) - grad64))),
    }


# -- worker: onnxviz (no torch imported) --------------------------------------------------------


def first_line(text: str) -> str:
    """The first line of an error, with onnxruntime's long status messages cut to op and node."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    runtime = re.search(r"running (\w+) node\. Name:'([^']*)'", line)
    if runtime:
        line = f"{line.split(':')[0]}: {runtime.group(1)} '{runtime.group(2)}'"
    return line[:160]


def cosine_of(a, b) -> float:
    import numpy as np

    return float(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_worker(name: str, exporter: str, skip_check: bool) -> dict:
    import numpy as np

    import onnxviz
    from onnxviz.errors import OnnxvizError

    spec = BY_NAME[name]
    onnx_path, reference_path = paths(spec, exporter)
    reference = np.load(reference_path)
    result: dict = {}
    started = time.perf_counter()
    try:
        model = onnxviz.load(onnx_path, device="cpu", preset="raw")
        projection = model.project(reference["x"], node="logits", channels=[int(reference["top"])], rule="saliency")
        ours = projection.projections[0].astype(np.float64)
        ref = reference["gradient"][0].astype(np.float64)
        delta = float(np.max(np.abs(ours - ref)))
        cosine = cosine_of(ours, ref)
        bound = max(2 * float(reference["gap"]), 1e-4 * float(np.max(np.abs(ref))))
        result.update(delta=delta, cosine=cosine, bound=bound, saliency=delta <= bound and cosine >= COSINE_MIN)
        # Diagnostics for a near miss: is onnxviz as close to float64 as torch's own float32 is?
        ref64 = reference["gradient64"][0]
        result.update(
            cosine_torch32_vs_64=cosine_of(ref, ref64),
            cosine_vs_64=cosine_of(ours, ref64),
            delta_vs_64=float(np.max(np.abs(ours - ref64))),
        )
        if not result["saliency"]:
            result["saliency_error"] = f"max|Δ| {delta:.2e} > {bound:.2e} or cosine {cosine:.6f}"
    except OnnxvizError as exc:
        result.update(saliency=False, saliency_error=first_line(exc.message))
    except Exception as exc:  # the survey records every failure, internal ones too
        result.update(saliency=False, saliency_error=f"internal {type(exc).__name__}: {first_line(str(exc))}")
    result["saliency_seconds"] = time.perf_counter() - started
    if not skip_check:
        started = time.perf_counter()
        try:
            model = onnxviz.load(onnx_path, device="cpu", preset="raw")
            layers = model.check()
            failed = [r for r in layers if not r.ok]
            result.update(check=not failed, layers=len(layers), failed_layers=len(failed))
            if failed:
                first = failed[0]
                result["check_error"] = f"{len(failed)}/{len(layers)}: {first.node}: {first_line(first.message)}"
        except OnnxvizError as exc:
            result.update(check=False, check_error=first_line(exc.message))
        except Exception as exc:  # as above
            result.update(check=False, check_error=f"internal {type(exc).__name__}: {first_line(str(exc))}")
        result["check_seconds"] = time.perf_counter() - started
    result["peak_mib"] = peak_rss_mib()
    return result


# -- driver -------------------------------------------------------------------------------------


def subprocess_json(args: list[str], timeout: float) -> dict:
    """Run this script as a worker; its last stdout line is its JSON result."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        done = subprocess.run(
            [sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()
        return {"error": f"exit {done.returncode}: {tail[-1][:160] if tail else ''}"}
    return json.loads(lines[-1])


def row(spec: Spec, exporter: str, timeout: float, skip_check: bool) -> dict:
    onnx_path, reference_path = paths(spec, exporter)
    record: dict = {"family": spec.family, "model": spec.name, "size": spec.size, "exporter": exporter}
    if not onnx_path.exists() or not reference_path.exists() or reference_path.stat().st_size == 0:
        exported = subprocess_json(["--worker", "export", spec.name, exporter], timeout)
        if "error" in exported:
            record.update(saliency=False, check=False, saliency_error=f"export: {exported['error']}")
            return record
        record.update(exported)
    args = ["--worker", "run", spec.name, exporter] + (["--skip-check"] if skip_check else [])
    outcome = subprocess_json(args, timeout)
    if "error" in outcome:
        outcome = {"saliency": False, "check": False, "saliency_error": outcome["error"]}
    record.update(outcome)
    return record


def mark(ok: bool | None) -> str:
    return "—" if ok is None else "pass" if ok else "**fail**"


def numeric_failure(r: dict) -> str:
    """Which bound a projection missed, beside how close torch's own float32 came to float64."""
    parts = []
    if r["delta"] > r["bound"]:
        parts.append(f"max|Δ| {r['delta']:.1e} > {r['bound']:.1e}")
    if r["cosine"] < COSINE_MIN:
        parts.append(f"cosine {r['cosine']:.6f} < {COSINE_MIN}")
    if "cosine_torch32_vs_64" in r:
        parts.append(
            f"vs float64: onnxviz cosine {r['cosine_vs_64']:.6f}, torch float32 {r['cosine_torch32_vs_64']:.6f}"
        )
    return "; ".join(parts)


def markdown(records: list[dict]) -> str:
    lines = [
        "| family | model | px | exporter | saliency | max\\|Δ\\| (bound) | cosine | check | time s | peak MiB"
        " | first failure |",
        "| --- | --- | ---: | --- | --- | --- | ---: | --- | ---: | ---: | --- |",
    ]
    for r in records:
        delta = f"{r['delta']:.1e} ({r['bound']:.1e})" if "delta" in r else ""
        cosine = f"{r['cosine']:.6f}" if "cosine" in r else ""
        seconds = r.get("saliency_seconds", 0) + r.get("check_seconds", 0)
        check = mark(r.get("check"))
        if "layers" in r:
            check += f" ({r['layers'] - r['failed_layers']}/{r['layers']})"
        failure = r.get("saliency_error") or r.get("check_error") or ""
        if "delta" in r and not r.get("saliency"):
            failure = numeric_failure(r)
        peak = f"{r['peak_mib']:.0f}" if "peak_mib" in r else ""
        failure = failure.replace("|", "\\|")
        lines.append(
            f"| {r['family']} | {r['model']} | {r['size']} | {r['exporter']} | {mark(r.get('saliency'))} | {delta} |"
            f" {cosine} | {check} | {seconds:.1f} | {peak} | {failure} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", help="comma-separated model names or family names (default: all)")
    parser.add_argument("--exporters", default=",".join(EXPORTERS))
    parser.add_argument("--out", type=Path, help="write the Markdown table here")
    parser.add_argument("--json", type=Path, help="write the raw records here")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per worker (export, or saliency+check)")
    parser.add_argument("--skip-check", action="store_true", help="saliency only")
    parser.add_argument("--render", type=Path, help="only print (and --out) the table of a --json file")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "MODEL", "EXPORTER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, name, exporter = args.worker
        result = export_worker(name, exporter) if kind == "export" else run_worker(name, exporter, args.skip_check)
        print(json.dumps(result))
        return
    if args.render:
        table = markdown(json.loads(args.render.read_text()))
        print(table)
        if args.out:
            args.out.write_text(table)
        return
    wanted = set(args.families.split(",")) if args.families else None
    specs = [s for s in SPECS if wanted is None or s.name in wanted or s.family in wanted]
    unknown = (wanted or set()) - {s.name for s in specs} - {s.family for s in specs}
    if unknown:
        parser.error(f"unknown families: {', '.join(sorted(unknown))}; known: {', '.join(BY_NAME)}")
    exporters = args.exporters.split(",")
    records = []
    for spec in specs:
        for exporter in exporters:
            record = row(spec, exporter, args.timeout, args.skip_check)
            records.append(record)
            print(markdown([record]).splitlines()[-1], flush=True)
            if args.json:
                args.json.write_text(json.dumps(records, indent=1))
    table = markdown(records)
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
