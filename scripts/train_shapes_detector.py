#!/usr/bin/env python
"""Train a small YOLOv8n on synthetic shapes for a few minutes, so the docs' boxes mean something.

The seeded fixtures of ``scripts/detector_fixtures.py`` have random weights: their detections are
real outputs of the graph but say nothing about the picture. This dev tool draws circles, squares
and triangles (three classes) in random colours and sizes over crops of scikit-image's CC0 photos,
trains ultralytics' ``yolov8.yaml`` at scale n on them from scratch on the CPU, and exports the
result with ultralytics' exporter to ``models/shapes_yolov8n.onnx`` (gitignored) with the class
names in its metadata. ``docs/detectors.md`` is drawn from it.

ultralytics is a dev tool, never an onnxviz dependency; run it from a venv that has it::

    /tmp/yolovenv/bin/python scripts/train_shapes_detector.py        # --epochs 30 --images 400
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml
from skimage import data

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "models" / "shapes_yolov8n.onnx"
NAMES = ["circle", "square", "triangle"]
SIZE = 160


def backgrounds() -> list[np.ndarray]:
    return [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.immunohistochemistry()]


def draw(rng: np.random.Generator, photos: list[np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """One picture (BGR) and its YOLO label lines (class cx cy w h, normalised)."""
    photo = photos[rng.integers(len(photos))]
    y, x = rng.integers(0, photo.shape[0] - 200), rng.integers(0, photo.shape[1] - 200)
    picture = cv2.resize(photo[y : y + 200, x : x + 200], (SIZE, SIZE))[..., ::-1].copy()
    labels = []
    for _ in range(rng.integers(1, 4)):
        klass, side = int(rng.integers(3)), int(rng.integers(24, 64))
        cx, cy = (int(v) for v in rng.integers(side // 2, SIZE - side // 2, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        half = side // 2
        if klass == 0:
            cv2.circle(picture, (cx, cy), half, colour, -1)
        elif klass == 1:
            cv2.rectangle(picture, (cx - half, cy - half), (cx + half, cy + half), colour, -1)
        else:
            points = np.array([[cx, cy - half], [cx - half, cy + half], [cx + half, cy + half]], np.int32)
            cv2.fillPoly(picture, [points], colour)
        labels.append(f"{klass} {cx / SIZE:.5f} {cy / SIZE:.5f} {side / SIZE:.5f} {side / SIZE:.5f}")
    return picture, labels


def dataset(folder: Path, count: int) -> Path:
    rng = np.random.default_rng(0)
    photos = backgrounds()
    for split, n in (("train", count), ("val", max(count // 8, 8))):
        (folder / "images" / split).mkdir(parents=True)
        (folder / "labels" / split).mkdir(parents=True)
        for k in range(n):
            picture, labels = draw(rng, photos)
            cv2.imwrite(str(folder / "images" / split / f"{k}.png"), picture)
            (folder / "labels" / split / f"{k}.txt").write_text("\n".join(labels) + "\n")
    config = folder / "shapes.yaml"
    layout = {"path": str(folder), "train": "images/train", "val": "images/val", "names": NAMES}
    config.write_text(yaml.safe_dump(layout))
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--images", type=int, default=400)
    args = parser.parse_args()
    from ultralytics import YOLO

    torch.manual_seed(0)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        config = dataset(Path(folder), args.images)
        model = YOLO("yolov8n.yaml")
        model.train(data=str(config), epochs=args.epochs, imgsz=SIZE, batch=16, workers=0, device="cpu",
                    plots=False, val=False, mosaic=0.5, seed=0, verbose=False)  # fmt: skip
        exported = Path(model.export(format="onnx", imgsz=SIZE, simplify=True))
        shutil.copy(exported, OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
