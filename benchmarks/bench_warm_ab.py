"""A warm ``onnxviz project`` in two source trees, interleaved: what the second run on a cache
the first filled spends beyond onnxruntime's runs and the interpreter's imports.

    git worktree add /tmp/before <commit>
    python benchmarks/bench_warm_ab.py /tmp/before . --rounds 9

Each round runs, per tree: the CLI on an empty cache directory (cold), the CLI again (warm), and a
bare ``import onnxviz.cli`` (the floor); the warm row is wall - runs - floor. Both trees run from
bytecode (written once before the rounds), as an installed package does.
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

ROOT = Path(__file__).resolve().parents[1]
BASE = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
CLI = "from onnxviz.cli import main; main()"


def beyond_runs(tree: Path, cache: str, arguments: list[str]) -> float:
    """Wall seconds of one CLI process minus its forward and inverse runs."""
    env = {**BASE, "PYTHONPATH": str(tree), "ONNXVIZ_CACHE_DIR": cache}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CLI, *arguments], env=env, capture_output=True, text=True, cwd="/")
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"onnxviz failed in {tree}:\n{done.stderr}")
    timings = json.loads(done.stdout)["timings_ms"]
    return wall - (timings["forward"] + timings["inverse"]) / 1000


def import_floor(tree: Path) -> float:
    env = {**BASE, "PYTHONPATH": str(tree), "ONNXVIZ_CACHE": "0"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import onnxviz.cli"], env=env, check=True, cwd="/")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "vgg16_random.onnx")
    parser.add_argument("--image", type=Path, default=ROOT / "models" / "images" / "chelsea.png")
    parser.add_argument("--node", default="conv5_3")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    results: dict[str, list[float]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as scratch:
        arguments = [
            "project", str(args.model.resolve()), str(args.image.resolve()), "-n", args.node, "--top", "4",
            "-o", str(Path(scratch) / "out.png"), "--device", "cpu", "--json",
        ]  # fmt: skip
        for tree in trees.values():
            import_floor(tree)  # writes each tree's bytecode before the clocks start
        for round_ in range(args.rounds):
            for name, tree in trees.items():
                cache = str(Path(scratch) / f"{name}{round_}")
                beyond_runs(tree, cache, arguments)  # cold: fills the cache
                results[name].append(beyond_runs(tree, cache, arguments) - import_floor(tree))
    for name, values in results.items():
        shown = ", ".join(f"{v:.3f}" for v in values)
        print(f"{name}: warm wall - runs - import, median {statistics.median(values):.3f} s ({shown})")
    ratios = [a / b for a, b in zip(results["after"], results["before"], strict=True)]
    print(f"median per-round ratio after / before: {statistics.median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
