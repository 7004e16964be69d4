"""The demo model as users convert it: fp16, int8 QDQ and int8 QOperator.

Made on the fly from ``models/demo.onnx`` with onnxruntime's own converters (the tools users run),
so no converted copy is committed. Calibration uses the bundled sample pictures, preprocessed the
way onnxviz preprocesses them, so the quantisation ranges are the ones real inputs see.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "models" / "demo.onnx"
IMAGES = ROOT / "models" / "images"


def demo_inputs() -> list[np.ndarray]:
    """The sample pictures as (1, 3, 64, 64) float32 tensors with the demo model's preprocessing."""
    import onnxviz

    model = onnxviz.load(DEMO, device="cpu")
    return [model.prepare(path)[0] for path in sorted(IMAGES.glob("*.png"))]


def fp16_demo(path: Path) -> Path:
    """``onnxruntime.transformers.float16`` with its defaults: weights, activations and I/O in fp16."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(DEMO)), path)
    return path


def quantized_demo(path: Path, quant_format: str) -> Path:
    """Static int8 quantisation, ``quant_format`` "QDQ" or "QOperator", calibrated on the samples."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Samples(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter([{"input": x} for x in demo_inputs()])

        def get_next(self):
            return next(self._feeds, None)

    quantize_static(
        str(DEMO),
        str(path),
        Samples(),
        quant_format=QuantFormat.QDQ if quant_format == "QDQ" else QuantFormat.QOperator,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return path
