"""Activation maximisation on a detector layer: the gradient it ascends is the layer's own, and
the default ascent raises the objective on the seeded YOLO11n.

A run with the ImageNet preset once lowered the objective of some channels of this layer: the
gradient equals central differences (below), but an ultralytics export takes RGB/255, so the
ImageNet normalisation made every Adam step about 4.4× larger in the model's own units than
ultralytics' preprocessing would, on a seeded (untrained) network whose objective changes sign
within a few thousandths of the input range. Ultralytics exports now load with the ``raw`` preset.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import onnxviz
from onnxviz.analyses.maximize.analysis import objective_gradient
from onnxviz.analyses.maximize.options import MaximizeOptions
from tests.helpers import FIXTURES

YOLO = FIXTURES / "yolo11n_tiny.onnx"
LAYERS = ["conv48", "conv79"]  # the neck map gradcam reads (model.16), and the P5 box branch's last SiLU


@pytest.fixture(scope="module")
def model() -> onnxviz.Model:
    return onnxviz.load(YOLO, device="cpu")


def test_an_ultralytics_export_loads_with_its_own_preprocessing(model) -> None:
    assert (model.preprocessing.scale, model.preprocessing.mean, model.preprocessing.std) == (
        1 / 255,
        (0.0, 0.0, 0.0),
        (1.0, 1.0, 1.0),
    )
    assert onnxviz.load(YOLO, device="cpu", preset="imagenet").preprocessing.std == (0.229, 0.224, 0.225)


def test_the_gradient_on_a_detector_layer_equals_central_differences(model) -> None:
    """Along a smooth direction (8 × 8 noise upsampled): along pixel noise the seeded network is
    so curved that differences at 1e-3 are not yet converged (the P5 branch, conv79: 5.1, 6.5 at
    3e-4, the gradient's 7.7; torch autograd checks that gradient in ``test_detectors.py``)."""
    x = np.load(FIXTURES.parent / "detectors" / "yolo11n_tiny.npz")["x"]
    options = MaximizeOptions(node="conv48", channels=[0, 3])
    images = np.concatenate([x, x[:, :, ::-1]]).astype(np.float64)
    _, gradient = objective_gradient(model, images.astype(np.float32), options)
    coarse = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    direction = np.stack(
        [[cv2.resize(c, (128, 128), interpolation=cv2.INTER_CUBIC) for c in image] for image in coarse]
    )
    eps = 1e-3
    above, _ = objective_gradient(model, (images + eps * direction).astype(np.float32), options)
    below, _ = objective_gradient(model, (images - eps * direction).astype(np.float32), options)
    difference = (above - below) / (2 * eps)
    along = (gradient * direction).reshape(2, -1).sum(axis=1)
    np.testing.assert_allclose(along, difference, rtol=0.02)


@pytest.mark.parametrize("node", LAYERS)
def test_the_default_ascent_raises_the_channels_of_a_detector_layer(model, node) -> None:
    result = model.maximize(node=node, channels=list(range(8)), steps=16, seed=0)
    start, final = result.curve[0], result.curve[-1]
    assert (final > start).sum() >= 7, (start, final)  # one channel of conv79 dips by 0.012 at step 16
    assert (final - start).mean() > 0.02
    small = model.maximize(node=node, channels=list(range(8)), steps=16, seed=0, lr=0.01)
    assert (small.curve[-1] > small.curve[0]).all(), (small.curve[0], small.curve[-1])
