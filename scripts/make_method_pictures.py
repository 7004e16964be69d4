#!/usr/bin/env python
"""Draw the picture of every ``cam`` and ``attribute`` method for its page under ``docs/methods/``.

Each picture has three rows, one result each, as ``Result.figure()`` draws it:

- EfficientNet-Lite0 (``scripts/build_efficientnet_lite0.py``, real ImageNet weights) on
  scikit-image's ``chelsea`` and ``coffee`` photos, explaining each photo's top-1 class;
- the HED VGG16 (``scripts/build_vgg16.py``, real weights of an edge detector, no classes) on
  scikit-image's ``astronaut``, explaining the total activation of the ``conv5_3`` channel that
  responds most to the photo (a ``ChannelTarget``); its cams read ``relu4_3`` (28 × 28), and its
  rise draws 1,000 masks (a VGG16 forward at 224 costs about 20 Lite0 ones), not the default 4,000.

The photos are CC0 (scikit-image's data). Writes ``docs/images/methods/METHOD.jpg`` (``+`` spelled ``-plus``) (JPEG,
quality 80, at most 900 pixels wide). Usage::

    python scripts/build_efficientnet_lite0.py && python scripts/build_vgg16.py
    python scripts/make_method_pictures.py [--methods gradcam ig ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
from skimage import data

import onnxviz
from onnxviz.analyses.attribute.options import METHODS as ATTRIBUTION_METHODS
from onnxviz.analyses.cam.methods import METHODS as CAM_METHODS
from onnxviz.render import pictures as render
from onnxviz.targets.tensors import ChannelTarget

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images" / "methods"
LITE0 = ROOT / "models" / "efficientnet_lite0.onnx"
HED = ROOT / "models" / "vgg16_hed.onnx"
HED_TARGET_LAYER, HED_CAM_LAYER = "conv5_3", "relu4_3"
HED_RISE_MASKS = 1000
WIDTH = 900


def photos(folder: Path) -> dict[str, Path]:
    """The CC0 photos as PNG files (the analyses take paths and keep their names)."""
    found = {}
    for name in ("chelsea", "coffee", "astronaut"):
        path = folder / f"{name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(getattr(data, name)(), cv2.COLOR_RGB2BGR))
        found[name] = path
    return found


def strongest_channel(model: onnxviz.Model, photo: Path) -> int:
    """The channel of the HED target layer with the largest total activation on the photo."""
    x, _, shape = model.prepare(photo)
    value = model.forward_runner(model.resolve(HED_TARGET_LAYER).tensor, shape).run(x[None] if x.ndim == 3 else x)[0]
    return int(value[0].reshape(value.shape[1], -1).sum(axis=1).argmax())


def explained(model: onnxviz.Model, method: str, photo: Path, target: object, layer: str | None) -> np.ndarray:
    """One result's own figure: cam methods over the picture, attributions beside it."""
    if method in CAM_METHODS:
        options = {"layer": [layer]} if layer else {}
        return model.cam([photo], method=method, target=target, **options).figure()
    options = {"layer": layer} if layer and method == "guided-gradcam" else {}
    if method == "rise" and layer:  # the HED row: a VGG16 forward at 224 costs 20× a Lite0 one
        options["masks"] = HED_RISE_MASKS
    return model.attribute([photo], method=method, target=target, **options).figure()


def picture(method: str, lite0: onnxviz.Model, hed: onnxviz.Model, found: dict[str, Path], channel: int) -> np.ndarray:
    rows = [
        render.with_header(explained(lite0, method, found[name], None, None), f"EfficientNet-Lite0, {name}: top-1")
        for name in ("chelsea", "coffee")
    ]
    target = ChannelTarget(HED_TARGET_LAYER, channel)
    hed_row = explained(hed, method, found["astronaut"], target, HED_CAM_LAYER)
    masks = f", {HED_RISE_MASKS} masks" if method == "rise" else ""
    rows.append(render.with_header(hed_row, f"HED VGG16, astronaut: channel {channel} of {HED_TARGET_LAYER}{masks}"))
    if method in CAM_METHODS:  # one tile each: side by side
        return render.beside(render.beside(rows[0], rows[1]), rows[2])
    return render.column(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="*", default=[*CAM_METHODS, *ATTRIBUTION_METHODS])
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    lite0, hed = onnxviz.load(LITE0, device="cpu"), onnxviz.load(HED, device="cpu")
    with tempfile.TemporaryDirectory() as folder:
        found = photos(Path(folder))
        channel = strongest_channel(hed, found["astronaut"])
        for method in args.methods:
            rgb = picture(method, lite0, hed, found, channel)
            if rgb.shape[1] > WIDTH:
                rgb = cv2.resize(rgb, (WIDTH, round(rgb.shape[0] * WIDTH / rgb.shape[1])), interpolation=cv2.INTER_AREA)
            path = OUT / f"{method.replace('+', '-plus')}.jpg"
            cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
            print(f"{path.relative_to(ROOT)}: {rgb.shape[1]}×{rgb.shape[0]}, {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
