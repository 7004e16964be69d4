"""onnxruntime's spinning worker threads: a plain forward and ``Model.cam`` in one process.

    python scripts/build_resnet50.py                      # models/resnet50_random.onnx
    python benchmarks/bench_spinning.py --spinning sleep  # onnxviz's default
    python benchmarks/bench_spinning.py --spinning stop   # spinning inside a run, stopped when it ends
    python benchmarks/bench_spinning.py --spinning spin   # onnxruntime's default, for comparison

Each onnxruntime session has its own thread pool, whose workers by default spin for a while after
a run before they sleep. A method runs two sessions back to back (forward, then inverse), so a
spinning pool competes with the next one on a small machine. The script times a plain session of
ResNet-50 (onnxruntime's defaults) and onnxviz's gradcam on one 224×224 input, alternating call by
call (15 pairs) and in blocks of 5 calls (5 blocks each), with onnxviz's sessions set to spin,
to sleep (onnxviz's), or to spin inside a run only (``session.force_spinning_stop``); medians in
milliseconds. The graph cache is off, so the settings build their own sessions. Run the settings
one after the other, twice, and compare.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]


# What each setting writes over onnxviz's own (workers that sleep when a run ends).
SETTINGS = {
    "sleep": {},
    "stop": {"session.intra_op.allow_spinning": "1", "session.force_spinning_stop": "1"},  # spin inside a run only
    "spin": {"session.intra_op.allow_spinning": "1"},  # onnxruntime's default
}


def set_sessions(setting: str) -> None:
    """onnxviz's sessions with the worker threads of ``setting``."""
    import onnxviz.runtime.sessions as sessions

    own = sessions.session_options

    def chosen(custom_ops: tuple[str, ...] = ()) -> ort.SessionOptions:
        options = own(custom_ops)
        for key, value in SETTINGS[setting].items():
            options.add_session_config_entry(key, value)
        return options

    sessions.session_options = chosen


def timed(run: Callable[[], object], calls: int = 1) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - started) / calls * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spinning", choices=tuple(SETTINGS), default="sleep")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "resnet50_random.onnx")
    args = parser.parse_args()
    os.environ["ONNXVIZ_CACHE"] = "0"
    set_sessions(args.spinning)
    import onnxviz

    model = onnxviz.load(args.model, device="cpu")
    x = np.random.default_rng(0).standard_normal((3, 224, 224)).astype(np.float32)
    plain = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    name = plain.get_inputs()[0].name
    rows = {"plain": lambda: plain.run(None, {name: x[None]}), "gradcam": lambda: model.cam(x, method="gradcam")}
    for run in [*rows.values(), *rows.values()]:
        run()
    alternating: dict[str, list[float]] = {row: [] for row in rows}
    for _ in range(15):
        for row, run in rows.items():
            alternating[row].append(timed(run))
    blocks: dict[str, list[float]] = {row: [] for row in rows}
    for _ in range(5):
        for row, run in rows.items():
            blocks[row].append(timed(run, 5))
    print(
        f"onnxviz sessions {args.spinning}: alternating plain {statistics.median(alternating['plain']):.1f} "
        f"gradcam {statistics.median(alternating['gradcam']):.1f} | in blocks plain "
        f"{statistics.median(blocks['plain']):.1f} gradcam {statistics.median(blocks['gradcam']):.1f} ms"
    )


if __name__ == "__main__":
    main()
