"""A folder of random square crops of scikit-image's photos, for ``embed`` on a real classifier.

    python scripts/make_photo_crops.py /tmp/photo_crops [--per-photo 40] [--size 224]
    onnxviz embed models/efficientnet_lite0.onnx /tmp/photo_crops --out embed.png

Each of scikit-image's CC0 colour photos (the cat, the coffee, the astronaut, the rocket, a
microscope slide, the deep field, the colour wheel) gives ``--per-photo`` crops of a random side
between a third and the whole of its short side, at random positions (seeded), resized to
``--size``: a few hundred pictures of a handful of scenes, which a good code layer should group
by scene and by what is in the crop.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import skimage.data

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "immunohistochemistry", "hubble_deep_field", "colorwheel")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-photo", type=int, default=40)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    for name in PHOTOS:
        photo = np.ascontiguousarray(getattr(skimage.data, name)()[..., :3])
        short = min(photo.shape[:2])
        for index in range(args.per_photo):
            side = int(rng.integers(short // 3, short + 1))
            top = int(rng.integers(0, photo.shape[0] - side + 1))
            left = int(rng.integers(0, photo.shape[1] - side + 1))
            crop = cv2.resize(photo[top : top + side, left : left + side], (args.size, args.size), cv2.INTER_AREA)
            path = args.out / name / f"{name}_{index:03d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(f"{len(PHOTOS) * args.per_photo} crops in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
