"""The exported gradcam explainer against the plain model's forward, both in plain onnxruntime.

    python scripts/build_resnet50.py              # models/resnet50_random.onnx (gitignored)
    python benchmarks/bench_export.py             # --model PATH --method gradcam --batch 1 --rounds 15

The explainer (``onnxviz export --method gradcam``, default layer: ResNet-50's layer4 output) runs
the whole forward, the inverse of the head from the logits down to layer4 only, and the map's
arithmetic and Resize to 224 x 224. Each round times both sessions on the same input (the order
alternating A B, B A, ...), each call the median of a few calls; the table gives the median times
and the median of the per-round ratios, and the file sizes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import skimage.data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import onnxviz  # noqa: E402


def timed(session: ort.InferenceSession, feeds: dict[str, np.ndarray], calls: int) -> float:
    """The median milliseconds of ``calls`` runs."""
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "resnet50_random.onnx")
    parser.add_argument("--method", default="gradcam")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()
    if not args.model.exists():
        parser.error(f"{args.model} is missing: build it with python scripts/build_resnet50.py")
    model = onnxviz.load(args.model, device="cpu")
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        explainer = model.export(out=Path(folder) / "explainer.onnx", method=args.method)
        built = time.perf_counter() - started
        sessions = {
            "plain forward": ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"]),
            f"{args.method} explainer": ort.InferenceSession(str(explainer.path), providers=["CPUExecutionProvider"]),
        }
    x = np.concatenate([model.prepare(skimage.data.chelsea())[0]] * args.batch)
    feeds = {model.graph.input_name: x}
    for session in sessions.values():
        session.run(None, feeds)  # warm-up
    names = list(sessions)
    times: dict[str, list[float]] = {name: [] for name in names}
    ratios = []
    for index in range(args.rounds):
        order = names if index % 2 == 0 else names[::-1]
        for name in order:
            times[name].append(timed(sessions[name], feeds, args.calls))
        ratios.append(times[names[1]][-1] / times[names[0]][-1])
    print(f"{args.model.name}, batch {args.batch}, {args.rounds} interleaved rounds of {args.calls} calls")
    print(f"{'row':32s} {'median ms':>10s} {'min ms':>9s}")
    for name in names:
        print(f"{name:32s} {statistics.median(times[name]):10.1f} {min(times[name]):9.1f}")
    print(f"explainer / forward: median ratio {statistics.median(ratios):.3f} ({min(ratios):.2f}-{max(ratios):.2f})")
    size, model_size = explainer.size, args.model.stat().st_size
    print(f"size: explainer {size / 1e6:.2f} MB, model {model_size / 1e6:.2f} MB, ratio {size / model_size:.4f}")
    where = f" at {explainer.layer}" if explainer.layer else ""
    print(f"export took {built:.1f} s ({explainer.method}{where})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
