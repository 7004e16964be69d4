"""Would one onnxruntime session for the forward and the inverse make a maximisation step faster?

    python benchmarks/bench_maximize_merged.py [--model models/vgg16_random.onnx] [--node conv10]
                                               [--k 8] [--rounds 4]

The gradient engine's two stored graphs (forward with switches, paired saliency inverse) are
merged with ``onnx.compose.merge_models``: the forward tensors the inverse reads are joined inside
the graph instead of leaving as outputs. Both ways run the same K inputs and seed, interleaved;
the script checks they give the same gradient and prints the median per-round ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import compose

import onnxviz
from onnxviz.runtime.gradient import GradientEngine

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "vgg16_random.onnx")
    parser.add_argument("--node", default="conv10")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["ONNXVIZ_CACHE_DIR"] = cache
        model = onnxviz.load(args.model, device="cpu")
        shape = model.input_shape()
        GradientEngine(model.graph, model.resolve(args.node).tensor, shape, model.device)  # stores its graphs
        (entry,) = [p.parent for p in Path(cache).glob("*/manifest.json")]
        forward, inverse = onnx.load(entry / "forward.onnx"), onnx.load(entry / "inverse.onnx")
    joined = [(i.name, "inv/" + i.name) for i in inverse.graph.input if i.name != "seed"]
    prefixed = compose.add_prefix(inverse, "inv/")
    forward.ir_version = prefixed.ir_version = max(forward.ir_version, prefixed.ir_version)
    merged = compose.merge_models(forward, prefixed, io_map=joined)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    sessions = [ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
                for m in (forward, inverse, merged)]  # fmt: skip
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.k, *shape[1:])).astype(np.float32)
    seed_dims = [d.dim_value for d in inverse.graph.input[0].type.tensor_type.shape.dim][1:]
    seed = rng.standard_normal((args.k, *seed_dims)).astype(np.float32)
    input_name, outputs = forward.graph.input[0].name, [o.name for o in forward.graph.output]

    def separate() -> np.ndarray:
        found = dict(zip(outputs, sessions[0].run(None, {input_name: x}), strict=True))
        feeds = {"seed": seed, **{i.name: found[i.name] for i in inverse.graph.input if i.name != "seed"}}
        return sessions[1].run(None, feeds)[0]

    def together() -> np.ndarray:
        names = [o.name for o in merged.graph.output]
        found = sessions[2].run(None, {input_name: x, "inv/seed": seed})
        return found[names.index("inv/" + inverse.graph.output[0].name)]

    print(f"largest difference of the gradients: {float(np.abs(separate() - together()).max()):.3g}")
    times: dict[str, list[float]] = {"two sessions": [], "one merged session": []}
    for _ in range(args.rounds):
        for label, step in (("two sessions", separate), ("one merged session", together)):
            started = time.perf_counter()
            step()
            times[label].append(time.perf_counter() - started)
    for label, values in times.items():
        print(f"{label}: median {statistics.median(values):.2f} s ({', '.join(f'{v:.2f}' for v in values)})")
    ratios = [a / b for a, b in zip(times["two sessions"], times["one merged session"], strict=True)]
    print(f"median per-round ratio two / merged: {statistics.median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
