"""The worker of a dataset scan: shards in, partial reducers out, through one forward session.

``ShardScanner`` holds one forward session cut at the scanned tensor and feeds it batches of
decoded images, folding each batch into a fresh partial reducer per shard. Decoding (reading and
resizing pictures, the model's preprocessing) runs in a small thread pool a few batches ahead of
the session (OpenCV and numpy release the GIL), so the forward pass is the only bottleneck. The
local engine runs one scanner in this process; the Ray engine (``data/ray_engine.py``) runs one
per actor; ``data/scan.py`` merges what they return.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from onnxviz.data.images import thumbnail
from onnxviz.data.preprocess import picture_from_tensor
from onnxviz.data.reducers import Evaluated
from onnxviz.data.shards import DEFAULT_SHARD_SIZE, Shard
from onnxviz.errors import ImageError, UsageError

ENGINES = ("local", "ray")
DEFAULT_DECODERS = 2  # threads decoding ahead of the session: enough to hide it behind a forward


class Reducer(Protocol):
    def update(self, batch: Evaluated) -> None: ...
    def merge(self, other: Any) -> Any: ...
    def result(self) -> Any: ...


class ScanModel(Protocol):
    """What a scanner needs of a loaded model (``core.loaded.LoadedModel`` is one)."""

    layout: str
    preprocessing: Any

    def prepare(self, image: Path) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...]]: ...
    def forward_runner(self, tensor: str, input_shape: tuple[int, ...]) -> Any: ...


@dataclass(frozen=True)
class ScanTask:
    """What every worker does with a shard; it travels to Ray actors, so it holds only plain data
    and a picklable factory of empty reducers."""

    folder: Path
    tensor: str
    input_shape: tuple[int, ...]
    batch_size: int
    empty: Callable[[], Reducer]
    thumbnail_side: int | None = None  # keep a thumbnail of each image (embed), longer side in pixels


@dataclass(frozen=True)
class Engine:
    """Where a scan runs: ``local`` (this process) or ``ray`` (``address``: a running cluster, None:
    a local Ray instance started for the scan); ``workers``: Ray actors (None: one per GPU, else one
    per CPU of the cluster)."""

    name: str = "local"
    address: str | None = None
    workers: int | None = None
    shard_size: int = DEFAULT_SHARD_SIZE
    decoders: int = DEFAULT_DECODERS
    gpus: bool = True  # actors take a GPU each where the cluster has GPUs (False: the model asked for the CPU)

    def __post_init__(self) -> None:
        if self.name not in ENGINES:
            raise UsageError(f"Unknown engine '{self.name}'.", f"Use one of: {', '.join(ENGINES)}.")
        if self.workers is not None and self.workers <= 0:
            raise UsageError(f"--workers must be positive; got {self.workers}.")
        if self.decoders <= 0:
            raise UsageError(f"--decoders must be positive; got {self.decoders}.")
        if self.address is not None and self.name != "ray":
            raise UsageError("--ray-address needs --engine ray.")


def decode(model: ScanModel, path: Path, thumbnail_side: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(input tensor, thumbnail or None); an unreadable file raises ``ImageError``."""
    x, picture, _ = model.prepare(path)
    if thumbnail_side is None:
        return x, None
    if picture is None:
        picture = picture_from_tensor(x[0], model.layout, model.preprocessing)
    return x, thumbnail(picture, thumbnail_side)


class ShardScanner:
    """Shards → partial reducers through one forward session, decoding a few batches ahead."""

    def __init__(self, model: ScanModel, task: ScanTask, decoders: int = DEFAULT_DECODERS) -> None:
        self.model = model
        self.task = task
        self.decoders = decoders
        self.runner = model.forward_runner(task.tensor, task.input_shape)
        self.batch_size = task.batch_size if self.runner.batched else 1

    def scan(self, shards: Iterable[Shard]) -> Iterator[tuple[Shard, Reducer | None, int]]:
        """Per batch: (its shard, the shard's partial once its last batch is in, else None, files in the batch)."""
        shards = list(shards)
        files = ((shard, name) for shard in shards for name in shard.names)
        ahead: deque[Future] = deque()
        with ThreadPoolExecutor(self.decoders, thread_name_prefix="onnxviz-decode") as pool:

            def submit_until(count: int) -> None:
                while len(ahead) < count:
                    item = next(files, None)
                    if item is None:
                        return
                    ahead.append(pool.submit(self._decode, item[1]))

            for shard in shards:
                partial = self.task.empty()
                for start in range(0, len(shard.names), self.batch_size):
                    chunk = shard.names[start : start + self.batch_size]
                    submit_until(len(chunk))
                    decoded = [ahead.popleft().result() for _ in chunk]
                    submit_until(2 * self.batch_size)  # the next batches decode while this one runs
                    partial.update(self._evaluate(chunk, decoded))
                    finished = start + self.batch_size >= len(shard.names)
                    yield shard, partial if finished else None, len(chunk)

    def _decode(self, name: str) -> tuple[np.ndarray, np.ndarray | None] | None:
        try:
            return decode(self.model, self.task.folder / name, self.task.thumbnail_side)
        except ImageError:
            return None

    def _evaluate(self, names: tuple[str, ...], decoded: list) -> Evaluated:
        readable = [(name, item) for name, item in zip(names, decoded, strict=True) if item is not None]
        skipped = [name for name, item in zip(names, decoded, strict=True) if item is None]
        if not readable:
            return Evaluated([], None, skipped)
        tensors = np.concatenate([item[0] for _, item in readable])
        thumbnails = [item[1] for _, item in readable] if self.task.thumbnail_side is not None else None
        outputs = self.runner.run(tensors)[0]
        return Evaluated([name for name, _ in readable], outputs, skipped, thumbnails)
