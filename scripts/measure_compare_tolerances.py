"""Measure what `onnxviz compare` sees on honest conversions of the demo model, to set its tolerances.

    PYTHONPATH=. python scripts/measure_compare_tolerances.py

For the fp16, int8 QDQ and int8 QOperator conversions made by ``tests/conversions.py`` (onnxruntime's
own converters), and for a copy of the demo with one conv2 filter negated (the failure to catch),
runs ``onnxviz.compare`` (4 projected channels per layer, occlusion patch 16 stride 8) over two
input sets and prints the worst value of each measure (the occlusion correlation over maps of A
that span at least 1e-3):

* ``samples``: the six sample pictures, their mirror images, their pairwise 50/50 blends (less
  confident predictions) and the samples with Gaussian noise (σ 0.25 in preprocessed space);
* ``noise``: eight standard-normal inputs, far outside what the quantisation was calibrated on.

onnxviz runs an fp16 file in float32 (its weights are fp16, its arithmetic is not), while a GPU
runs it in half precision: the fp16 file is also run as it is by plain onnxruntime (``fp16 as
is``: activations and outputs only, no onnxviz code involved), so the fp16 tolerance covers both.
For the corrupted copy, the range over the inputs at conv2 is printed: the tolerances must stay
below its low end.
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

import onnxviz
from onnxviz.analyses._common import softmax
from onnxviz.analyses.compare.measures import Comparison, cosines, relative_errors
from tests.conversions import DEMO, demo_inputs, fp16_demo, quantized_demo

OPTIONS = {"top": 4, "occlusion": True, "patch": 16, "stride": 8}
FLAT = 1e-3  # an occlusion map of A spanning less has no meaningful correlation (compare judges it by max|Δscore|)


def inputs() -> dict[str, np.ndarray]:
    samples = np.concatenate(demo_inputs())
    rng = np.random.default_rng(0)
    blends = [(samples[i] + samples[j]) / 2 for i in range(len(samples)) for j in range(i + 1, len(samples))]
    in_distribution = np.concatenate(
        [samples, samples[:, :, :, ::-1], np.stack(blends), samples + rng.normal(0, 0.25, samples.shape)]
    ).astype(np.float32)
    noise = rng.standard_normal((8, *samples.shape[1:])).astype(np.float32)
    return {"samples": in_distribution, "noise": noise}


def worst(result: Comparison) -> str:
    """The worst value of every measure over layers and images."""
    flips = [i for i in result.images if not i.agree]
    varying = [i for i in result.images if (i.occlusion_range_a or 0) > FLAT]
    projections = [1 - la.projection_cosine.min() for la in result.layers if la.projection_cosine is not None]
    failed = [la.pair.name for la in result.layers if la.projection_error]
    return (
        f"rel.err {max(la.relative_error.max() for la in result.layers):.3g}  "
        f"1-cos {max(1 - la.cosine.min() for la in result.layers):.3g}  "
        f"1-proj.cos {max(projections, default=float('nan')):.3g}{f' (B fails at {failed})' if failed else ''}  "
        f"max|Δp| {max(i.max_dp for i in result.images):.3g}  "
        f"top-1 flips {len(flips)} (largest A margin {max((i.margin_a for i in flips), default=0):.3g})  "
        f"1-occl.corr {max((1 - i.occlusion_correlation for i in varying), default=0):.3g} "
        f"(max|Δscore| {max(i.occlusion_max_difference for i in result.images):.3g})"
    )


def at_conv2(result: Comparison) -> str:
    """The range over the inputs of each layer measure at the corrupted layer."""
    conv2 = next(la for la in result.layers if la.pair.name == "conv2")

    def span(values: np.ndarray) -> str:
        return f"{values.min():.3g} – {values.max():.3g}"

    return (
        f"at conv2: rel.err {span(conv2.relative_error)}  1-cos {span(1 - conv2.cosine)}  "
        f"1-proj.cos {span(1 - conv2.projection_cosine)}  max|Δp| {span(np.array([i.max_dp for i in result.images]))}"
    )


def exposed(path: Path, tensors: list[str]) -> ort.InferenceSession:
    """The file as it is (fp16 stays fp16) with ``tensors`` as its outputs, in plain onnxruntime."""
    model = onnx.load(path)
    del model.graph.output[:]
    model.graph.output.extend(helper.make_empty_tensor_value_info(t) for t in tensors)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def as_is(path: Path, result: Comparison, xs: np.ndarray) -> str:
    """Activations and outputs of the file run in its own precision against the original's."""
    logits = onnx.load(DEMO).graph.output[0].name
    tensors = [logits, *(la.pair.tensor_b for la in result.layers)]
    a = exposed(DEMO, tensors).run(None, {"input": xs})
    b = exposed(path, tensors).run(None, {"input": xs.astype(np.float16)})
    flat = [
        (va.astype(np.float64).reshape(len(xs), -1), vb.astype(np.float64).reshape(len(xs), -1))
        for va, vb in zip(a, b, strict=True)
    ]
    p_a, p_b = softmax(flat[0][0]), softmax(flat[0][1])
    maps = [
        occlusion_maps(exposed(file, [logits]), x, target)
        for file in (DEMO, path)
        for x, target in zip(xs, p_a.argmax(1), strict=True)
    ]
    varying = [(a, b) for a, b in zip(maps[: len(xs)], maps[len(xs) :], strict=True) if np.ptp(a) > FLAT]
    correlation = max((1 - cosines((a - a.mean())[None], (b - b.mean())[None])[0] for a, b in varying), default=0)
    return (
        f"rel.err {max(relative_errors(va, vb).max() for va, vb in flat[1:]):.3g}  "
        f"1-cos {max((1 - cosines(va, vb)).max() for va, vb in flat[1:]):.3g}  "
        f"max|Δp| {np.abs(p_a - p_b).max():.3g}  top-1 flips {int((p_a.argmax(1) != p_b.argmax(1)).sum())}  "
        f"1-occl.corr {correlation:.3g}"
    )


def occlusion_maps(runner: ort.InferenceSession, x: np.ndarray, target: int) -> np.ndarray:
    """A's top-1 probability with each 16×16 patch (stride 8) zeroed, in numpy and plain onnxruntime."""
    patch, stride = OPTIONS["patch"], OPTIONS["stride"]
    rows, cols = (x.shape[1] - patch) // stride + 1, (x.shape[2] - patch) // stride + 1
    batch = np.repeat(x[None], rows * cols, axis=0)
    for k in range(rows * cols):
        r, c = divmod(k, cols)
        batch[k, :, r * stride : r * stride + patch, c * stride : c * stride + patch] = 0
    dtype = np.float16 if runner.get_inputs()[0].type == "tensor(float16)" else np.float32
    logits = runner.run(None, {"input": batch.astype(dtype)})[0].astype(np.float64)
    return softmax(logits.reshape(len(batch), -1))[:, target]


def corrupted(path: Path) -> Path:
    model = onnx.load(DEMO)
    for tensor in model.graph.initializer:
        if tensor.name == "features.conv2.weight":
            weights = numpy_helper.to_array(tensor).copy()
            weights[3] *= -1
            tensor.CopyFrom(numpy_helper.from_array(weights, tensor.name))
    onnx.save(model, path)
    return path


def main() -> None:
    sets = inputs()
    original = onnxviz.load(DEMO, device="cpu")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        conversions = {
            "fp16": fp16_demo(folder / "fp16.onnx"),
            "int8 QDQ": quantized_demo(folder / "qdq.onnx", "QDQ"),
            "int8 QOp": quantized_demo(folder / "qop.onnx", "QOperator"),
            "corrupted": corrupted(folder / "corrupted.onnx"),
        }
        for name, path in conversions.items():
            converted = onnxviz.load(path, device="cpu")
            for set_name, xs in sets.items():
                result = onnxviz.compare(original, converted, list(xs[:, None]), **OPTIONS)
                print(f"{name:10} {set_name:8} n={len(xs):3}  {worst(result)}")
                if name == "fp16":
                    print(f"{'fp16 as is':10} {set_name:8} n={len(xs):3}  {as_is(path, result, xs)}")
                if name == "corrupted":
                    print(f"{'':10} {set_name:8}        {at_conv2(result)}")


if __name__ == "__main__":
    main()
