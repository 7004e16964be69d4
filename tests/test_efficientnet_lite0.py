"""onnxviz on a real ImageNet classifier: EfficientNet-Lite0 built by ``scripts/build_efficientnet_lite0.py``.

The model is not committed (18.6 MB; CI does not build it), so every test here skips when
``models/efficientnet_lite0.onnx`` is absent. Where it exists, the photo of a cat must be read
as a cat through onnxviz's own preprocessing (the ``tf`` preset from the model's metadata), with
the same probability a plain onnxruntime session gives on a tensor made here from the preset's
definition, and ``check`` must project every conv layer.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from tests.cli_helpers import run_cli
from tests.helpers import ROOT as REPO_ROOT

MODEL = REPO_ROOT / "models" / "efficientnet_lite0.onnx"
CHELSEA = REPO_ROOT / "models" / "images" / "chelsea.png"
CAT_CLASSES = {281: "tabby", 282: "tiger cat", 283: "Persian cat", 284: "Siamese cat", 285: "Egyptian cat"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not MODEL.is_file(), reason="run scripts/build_efficientnet_lite0.py to build the model"),
]


def reference_probabilities(path) -> np.ndarray:
    """Softmax of a plain onnxruntime run on the picture made into the ``tf`` input by hand.

    RGB, resized to 224 × 224 (INTER_AREA, as a picture larger than the input on either side
    is), ``x / 127.5 − 1``, NCHW: the normalisation the EfficientNet-Lite weights were trained on.
    """
    picture = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    picture = cv2.resize(picture, (224, 224), interpolation=cv2.INTER_AREA)
    tensor = (picture.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None].copy()
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: tensor})
    exp = np.exp(logits[0].astype(np.float64) - logits[0].max())
    return exp / exp.sum()


def test_metadata_names_the_imagenet_classes_and_the_tf_preset() -> None:
    meta = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    labels = json.loads(meta["onnxviz.labels"])
    assert len(labels) == 1000 and labels[0] == "tench" and labels[999] == "toilet tissue"
    assert {i: labels[i] for i in CAT_CLASSES} == CAT_CLASSES
    assert meta["onnxviz.preset"] == "tf"


def test_chelsea_is_a_cat_through_onnxviz_preprocessing(capsys) -> None:
    expected = reference_probabilities(CHELSEA)
    code, out, _ = run_cli(capsys, "occlude", MODEL, CHELSEA, "--patch", "112", "--stride", "112", "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["target"] in CAT_CLASSES
    assert summary["target"] == int(expected.argmax())
    assert summary["target_label"] == CAT_CLASSES[summary["target"]]
    assert summary["unoccluded_score"] == pytest.approx(expected[summary["target"]], abs=1e-5)


def test_check_projects_every_conv_layer(capsys) -> None:
    code, out, _ = run_cli(capsys, "check", MODEL, "--json")
    summary = json.loads(out)
    assert code == 0 and summary["ok"] is True
    assert len(summary["layers"]) == 49  # the stem, 2 in the first MBConv block, 3 in each of the other 15, the head
    assert all(layer["ok"] for layer in summary["layers"]), [layer for layer in summary["layers"] if not layer["ok"]]
