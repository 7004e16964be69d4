"""The inputs of the README's ``embed`` pictures: the demo model's classes and photo crops.

    python scripts/make_embed_example.py /tmp/shapes_and_photos   # needs torch (train_demo's imports)
    onnxviz embed models/demo.onnx /tmp/shapes_and_photos --out embed.png [--grid]

400 pictures of 64x64: 40 of each of the demo model's 8 classes, drawn by ``train_demo.py``'s own
generator (seeded), and 20 random square crops of each of 4 scikit-image photos (chelsea, coffee,
astronaut, rocket; CC0), which the model has never seen.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import skimage.data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_demo import IMAGE_SIZE, LABELS, render

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


def write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def main(root: Path, per_class: int = 40, per_photo: int = 20, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for label, name in enumerate(LABELS):
        for i in range(per_class):
            write(root / "shapes" / name / f"{i:02d}.png", render(label, rng))
    for name in PHOTOS:
        photo = getattr(skimage.data, name)()
        h, w = photo.shape[:2]
        for i in range(per_photo):
            side = int(rng.integers(min(h, w) // 3, min(h, w)))
            top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            crop = photo[top : top + side, left : left + side]
            small = cv2.resize(crop, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
            write(root / "photos" / f"{name}_{i:02d}.png", small)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("shapes_and_photos"))
