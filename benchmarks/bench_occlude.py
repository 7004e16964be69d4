"""Time occlusion sensitivity on a VGG16-sized model at 224x224 on the CPU, beside captum.

    python benchmarks/bench_occlude.py [--model models/vgg16_hed.onnx] [--rounds 2] [--batch 16]

Patch 32 at strides 16 (169 positions) and 8 (625 positions). The score is the total activation
of one conv13 (relu5_3) feature map, the paper's map (b), since the bundled VGG16 is a feature
extractor. Rows, interleaved in every round:

  onnxviz batch 1        every position a separate run of the full network
  onnxviz batched        positions in batches through one session
  onnxviz incremental    only the region each patch changes, per layer (exact)
  captum Occlusion       the same score as a torch module, perturbations_per_eval = the batch

Also measured in the same run: this machine's float32 GEMM peak (onnxruntime MatMul 2048³),
and the fraction of it each row achieves counting the full network's FLOPs per position.
captum and torch are dev-only tools: `pip install torch==2.13.0 captum`.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

import onnxviz
from onnxviz.targets.tensors import ChannelTarget

ROOT = Path(__file__).resolve().parents[1]


def gemm_peak_gflops(repeats: int = 5) -> float:
    """Best float32 throughput of onnxruntime on a large MatMul (2048³) and a large 3x3 Conv:
    the ceiling the occlusion rows can be compared with."""
    rng = np.random.default_rng(0)
    size = 2048
    matmul = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "gemm",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])],
    )
    a = rng.standard_normal((size, size)).astype(np.float32)
    conv = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 256, 56, 56])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[onnx.numpy_helper.from_array(rng.standard_normal((256, 256, 3, 3)).astype(np.float32), "w")],
    )
    x = rng.standard_normal((4, 256, 56, 56)).astype(np.float32)
    best = 0.0
    for graph, feeds, flops in (
        (matmul, {"a": a, "b": a}, 2 * size**3),
        (conv, {"x": x}, 2 * 4 * 256 * 256 * 9 * 56 * 56),
    ):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        session.run(None, feeds)
        fastest = min(_timed(lambda s=session, f=feeds: s.run(None, f)) for _ in range(repeats))
        best = max(best, flops / fastest / 1e9)
    return best


def conv_gflop(path: Path, tensor: str) -> float:
    """FLOPs (2 per multiply-add) of the convolutions up to ``tensor``, for one image."""
    graph = onnxviz.load(path, device="cpu").graph
    shapes = graph.shapes(graph.concrete_input_shape())
    needed = graph.ancestors([tensor])
    total = 0
    for node in graph.nodes:
        if node.op_type == "Conv" and node.name in needed:
            weights = graph.constants[node.input[1]]
            total += 2 * np.prod(shapes[node.output[0]]) * np.prod(weights.shape[1:])
    return total / 1e9


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--strides", type=int, nargs="+", default=[16, 8])
    parser.add_argument("--no-batch1-at", type=int, nargs="*", default=[8], help="strides that skip the batch-1 row")
    args = parser.parse_args(argv)
    path = args.model or next(
        (p for p in (ROOT / "models" / "vgg16_hed.onnx", ROOT / "models" / "vgg16_random.onnx") if p.exists()), None
    )
    if path is None:
        print("no VGG16 model: run `python scripts/build_vgg16.py` (or --random) first")
        return 1
    import skimage.data

    model = onnxviz.load(path, device="cpu", preset="caffe")
    x = model.prepare(skimage.data.chelsea())[0]
    node, channel = "conv13", 441
    target = ChannelTarget(node, channel)
    tensor = model.resolve(node).tensor
    peak = gemm_peak_gflops()
    per_image = conv_gflop(path, tensor)

    captum_row = None
    if importlib.util.find_spec("captum") is not None:
        import torch
        from captum.attr import Occlusion

        spec = importlib.util.spec_from_file_location("torch_deconvnet", ROOT / "scripts" / "torch_deconvnet.py")
        reference = importlib.util.module_from_spec(spec)
        sys.modules["torch_deconvnet"] = reference
        spec.loader.exec_module(reference)
        torch.set_num_threads(2)
        sub = reference.onnx_to_torch(onnx.load(str(path))).upto(tensor).eval()
        for p in sub.parameters():
            p.requires_grad_(False)
        occlusion = Occlusion(lambda batch: sub(batch)[:, channel].sum(dim=(1, 2)))
        xt = torch.from_numpy(x)

        def captum_row(stride: int) -> None:
            with torch.no_grad():
                occlusion.attribute(
                    xt,
                    sliding_window_shapes=(3, 32, 32),
                    strides=(3, stride, stride),
                    baselines=0.0,
                    perturbations_per_eval=args.batch,
                )

    results: dict[str, list[float]] = {}
    checks = {}
    for stride in args.strides:
        positions = ((224 - 32) // stride + 1) ** 2
        rows = {
            "onnxviz batched": lambda s=stride: model.occlude(
                x, patch=32, stride=s, target=target, batch_size=args.batch, incremental=False
            ),
            "onnxviz incremental": lambda s=stride: model.occlude(
                x, patch=32, stride=s, target=target, batch_size=args.batch, incremental=True
            ),
        }
        if stride not in args.no_batch1_at:
            rows["onnxviz batch 1"] = lambda s=stride: model.occlude(
                x, patch=32, stride=s, target=target, batch_size=1, incremental=False
            )
        if captum_row is not None:
            rows["captum Occlusion"] = lambda s=stride: captum_row(s)
        full = model.occlude(x, patch=32, stride=stride, target=target, batch_size=args.batch, incremental=False)
        fast = model.occlude(x, patch=32, stride=stride, target=target, batch_size=args.batch, incremental=True)
        checks[stride] = float(np.abs(fast.scores - full.scores).max() / np.abs(full.scores).max())
        for _ in range(args.rounds):
            for name, fn in rows.items():
                results.setdefault(f"{name} @ stride {stride} ({positions} positions)", []).append(_timed(fn))

    print(
        f"model {path.name}, score: total activation of {node} ({tensor}) channel {channel}, patch 32, "
        f"batch {args.batch}, {args.rounds} rounds"
    )
    print(
        f"float32 peak (best of onnxruntime MatMul 2048^3 and a 3x3 Conv): {peak:.0f} GFLOP/s; "
        f"conv FLOPs per image: {per_image:.1f} GFLOP"
    )
    for stride, error in checks.items():
        print(f"incremental vs full at stride {stride}: max relative difference {error:.1e}")
    print("\n% peak: full-network FLOPs per position / time / peak (above 100 % = less computed)")
    print(f"{'row':58s} {'median s':>9s} {'pos/s':>7s} {'% peak':>7s}")
    for name, values in results.items():
        positions = int(name.split("(")[1].split()[0]) + 1
        median = statistics.median(values)
        effective = per_image * positions / median
        print(f"{name:58s} {median:9.2f} {positions / median:7.2f} {100 * effective / peak:6.0f}%")

    def ratio(a: str, b: str) -> float:
        return statistics.median(y / x for x, y in zip(results[a], results[b], strict=True))

    print("\nmedian per-round speed-ups")
    for stride in args.strides:
        positions = ((224 - 32) // stride + 1) ** 2
        key = lambda row, s=stride, p=positions: f"{row} @ stride {s} ({p} positions)"  # noqa: E731
        speedup = ratio(key("onnxviz incremental"), key("onnxviz batched"))
        print(f"  stride {stride}: incremental / batched = {speedup:.2f}x")
        if key("onnxviz batch 1") in results:
            print(
                f"  stride {stride}: batched / batch 1 = {ratio(key('onnxviz batched'), key('onnxviz batch 1')):.2f}x"
            )
        if key("captum Occlusion") in results:
            print(
                f"  stride {stride}: batched / captum = {ratio(key('onnxviz batched'), key('captum Occlusion')):.2f}x, "
                f"incremental / captum = {ratio(key('onnxviz incremental'), key('captum Occlusion')):.2f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
