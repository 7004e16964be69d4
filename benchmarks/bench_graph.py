"""Graph layer: today's proto-based loading vs an onnx-ir prototype, and the inverse build.

Rows (each a median over interleaved rounds, A B A B …):

* ``proto load+index``: ``onnx.load`` + topological order + producer/consumer tables + initializer
  arrays + constant folding + signal marking, as ``ModelGraph`` does them (no checker, no
  normalisation: those are the same work whichever graph library holds the result);
* ``onnx-ir load+index``: the same with ``onnx_ir``: ``ir.load`` (lazy tensors), ``graph.sort()``,
  producers/uses from the IR, initializer arrays, the same folding and signal rules over IR nodes;
* ``onnx-ir to_proto``: what adopting onnx-ir for the graph layer alone adds, since the inverse
  builder, the passes and onnxruntime read protos;
* ``ModelGraph.load`` and ``inverse build`` (``build_inverse`` + ``forward_model`` for ``--node``):
  the whole of today's load + build, for scale.

  python scripts/build_vgg16.py --random
  python benchmarks/bench_graph.py [--model models/vgg16_random.onnx] [--rounds 9] [--node conv13]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import onnx
import onnx_ir as ir

from onnxviz.graph.attributes import default_opset, tensor_array
from onnxviz.graph.folding import fold_constants
from onnxviz.graph.model import ModelGraph
from onnxviz.graph.ops import NON_DIFFERENTIABLE_OPS
from onnxviz.graph.signal import mark_signal
from onnxviz.graph.topology import topological_order
from onnxviz.inverse import InverseSpec, build_inverse
from onnxviz.passes.rewrite import forward_model

REPO_ROOT = Path(__file__).resolve().parent.parent


def proto_load_index(path: Path) -> int:
    model = onnx.load(str(path))
    nodes = topological_order(model.graph)
    producer = {o: n for n in nodes for o in n.output if o}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in nodes:
        for t in n.input:
            if t:
                consumers.setdefault(t, []).append(n)
    constants = {t.name: tensor_array(t, t.name) for t in model.graph.initializer}
    fold_constants(nodes, constants, default_opset(model))
    signal = mark_signal(nodes, model.graph.input[0].name, constants)
    return len(producer) + len(consumers) + len(signal)


def ir_load_index(path: Path) -> tuple[int, ir.Model]:
    model = ir.load(str(path))
    graph = model.graph
    graph.sort()
    producer = {v.name: node for node in graph for v in node.outputs}
    consumers = {v.name: [use.node for use in v.uses()] for node in graph for v in node.inputs if v is not None}
    constants = {name: value.const_value.numpy() for name, value in graph.initializers.items()}
    # Folding: constant nodes' values; VGG16 has no constant subgraph, so the scan is the cost.
    for node in graph:
        if node.op_type == "Constant":
            constants[node.outputs[0].name] = node.attributes["value"].as_tensor().numpy()
    signal = {graph.inputs[0].name}
    for node in graph:
        if node.op_type in NON_DIFFERENTIABLE_OPS:
            continue
        if any(v is not None and v.name in signal for v in node.inputs):
            signal.update(v.name for v in node.outputs if v.name not in constants)
    return len(producer) + len(consumers) + len(signal), model


def timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def load_and_build(path: Path, node: str) -> tuple[float, float]:
    start = time.perf_counter()
    graph = ModelGraph.load(path)
    loaded = time.perf_counter()
    shape = graph.concrete_input_shape(224, 224)
    target = graph.resolve(node).tensor
    inverse = build_inverse(graph, InverseSpec(target, shape))
    outputs = [target, *(t for t in inverse.forward_tensors if t != target)]
    forward_model(graph, outputs, inverse.switches, graph.shapes(shape), inverse.masks)
    return loaded - start, time.perf_counter() - loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "vgg16_random.onnx")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--node", default="conv13")
    args = parser.parse_args()
    proto_load_index(args.model), ir_load_index(args.model)  # warm the file cache and imports
    rows: dict[str, list[float]] = {k: [] for k in ("proto", "ir", "to_proto", "load", "build")}
    ratios = []
    for _ in range(args.rounds):
        rows["proto"].append(timed(proto_load_index, args.model))
        start = time.perf_counter()
        _, model = ir_load_index(args.model)
        rows["ir"].append(time.perf_counter() - start)
        rows["to_proto"].append(timed(ir.to_proto, model))
        ratios.append(rows["ir"][-1] / rows["proto"][-1])
        load, build = load_and_build(args.model, args.node)
        rows["load"].append(load)
        rows["build"].append(build)
    names = {
        "proto": "proto load+index (today)",
        "ir": "onnx-ir load+index (prototype)",
        "to_proto": "onnx-ir to_proto (to feed the builder)",
        "load": "ModelGraph.load (today, whole)",
        "build": f"inverse build + forward_model ({args.node}, 224)",
    }
    print(f"| row | median ms | min ms |  ({args.rounds} rounds, {args.model.name})")
    print("| --- | ---: | ---: |")
    for key, label in names.items():
        print(f"| {label} | {1000 * statistics.median(rows[key]):.1f} | {1000 * min(rows[key]):.1f} |")
    print(f"median per-round ratio onnx-ir / proto load+index: {statistics.median(ratios):.2f}")
    both = [(i + t) / p for i, t, p in zip(rows["ir"], rows["to_proto"], rows["proto"], strict=True)]
    print(f"median per-round ratio (onnx-ir load+index + to_proto) / proto: {statistics.median(both):.2f}")


if __name__ == "__main__":
    main()
