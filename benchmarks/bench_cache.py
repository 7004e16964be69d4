"""End-to-end time of ``onnxviz project`` with the graph cache cold, warm and off.

Each round runs, in fresh processes and interleaved: the CLI with an empty cache directory
(cold: builds the graphs and stores them), the CLI again on the directory the cold run filled
(warm: opens the stored graphs), the CLI with ``ONNXVIZ_CACHE=0`` (what a run cost before the
cache), and a bare ``import onnxviz.cli`` (the interpreter and import floor). From the CLI's own
``--json`` timings it also reports what each run spent outside onnxruntime's forward and inverse
runs (wall time minus those two).

  python scripts/build_vgg16.py --random      # models/vgg16_random.onnx
  python benchmarks/bench_cache.py models/vgg16_random.onnx models/images/chelsea.png --node conv5_3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = "from onnxviz.cli import main; main()"


def run(arguments: list[str], environment: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, seconds in onnxruntime's forward and inverse runs) of one CLI process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **environment}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CLI, *arguments], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"onnxviz failed ({done.returncode}):\n{done.stderr}")
    timings = json.loads(done.stdout)["timings_ms"]
    return wall, (timings["forward"] + timings["inverse"]) / 1000


def floor(environment: dict[str, str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **environment}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import onnxviz.cli"], env=env, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("image")
    parser.add_argument("--node", default="conv5_3")
    parser.add_argument("--top", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out.png"
        arguments = [
            "project", args.model, args.image, "-n", args.node, "--top", str(args.top),
            "-o", str(out), "--device", "cpu", "--json",
        ]  # fmt: skip
        rows: dict[str, list[tuple[float, float]]] = {"cold": [], "warm": [], "off": []}
        imports = []
        for round_ in range(args.rounds):
            cache = str(Path(scratch) / f"cache{round_}")
            rows["cold"].append(run(arguments, {"ONNXVIZ_CACHE_DIR": cache}))
            rows["warm"].append(run(arguments, {"ONNXVIZ_CACHE_DIR": cache}))
            rows["off"].append(run(arguments, {"ONNXVIZ_CACHE": "0"}))
            imports.append(floor({"ONNXVIZ_CACHE": "0"}))
    print(f"{args.rounds} rounds, medians in seconds")
    print("| run | wall | onnxruntime runs | wall - runs | wall - runs - import |")
    print("| --- | ---: | ---: | ---: | ---: |")
    floor_s = statistics.median(imports)
    for name, values in rows.items():
        wall = statistics.median(w for w, _ in values)
        runs = statistics.median(r for _, r in values)
        outside = statistics.median(w - r for w, r in values)
        print(f"| {name} | {wall:.3f} | {runs:.3f} | {outside:.3f} | {outside - floor_s:.3f} |")
    print(f"| `import onnxviz.cli` | {floor_s:.3f} | | | |")


if __name__ == "__main__":
    main()
