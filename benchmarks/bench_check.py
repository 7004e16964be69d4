"""Time and peak memory of `onnxviz check` on a ResNet-50, beside one `project` of its deepest conv.

    python benchmarks/bench_check.py [--arch resnet50] [--size 224] [--rule deconvnet] [--keep DIR]

The model is torchvision's architecture with random weights (seeded; nothing is downloaded),
exported by the TorchScript exporter (``dynamo=False``, opset 17) into a temporary folder; torch
and torchvision are dev-only tools. Each command runs in a fresh Python process, which writes its
own peak resident set size (``VmHWM`` of /proc/self/status, the kernel's high-water mark, which
misses nothing a polling loop could) when it exits. Rows: the command, wall seconds, peak RSS.
The target of the bounded `check` is a peak of at most twice one projection's, and ≤ 2 GB for
ResNet-50 at 224.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# The child runs the CLI in-process and reports its own high-water mark at exit (atexit runs on
# sys.exit too, which is how the CLI ends).
CHILD = """
import atexit, sys
peak_file = sys.argv.pop(1)
def report():
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(peak_file, "w") as out:
        out.write(peak)
atexit.register(report)
sys.argv[0] = "onnxviz"
from onnxviz.cli import main
main()
"""


def export(arch: str, size: int, folder: Path) -> Path:
    import torch
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None).eval()
    path = folder / f"{arch}_{size}.onnx"
    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.randn(1, 3, size, size),),
            str(path),
            input_names=["input"],
            output_names=["logits"],
            opset_version=17,
            dynamo=False,
        )
    return path


def measure(args: list[str], folder: Path) -> tuple[float, float, int, str]:
    """(seconds, peak RSS in MiB, exit code, stdout) of ``onnxviz ARGS`` in a fresh process."""
    peak_file = folder / "peak.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(peak_file), *args], capture_output=True, text=True, env=env, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        sys.exit(f"onnxviz {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, int(peak_file.read_text()) / 1024, done.returncode, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet50", help="a torchvision.models constructor")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rule", default="deconvnet")
    parser.add_argument("--keep", type=Path, help="export into this folder and keep the model")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as temporary:
        folder = options.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        model = export(options.arch, options.size, folder)
        image = folder / "input.npy"
        np.save(image, np.random.default_rng(0).standard_normal((1, 3, options.size, options.size)).astype(np.float32))
        layers = json.loads(measure(["layers", str(model), "--json", "--device", "cpu"], folder)[3])["layers"]
        deepest = [la["alias"] for la in layers if la["alias"].startswith("conv")][-1]
        common = ["--device", "cpu", "--rule", options.rule]
        rows = [
            (f"project --node {deepest}", ["project", str(model), str(image), "--node", deepest, "--json", *common]),
            ("check", ["check", str(model), "--json", *common]),
        ]
        print(f"{options.arch} at {options.size}x{options.size}, rule {options.rule}, {os.cpu_count()} cores")
        print("| command | seconds | peak RSS (MiB) | exit |\n| --- | ---: | ---: | ---: |")
        peaks = {}
        for label, args in rows:
            seconds, peak, code, stdout = measure(args, folder)
            peaks[label.split()[0]] = peak
            if label == "check":
                result = json.loads(stdout)
                passed = sum(layer["ok"] for layer in result["layers"])
                label = f"check ({passed}/{len(result['layers'])} layers project)"
            print(f"| {label} | {seconds:.1f} | {peak:.0f} | {code} |")
        print(f"check / project peak: {peaks['check'] / peaks['project']:.2f}")


if __name__ == "__main__":
    main()
