"""How many inputs go through a session at once, and running a sweep batch by batch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from onnxviz.core.progress import Progress
from onnxviz.errors import UsageError
from onnxviz.graph.model import ModelGraph

DEFAULT_BATCH_LIMIT = 64
MEMORY_SHARE = 0.25


def batch_size_for(graph: ModelGraph, shapes: dict[str, tuple[int, ...]], requested: int | None) -> int:
    """The user's choice, or as many inputs as a quarter of the free memory holds (≤ 64).

    One input costs its signal tensors (every activation on the path); weights are counted once
    by the session, not per input.
    """
    if requested is not None:
        if requested <= 0:
            raise UsageError(f"--batch-size must be positive; got {requested}.")
        return requested
    per_input = 4 * sum(int(np.prod(shapes[t])) for t in graph.signal if t in shapes)
    available = available_memory()
    return int(max(1, min(DEFAULT_BATCH_LIMIT, available * MEMORY_SHARE // max(per_input, 1))))


def available_memory() -> int:
    """Free host memory in bytes (``MemAvailable``), or 4 GiB where the system does not say."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def run_in_batches(
    evaluate: Callable[[list[int]], np.ndarray],
    count: int,
    batch_size: int,
    progress: Progress | None = None,
) -> np.ndarray:
    """``evaluate`` maps a batch of item indices to their outputs; the outputs are concatenated."""
    outputs = []
    for start in range(0, count, batch_size):
        chunk = list(range(start, min(count, start + batch_size)))
        outputs.append(evaluate(chunk))
        if progress is not None:
            progress(chunk[-1] + 1, count)
    return np.concatenate(outputs)
