"""End-to-end time of ``onnxviz project`` with the graph cache cold, warm and off.

Each round runs, in fresh processes and interleaved: the CLI with an empty cache directory
(cold: builds the graphs and stores them), the CLI again on the directory the cold run filled
(warm: opens the stored graphs), the CLI with ``ONNXVIZ_CACHE=0`` (what a run cost before the
cache), and a bare ``import onnxviz.cli`` (the interpreter and import floor). From the CLI's own
``--json`` timings it also reports what each run spent outside onnxruntime's forward and inverse
runs (wall time minus those two). ``--phases`` adds one more warm run per round, in a process
that times the steps of the command in place (imports done before its clock starts): loading
the model, the cache key, opening the stored graphs' sessions, onnxruntime's runs, writing the
picture, and the rest (argument parsing, the image, JSON).

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
# The children run as an installed package does, from bytecode: with PYTHONDONTWRITEBYTECODE set
# (as in some containers) every run would compile onnxviz's 110 modules again (0.1 s).
BASE = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
CLI = "from onnxviz.cli import main; main()"
# the steps ``--phases`` times: "module:function" (or "module:Class.method") -> its row
PHASES = {
    "onnxviz.runtime.warm_start:load_graph": "load (read or skeleton, digest)",
    "onnxviz.runtime.graph_cache:projector_key": "cache key",
    "onnxviz.runtime.graph_cache:open_cached": "sessions (open the entry, check its weights)",
    "onnxviz.runtime.sessions:run_bound": "onnxruntime runs",
    "onnxviz.core.result:Result.save": "write the picture",
}


def run(arguments: list[str], environment: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, seconds in onnxruntime's forward and inverse runs) of one CLI process."""
    env = {**BASE, "PYTHONPATH": str(ROOT), **environment}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CLI, *arguments], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"onnxviz failed ({done.returncode}):\n{done.stderr}")
    timings = json.loads(done.stdout)["timings_ms"]
    return wall, (timings["forward"] + timings["inverse"]) / 1000


def floor(environment: dict[str, str]) -> float:
    env = {**BASE, "PYTHONPATH": str(ROOT), **environment}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import onnxviz.cli"], env=env, check=True)
    return time.perf_counter() - started


def timed_child(arguments: list[str]) -> None:
    """In this process: the CLI with every step of ``PHASES`` timed; prints the seconds as JSON."""
    import contextlib
    import importlib
    import io

    import onnxviz.cli

    spent = dict.fromkeys(PHASES.values(), 0.0)

    def timer(function, label):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - started

        return timed

    for target, label in PHASES.items():
        module_name, _, name = target.partition(":")
        owner = importlib.import_module(module_name)
        *classes, attribute = name.split(".")
        for part in classes:
            owner = getattr(owner, part)
        function = getattr(owner, attribute)
        setattr(owner, attribute, timer(function, label))
        for module in list(sys.modules.values()):  # the names other modules imported
            if getattr(module, "__name__", "").startswith("onnxviz") and getattr(module, attribute, None) is function:
                setattr(module, attribute, getattr(owner, attribute))
    sys.argv = ["onnxviz", *arguments]
    started = time.perf_counter()
    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
        onnxviz.cli.main()
    spent["total"] = time.perf_counter() - started
    print(json.dumps(spent))


def phases(arguments: list[str], environment: dict[str, str]) -> dict[str, float]:
    env = {**BASE, "PYTHONPATH": str(ROOT), **environment}
    command = [sys.executable, __file__, "--child", *arguments]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        timed_child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("image")
    parser.add_argument("--node", default="conv5_3")
    parser.add_argument("--top", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--phases", action="store_true", help="also time the steps of a warm run in place")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out.png"
        arguments = [
            "project", args.model, args.image, "-n", args.node, "--top", str(args.top),
            "-o", str(out), "--device", "cpu", "--json",
        ]  # fmt: skip
        rows: dict[str, list[tuple[float, float]]] = {"cold": [], "warm": [], "off": []}
        imports, steps = [], []
        for round_ in range(args.rounds):
            cache = str(Path(scratch) / f"cache{round_}")
            rows["cold"].append(run(arguments, {"ONNXVIZ_CACHE_DIR": cache}))
            rows["warm"].append(run(arguments, {"ONNXVIZ_CACHE_DIR": cache}))
            rows["off"].append(run(arguments, {"ONNXVIZ_CACHE": "0"}))
            imports.append(floor({"ONNXVIZ_CACHE": "0"}))
            if args.phases:
                steps.append(phases(arguments, {"ONNXVIZ_CACHE_DIR": cache}))
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
    if steps:
        print("\nA warm run's steps, timed in place (imports before the clock), medians in seconds")
        print("| step | seconds |\n| --- | ---: |")
        for label in [*PHASES.values(), "total"]:
            print(f"| {label} | {statistics.median(s[label] for s in steps):.3f} |")
        rest = statistics.median(s["total"] - sum(s[label] for label in PHASES.values()) for s in steps)
        outside = statistics.median(s["total"] - s["onnxruntime runs"] for s in steps)
        print(f"| the rest (arguments, image, JSON) | {rest:.3f} |\n| total - onnxruntime runs | {outside:.3f} |")


if __name__ == "__main__":
    main()
