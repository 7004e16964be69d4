"""onnxviz reproduces the shared reference picture of a trained VGG16 (pixel for pixel).

Needs the trained network (``python scripts/build_vgg16.py``, not committed: 59 MB) and the
reference picture beside the project (``../shared/reference``); skipped where either is missing.
The protocol is the reference's own (its README): 224x224 bilinear resize, BGR minus the mean,
the channel with the largest activation inside the map less a border of 1/8, the whole map
seeded, shown as p / max|p| · 127 + 128 (truncated), BGR → RGB.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import onnxviz

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "vgg16_hed.onnx"
PICTURE = ROOT.parent / "shared" / "reference" / "hed_vgg16_deconvnet.png"
IMAGES = ("chelsea", "astronaut", "coffee")
LAYERS = ("relu2_2", "relu3_3", "relu4_3", "relu5_3")
MEAN_BGR = np.array([104.00699, 116.66877, 122.67891], np.float32)

pytestmark = pytest.mark.skipif(
    not (MODEL.exists() and PICTURE.exists()),
    reason="needs models/vgg16_hed.onnx (scripts/build_vgg16.py) and the shared reference",
)


def _display(p: np.ndarray) -> np.ndarray:
    shown = np.clip(p / np.abs(p).max() * 127.0 + 128.0, 0, 255).astype(np.uint8)
    return shown.transpose(1, 2, 0)[:, :, ::-1]


def test_deconvnet_projections_match_the_reference_picture() -> None:
    import skimage.data

    model = onnxviz.load(MODEL, device="cpu", preset="caffe")
    reference = cv2.cvtColor(cv2.imread(str(PICTURE)), cv2.COLOR_BGR2RGB)
    differing = 0
    for row, name in enumerate(IMAGES):
        rgb = cv2.resize(getattr(skimage.data, name)(), (224, 224), interpolation=cv2.INTER_LINEAR)
        x = (rgb[:, :, ::-1].astype(np.float32) - MEAN_BGR).transpose(2, 0, 1)[None]
        for column, layer in enumerate(LAYERS, start=1):
            forward = model.projector(layer, "deconvnet", model.input_shape()).forward(x, "input")
            maps = forward[layer].numpy()[0]
            border = maps.shape[1] // 8
            inner = maps[:, border : maps.shape[1] - border, border : maps.shape[2] - border]
            channel = int(inner.reshape(inner.shape[0], -1).max(axis=1).argmax())
            projection = model.project(x, layer, channels=[channel]).projections[0]
            tile = reference[row * 224 : (row + 1) * 224, column * 224 : (column + 1) * 224]
            difference = np.abs(_display(projection).astype(int) - tile.astype(int))
            assert difference.max() <= 1, f"{name} {layer}: max difference {difference.max()}"
            differing += int((difference > 0).sum())
    assert differing < 0.001 * 3 * 4 * 224 * 224 * 3
