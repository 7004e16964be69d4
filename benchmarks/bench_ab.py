"""One benchmark script in two source trees, interleaved: the per-row median ratio B / A.

    git worktree add /tmp/before <commit>
    python benchmarks/bench_ab.py /tmp/before . --rounds 5 -- benchmarks/bench_project.py --rounds 3 --skip-single

Each round runs the script once in tree A and once in tree B (the order alternating A B, B A, ...),
each tree's own copy of the script against its own package (the tree first on ``sys.path``), and
reads every table row the script prints as ``NAME  MEDIAN  ...`` (the first number after the name).
This machine's speed swings up to 2x from minute to minute, so only interleaved per-round ratios
are compared: a ratio below 1 means tree B is faster.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROW = re.compile(r"^(?P<name>\S.*?\S)\s+(?P<median>\d+\.\d+)\s+\d+(?:\.\d+)?%?(?:\s+\d+(?:\.\d+)?%?)?\s*$")


def run(tree: Path, script: list[str]) -> dict[str, float]:
    """The rows the script printed in ``tree``: name -> its first number (a median time)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run(
        [sys.executable, *script], cwd=tree, env=env, capture_output=True, text=True, check=True, timeout=1800
    )
    return {m["name"]: float(m["median"]) for m in map(ROW.match, done.stdout.splitlines()) if m}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    argv = sys.argv[1:]
    if "--" not in argv:
        parser.error("give the benchmark after --: bench_ab.py A B [--rounds N] -- SCRIPT [ARGS]")
    split = argv.index("--")
    args, script = parser.parse_args(argv[:split]), argv[split + 1 :]
    ratios: dict[str, list[float]] = {}
    medians: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    for index in range(args.rounds):
        order = [("A", args.a), ("B", args.b)] if index % 2 == 0 else [("B", args.b), ("A", args.a)]
        rows = {label: run(tree.resolve(), script) for label, tree in order}
        for name in rows["A"].keys() & rows["B"].keys():
            ratios.setdefault(name, []).append(rows["B"][name] / rows["A"][name])
            for label in ("A", "B"):
                medians[label].setdefault(name, []).append(rows[label][name])
        print(f"round {index + 1}/{args.rounds} done", file=sys.stderr)
    print(f"A = {args.a}, B = {args.b}, {args.rounds} interleaved rounds of {' '.join(script)}")
    print(f"{'row':58s} {'A median':>9s} {'B median':>9s} {'B/A':>6s} {'range':>13s}")
    for name in sorted(ratios):
        values = ratios[name]
        a, b = statistics.median(medians["A"][name]), statistics.median(medians["B"][name])
        spread = f"{min(values):.2f}-{max(values):.2f}"
        print(f"{name:58s} {a:9.2f} {b:9.2f} {statistics.median(values):6.3f} {spread:>13s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
