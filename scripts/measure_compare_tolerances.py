"""Measure what `onnxviz compare` sees on honest conversions of the demo model, to set its tolerances.

    PYTHONPATH=. python scripts/measure_compare_tolerances.py

For the fp16 and int8 (QDQ, QOperator) conversions made by ``tests/conversions.py`` (onnxruntime's
own converters), and for a copy of the demo with one conv2 filter negated (the failure to catch),
prints the worst value of each compare measure over two input sets:

* ``samples``: the six sample pictures, their mirror images, their pairwise 50/50 blends (less
  confident predictions) and the samples with Gaussian noise (σ 0.25 in preprocessed space);
* ``noise``: eight standard-normal inputs, far outside what the quantisation was calibrated on.

Every measure is computed here from plain onnxruntime sessions, independently of
``onnxviz.analyses.compare``: activations at the tensors compare pairs (where the next layer
reads them), the output softmax, and occlusion maps made in numpy. Projections need an inverse
graph of the converted model; they are made from a float32 twin of it (fp16 weights widened;
int8 weights dequantized and each activation quantize→dequantize pair replaced by what it does
in float: a ReLU when its range starts at 0, else nothing) fed with the *converted* model's own
activations and MaxPool switches, so the activation rounding reaches the projections.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from onnxviz.analyses.compare import cosines, pair_layers, relative_errors, softmax
from onnxviz.model import ModelGraph
from onnxviz.project import Projector, channel_strengths
from onnxviz.runtime import choose_device
from tests.conversions import DEMO, demo_inputs, fp16_demo, quantized_demo

TOP = 4
PATCH, STRIDE = 16, 8


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def exposing(model: onnx.ModelProto, tensors: list[str], switches: dict[str, str] | None = None) -> onnx.ModelProto:
    """A copy whose outputs are ``tensors`` (and MaxPool indices named by ``switches``)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for node in copy.graph.node:
        if switches and node.name in switches:
            node.output.append(switches[node.name])
    del copy.graph.output[:]
    names = [*tensors, *(switches or {}).values()]
    copy.graph.output.extend(helper.make_empty_tensor_value_info(t) for t in dict.fromkeys(names))
    return copy


def run(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    runner = session(model)
    dtype = np.float16 if runner.get_inputs()[0].type == "tensor(float16)" else np.float32
    values = runner.run(None, {runner.get_inputs()[0].name: x.astype(dtype)})
    return dict(zip([o.name for o in runner.get_outputs()], values, strict=True))


def float_twin(model: onnx.ModelProto) -> onnx.ModelProto:
    """The converted model in float32 with the same tensor and node names (see the module docstring)."""
    twin = onnx.ModelProto()
    twin.CopyFrom(model)
    graph = twin.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kept, produced = [], {}
    for node in graph.node:
        if node.op_type == "Cast" and any(a.name == "to" for a in node.attribute):
            node = helper.make_node("Identity", [node.input[0]], [node.output[0]], name=node.name)
        if node.op_type == "DequantizeLinear" and node.input[0] in constants:
            scale, zero = constants[node.input[1]], constants[node.input[2]]
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            values = constants[node.input[0]].astype(np.float32)
            shape = [1] * values.ndim
            if scale.ndim == 1 and values.ndim > 1:
                shape[axis] = -1
            weight = (values - zero.astype(np.float32).reshape(shape)) * scale.reshape(shape)
            constants[node.output[0]] = weight.astype(np.float32)
            continue
        if node.op_type == "QuantizeLinear":
            produced[node.output[0]] = node
            continue
        if node.op_type == "DequantizeLinear" and node.input[0] in produced:
            quantize = produced[node.input[0]]
            zero = constants[quantize.input[2]]
            clamps = zero.dtype == np.uint8 and not zero.any()
            op = "Relu" if clamps else "Identity"
            kept.append(helper.make_node(op, [quantize.input[0]], [node.output[0]], name=node.name))
            continue
        kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    used = {i for n in kept for i in n.input}
    del graph.initializer[:]
    for name, value in constants.items():
        if name in used:
            value = value.astype(np.float32) if value.dtype == np.float16 else value
            graph.initializer.append(numpy_helper.from_array(value, name))
    for value_info in [*graph.input, *graph.output]:
        if value_info.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16:
            value_info.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    del graph.value_info[:]
    return twin


def inputs() -> dict[str, np.ndarray]:
    samples = np.concatenate(demo_inputs())
    rng = np.random.default_rng(0)
    blends = [(samples[i] + samples[j]) / 2 for i in range(len(samples)) for j in range(i + 1, len(samples))]
    in_distribution = np.concatenate(
        [
            samples,
            samples[:, :, :, ::-1],
            np.stack(blends),
            samples + rng.normal(0, 0.25, samples.shape),
        ]
    ).astype(np.float32)
    noise = rng.standard_normal((8, *samples.shape[1:])).astype(np.float32)
    return {"samples": in_distribution, "noise": noise}


def occlusion_maps(model: onnx.ModelProto, x: np.ndarray, logits: str, target: int) -> np.ndarray:
    rows = (x.shape[1] - PATCH) // STRIDE + 1
    cols = (x.shape[2] - PATCH) // STRIDE + 1
    batch = np.repeat(x[None], rows * cols, axis=0)
    for k in range(rows * cols):
        r, c = divmod(k, cols)
        batch[k, :, r * STRIDE : r * STRIDE + PATCH, c * STRIDE : c * STRIDE + PATCH] = 0
    out = run(model, batch)[logits].astype(np.float64)
    return softmax(out.reshape(len(out), -1))[:, target]


def measure(name: str, converted: onnx.ModelProto, sets: dict[str, np.ndarray]) -> None:
    original = onnx.load(DEMO)
    graph_a, graph_b = ModelGraph.from_proto(original), ModelGraph.from_proto(converted)
    shape = (1, 3, 64, 64)
    pairs, notes = [], ["QOperator layers hold quantized integers: outputs and occlusion only"]
    if not any(n.op_type.startswith("QLinear") for n in converted.graph.node):
        pairs, notes = pair_layers(graph_a, graph_b, graph_a.shapes(shape), graph_b.shapes(shape))
    logits_a, logits_b = graph_a.output_names[0], graph_b.output_names[0]
    twin = ModelGraph.from_proto(float_twin(converted)) if pairs else None
    device = choose_device("cpu")
    for set_name, xs in sets.items():
        a = run(exposing(original, [logits_a, *(p.tensor_a for p in pairs)]), xs)
        b = run(exposing(converted, [logits_b, *(p.tensor_b for p in pairs)]), xs)
        p_a, p_b = softmax(a[logits_a].astype(np.float64)), softmax(b[logits_b].astype(np.float64))
        flips = int((p_a.argmax(1) != p_b.argmax(1)).sum())
        margin = np.sort(p_a, 1)[:, -1] - np.sort(p_a, 1)[:, -2]
        flipped_margin = float(margin[p_a.argmax(1) != p_b.argmax(1)].max()) if flips else 0.0
        print(
            f"{name:10} {set_name:8} n={len(xs):3}  top-1 flips {flips} (largest A margin among them "
            f"{flipped_margin:.3g})  max|Δp| {np.abs(p_a - p_b).max():.3g}"
        )
        for pair in pairs:
            va = a[pair.tensor_a].astype(np.float64).reshape(len(xs), -1)
            vb = b[pair.tensor_b].astype(np.float64).reshape(len(xs), -1)
            line = (
                f"    {pair.name:6} rel.err {relative_errors(va, vb).max():.3g}  1-cos {1 - cosines(va, vb).min():.3g}"
            )
            projector = Projector(graph_a, pair.tensor_a, shape, "deconvnet", device)
            twin_projector = Projector(twin, pair.tensor_b, shape, "deconvnet", device)
            worst = 0.0
            for x in xs[:12]:
                x = x[None]
                forward_a = projector.forward(x, graph_a.input_name)
                activation = forward_a[pair.tensor_a].numpy()
                chosen = np.argsort(-channel_strengths(activation), kind="stable")[:TOP].astype(np.int64)
                projected_a = projector.invert(activation, chosen, forward_a)
                wanted = [pair.tensor_b, *twin_projector.inverse.forward_tensors]
                forward_b = run(exposing(converted, wanted, twin_projector.inverse.switches), x)
                forward_b = {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in forward_b.items()}
                projected_b = twin_projector.invert(forward_b[pair.tensor_b], chosen, forward_b)
                distance = 1 - cosines(projected_a.reshape(TOP, -1), projected_b.reshape(TOP, -1)).min()
                worst = max(worst, float(distance))
            print(line + f"  1-projection cos {worst:.3g} (first 12 inputs)")
        rows = []
        for x, target in list(zip(xs, p_a.argmax(1), strict=True))[:12]:
            map_a = occlusion_maps(original, x, logits_a, target)
            map_b = occlusion_maps(converted, x, logits_b, target)
            correlation = cosines((map_a - map_a.mean())[None], (map_b - map_b.mean())[None])[0]
            rows.append((1 - correlation, np.ptp(map_a), np.abs(map_a - map_b).max()))
        print(f"    occlusion ({PATCH}/{STRIDE}, first 12 inputs): max|Δscore| {max(r[2] for r in rows):.3g}")
        for distance, spread, difference in sorted(rows, reverse=True)[:3]:
            print(f"      1-corr {distance:.3g} where A's map spans {spread:.3g} (max|Δscore| {difference:.3g})")
    for line in notes:
        print(f"    note: {line}")


def corrupted() -> onnx.ModelProto:
    model = onnx.load(DEMO)
    for tensor in model.graph.initializer:
        if tensor.name == "features.conv2.weight":
            weights = numpy_helper.to_array(tensor).copy()
            weights[3] *= -1
            tensor.CopyFrom(numpy_helper.from_array(weights, tensor.name))
    return model


def main() -> None:
    sets = inputs()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        conversions = {
            "fp16": onnx.load(fp16_demo(folder / "fp16.onnx")),
            "int8 QDQ": onnx.load(quantized_demo(folder / "qdq.onnx", "QDQ")),
            "int8 QOp": onnx.load(quantized_demo(folder / "qop.onnx", "QOperator")),
            "corrupted": corrupted(),
        }
        for name, model in conversions.items():
            measure(name, model, sets)


if __name__ == "__main__":
    main()
