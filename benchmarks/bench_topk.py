"""The top-k scan: images/s on a VGG16-sized model at 224x224, and memory that does not grow.

    python benchmarks/bench_topk.py [--model models/vgg16_hed.onnx] [--images 64] [--rounds 3]

1. Throughput: a folder of photos (scikit-image samples, resized to 224 with small random
   crops so every file differs) scanned for conv13 with all 512 channels kept, k = 9, in
   batches of 16 (the scan alone: projections of the winners are extra, a fixed cost).
2. Memory: peak RSS of a fresh process scanning 100 and then 1000 small pictures with the demo
   model (interleaved, each in its own process); streaming keeps O(channels × k) state, so the
   two peaks should match.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# VmHWM, not getrusage: ru_maxrss survives exec and would report the parent's peak.
CHILD = """
import sys
import onnxviz
model = onnxviz.load(sys.argv[1], device="cpu")
model.topk(sys.argv[2], node="conv3", k=9, batch_size=16, project=False)
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def make_folder(folder: Path, count: int, size: int | tuple[int, int], seed: int = 0, suffix: str = ".png") -> Path:
    """``count`` random crops (three quarters of a side, random corner) of scikit-image's photos,
    resized to ``size`` (a side, or (width, height)), written as ``suffix`` files."""
    import skimage.data

    photos = [skimage.data.chelsea(), skimage.data.astronaut(), skimage.data.coffee(), skimage.data.rocket()]
    width, height = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        top, left = rng.integers(0, h // 4), rng.integers(0, w // 4)
        crop = photo[top : top + 3 * h // 4, left : left + 3 * w // 4]
        shrink = width <= crop.shape[1]
        picture = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"{i:05d}{suffix}"), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    return folder


def peak_rss_mb(model: Path, folder: Path) -> float:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(model), str(folder)], capture_output=True, text=True, check=True
    )
    return int(result.stdout.strip().splitlines()[-1]) / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    import onnxviz

    path = args.model or next(
        (p for p in (ROOT / "models" / "vgg16_hed.onnx", ROOT / "models" / "vgg16_random.onnx") if p.exists()), None
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if path is not None:
            folder = make_folder(tmp / "photos", args.images, 224)
            model = onnxviz.load(path, device="cpu", preset="caffe")
            model.topk(folder, node="conv13", k=9, batch_size=16, project=False)  # warm-up
            times = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                model.topk(folder, node="conv13", k=9, batch_size=16, project=False)
                times.append(time.perf_counter() - started)
            median = statistics.median(times)
            print(
                f"{path.name}: {args.images} images of 224x224, conv13, 512 channels, k=9, batch 16: "
                f"median {median:.2f} s over {args.rounds} rounds = {args.images / median:.2f} images/s"
            )
        else:
            print("no VGG16 model (python scripts/build_vgg16.py): throughput row skipped")

        demo = ROOT / "models" / "demo.onnx"
        small, large = make_folder(tmp / "small", 100, 64, 1), make_folder(tmp / "large", 1000, 64, 2)
        peaks: dict[int, list[float]] = {100: [], 1000: []}
        for _ in range(2):
            peaks[100].append(peak_rss_mb(demo, small))
            peaks[1000].append(peak_rss_mb(demo, large))
        print(
            f"peak RSS, demo model, conv3 (64 channels), k=9: 100 images {statistics.median(peaks[100]):.0f} MB, "
            f"1000 images {statistics.median(peaks[1000]):.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
