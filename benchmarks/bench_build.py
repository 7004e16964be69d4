"""Inverse graph build time against node count: is it linear, and is it under a second?

    python scripts/build_resnet50.py                                   # models/resnet50_random.onnx
    python benchmarks/bench_build.py --yolo DIR                        # DIR/yolo11n.onnx, DIR/yolov8n.onnx
    python benchmarks/bench_build.py --fixtures                        # also every tests/fixtures model

Per model, in a fresh process each (``--rounds`` of them, alternating models), with the graph
cache off: loading (``ModelGraph.load``: parse, fold, shapes), the build proper
(``build_inverse`` + ``forward_model``: the saliency inverse of the model's first output back to
the input, paired, and the forward graph it reads) and opening the two onnxruntime sessions
(their graph optimisation). The build is timed as wall time and as this process's CPU time
(``time.process_time``): on a loaded machine the CPU time is the steadier of the two. The table
gives medians, and a least-squares line of build CPU time against node count over all models.
YOLO exports come from ultralytics' own exporter (a dev venv: ``YOLO("yolo11n.yaml").export(
format="onnx", imgsz=640)``, seeded weights, nothing downloaded).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def measure(path: Path) -> dict[str, float]:
    """One model in this process: load, build (wall and CPU), sessions; the cache is off."""
    from onnxviz.graph.model import ModelGraph
    from onnxviz.inverse import InverseSpec, build_inverse
    from onnxviz.passes.rewrite import forward_model
    from onnxviz.runtime.sessions import choose_device, create_session

    started = time.perf_counter()
    graph = ModelGraph.load(path)
    loaded = time.perf_counter() - started
    target = graph.model.graph.output[0].name
    shape = graph.concrete_input_shape()
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    inverse = build_inverse(graph, InverseSpec(target, shape, rule="saliency", paired=True))
    outputs = list(dict.fromkeys([target, *inverse.forward_tensors]))
    forward = forward_model(graph, outputs, inverse.switches, graph.shapes(shape), inverse.masks)
    build_cpu, build_wall = time.process_time() - cpu, time.perf_counter() - wall
    device = choose_device("cpu")
    opened = time.perf_counter()
    create_session(forward, device, "forward graph")
    create_session(inverse.model, device, "inverse graph")
    sessions = time.perf_counter() - opened
    weights = sum(t.nbytes for t in graph.constants.values() if hasattr(t, "nbytes")) / 1e6
    return {
        "weights_mb": weights,
        "nodes": len(graph.nodes),
        "load": loaded,
        "build_wall": build_wall,
        "build_cpu": build_cpu,
        "sessions": sessions,
        "inverse_nodes": len(inverse.model.graph.node),
    }


def child(path: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", str(path)]
    env = {"ONNXVIZ_CACHE": "0", "PATH": "/usr/bin:/bin"}
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT, env=env).stdout
    return json.loads(output.splitlines()[-1])


def models(args: argparse.Namespace) -> list[Path]:
    found = [ROOT / "models" / "resnet50_random.onnx"]
    if args.yolo:
        found += [args.yolo / "yolo11n.onnx", args.yolo / "yolov8n.onnx"]
    if args.fixtures:
        found += sorted((ROOT / "tests" / "fixtures" / "models").glob("*.onnx"))
    return [p for p in found if p.exists()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--yolo", type=Path, help="folder with yolo11n.onnx and yolov8n.onnx")
    parser.add_argument("--fixtures", action="store_true", help="also every model under tests/fixtures/models")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    paths = models(args)
    samples: dict[Path, list[dict[str, float]]] = {p: [] for p in paths}
    for _ in range(args.rounds):
        for path in paths:
            try:
                samples[path].append(child(path))
            except subprocess.CalledProcessError as error:  # a fixture that is meant to be refused
                print(f"{path.name}: skipped ({error.stderr.strip().splitlines()[-1][:100]})", file=sys.stderr)
                break
    rows = {p: {k: statistics.median(s[k] for s in runs) for k in runs[0]} for p, runs in samples.items() if runs}
    print("| model | nodes | weights MB | inverse nodes | load s | build wall s | build CPU s | sessions s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for path, row in sorted(rows.items(), key=lambda kv: -kv[1]["build_cpu"]):
        print(
            f"| {path.name} | {row['nodes']:.0f} | {row['weights_mb']:.1f} | {row['inverse_nodes']:.0f} | "
            f"{row['load']:.2f} | "
            f"{row['build_wall']:.3f} | {row['build_cpu']:.3f} | {row['sessions']:.2f} |"
        )
    nodes = np.array([r["nodes"] for r in rows.values()])
    megabytes = np.array([r["weights_mb"] for r in rows.values()])
    cpu = np.array([r["build_cpu"] for r in rows.values()])
    if len(rows) > 3:  # build CPU = a·nodes + b·MB of weights + c, least squares
        terms = np.stack([nodes, megabytes, np.ones_like(nodes, dtype=float)], axis=1)
        (per_node, per_mb, fixed), *_ = np.linalg.lstsq(terms, cpu, rcond=None)
        residual = np.abs(cpu - terms @ np.array([per_node, per_mb, fixed])).max()
        print(
            f"\nbuild CPU ≈ {per_node * 1e3:.2f} ms per node + {per_mb * 1e3:.2f} ms per MB of weights "
            f"+ {fixed * 1e3:.0f} ms; largest residual {residual * 1e3:.0f} ms over {len(rows)} models"
        )


if __name__ == "__main__":
    main()
