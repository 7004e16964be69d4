"""What a box or mask target costs inside an explainer: the same method's explainer with the
top-1 target and with ``--target box`` (YOLOv8n-like detector fixture) or ``--target mask``
(DeepLabV3 segmenter fixture), both in plain onnxruntime.

    python benchmarks/bench_export_targets.py          # --method gradcam --batch 3 --rounds 15

The box target adds the matching inside the graph (every prediction's box from cx, cy, w, h,
its IoU with the given box, an ArgMax, the matched prediction's class scores) and a one-hot seed
over the detector output; the mask target a one-hot over classes times the mask. Rounds alternate
the order (A B, B A, ...); each time is the median of a few calls; the ratio is the median of the
per-round ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import skimage.data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_export import timed  # noqa: E402

import onnxviz  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "models"
CASES = {"box": "yolov8n_tiny", "mask": "seg_deeplab_ts"}


def target_feeds(target: str, model: onnxviz.Model, x: np.ndarray) -> dict[str, np.ndarray]:
    """A box or a mask per image: a box in the middle of the picture, its best class; the left half, class 0."""
    count, height, width = len(x), x.shape[2], x.shape[3]
    if target == "box":
        box = np.array([[width / 4, height / 4, 3 * width / 4, 3 * height / 4]] * count, np.float32)
        return {"box": box, "box_class": np.full(count, -1, np.int64)}
    out_height, out_width = model.graph.shapes(model.input_shape())[model.graph.output_names[0]][2:]
    mask = np.zeros((count, out_height, out_width), np.float32)
    mask[:, :, : out_width // 2] = 1
    return {"mask": mask, "mask_class": np.zeros(count, np.int64)}


def compare(target: str, args: argparse.Namespace) -> None:
    model = onnxviz.load(FIXTURES / f"{CASES[target]}.onnx", device="cpu")
    sessions = {}
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("top1", target):
            path = model.export(out=Path(folder) / f"{kind}.onnx", method=args.method, target=kind, steps=8).path
            sessions[kind] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.concatenate([model.prepare(skimage.data.chelsea())[0]] * args.batch)
    feeds = {"top1": {model.graph.input_name: x}, target: {model.graph.input_name: x, **target_feeds(target, model, x)}}
    for kind, session in sessions.items():
        session.run(None, feeds[kind])  # warm-up
    times: dict[str, list[float]] = {kind: [] for kind in sessions}
    ratios = []
    for index in range(args.rounds):
        for kind in list(sessions) if index % 2 == 0 else list(sessions)[::-1]:
            times[kind].append(timed(sessions[kind], feeds[kind], args.calls))
        ratios.append(times[target][-1] / times["top1"][-1])
    print(f"{CASES[target]}, {args.method}, batch {args.batch}, {args.rounds} interleaved rounds of {args.calls} calls")
    for kind in sessions:
        print(f"  {kind:6s} explainer: median {statistics.median(times[kind]):8.2f} ms")
    print(f"  {target} / top1: median ratio {statistics.median(ratios):.3f} ({min(ratios):.2f}-{max(ratios):.2f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="gradcam")
    parser.add_argument("--batch", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()
    for target in CASES:
        compare(target, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
