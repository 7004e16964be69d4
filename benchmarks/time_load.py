"""Median time of ``ModelGraph.load`` in one process (after one warm-up load), in seconds.

Imports nothing but ``ModelGraph``, so it runs against any tree of onnxviz: alternate two trees'
runs to compare them, e.g.

  for i in 1 2 3 4 5 6 7; do
    PYTHONPATH=OLD python benchmarks/time_load.py MODEL; PYTHONPATH=NEW python benchmarks/time_load.py MODEL
  done
"""

from __future__ import annotations

import statistics
import sys
import time

from onnxviz.graph.model import ModelGraph


def main() -> None:
    path, loads = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
    ModelGraph.load(path)
    times = []
    for _ in range(loads):
        start = time.perf_counter()
        ModelGraph.load(path)
        times.append(time.perf_counter() - start)
    print(f"{statistics.median(times):.4f}")


if __name__ == "__main__":
    main()
