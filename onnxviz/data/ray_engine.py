"""The Ray engine: shards mapped by a pool of actors with Ray Data, partials merged on the driver.

The dataset has one row per shard (its index and paths); ``map_batches`` hands each row to a
``ShardActor``, which opened the model in its constructor (onnxruntime sessions do not pickle, so
each actor builds its own once and keeps it for every shard it gets) with as many onnxruntime
threads as it has CPUs, and on a GPU where the cluster has GPUs (one per actor, the CUDA
provider). An actor returns the shard's partial reducer, pickled; the driver merges them as they
stream back, so the progress bar moves by shards and each shard is recorded for ``--resume`` as
it arrives. Ray Data restarts an actor that dies and retries its task (``max_restarts`` and
``max_task_retries`` are unlimited for actor pools), and a retried shard gives the same partial,
so a lost worker costs time, never exactness.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import re
from collections.abc import Callable, Iterator

import numpy as np

from onnxviz import errors
from onnxviz.data.scanner import Engine, Reducer, ScanModel, ScanTask, ShardScanner
from onnxviz.data.shards import Shard
from onnxviz.errors import OnnxvizError, UsageError


def ray_module():
    """``ray`` with Ray Data, or an error naming the extra that brings them."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise OnnxvizError(
            "--engine ray needs Ray (with Ray Data), which is not installed.",
            'Install the extra: pip install "onnxviz[ray]", or use --engine local.',
        ) from None
    return ray


class ShardActor:
    """One model, opened once per actor; each call scans the shards of a batch of rows."""

    def __init__(self, opener: Callable[..., ScanModel], task: ScanTask, threads: int, gpu: bool, decoders: int):
        self.scanner = ShardScanner(opener(threads=threads, gpu=gpu), task, decoders)

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pairs = zip(rows["index"], rows["names"], strict=True)
        shards = [Shard(int(index), tuple(str(name) for name in names)) for index, names in pairs]
        partials = [pickle.dumps(p) for _, p, _ in self.scanner.scan(shards) if p is not None]
        return {"index": np.asarray(rows["index"]), "partial": np.array(partials, dtype=object)}


def scan_on_ray(
    opener: Callable[..., ScanModel] | None, task: ScanTask, shards: list[Shard], engine: Engine
) -> Iterator[tuple[Shard, Reducer, int]]:
    """Each shard's partial from a pool of actors: (shard, partial, files), in completion order."""
    if opener is None:
        raise UsageError(
            "--engine ray needs a model loaded from a file: each Ray worker opens it again.",
            "Load the model with onnxviz.load(path).",
        )
    if not shards:
        return
    with connected(engine) as ray:
        try:
            yield from _mapped(ray, opener, task, shards, engine)
        except ray.exceptions.RayError as exc:
            raise worker_error(exc) from None


def worker_error(exc: BaseException) -> OnnxvizError:
    """The onnxviz error a Ray worker raised, as the driver would have raised it; else one that says
    a worker failed, with Ray's own last line. Ray hands the driver either the worker's exception
    (a task's error, as its cause) or only its text (an actor that failed to start)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OnnxvizError):
            return seen
        seen = getattr(seen, "cause", None) or seen.__cause__
    text = str(exc)
    raised = list(re.finditer(r"onnxviz\.errors\.(\w+): (.*)(?:\nHint: (.*))?", text))
    if raised:
        kind = getattr(errors, raised[-1].group(1), OnnxvizError)
        kind = kind if isinstance(kind, type) and issubclass(kind, OnnxvizError) else OnnxvizError
        return kind(raised[-1].group(2), raised[-1].group(3))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return OnnxvizError(
        f"A Ray worker failed: {lines[-1] if lines else type(exc).__name__}",
        "Check that every node of the cluster has onnxviz installed and can read the model and the images.",
    )


@contextlib.contextmanager
def connected(engine: Engine) -> Iterator:
    """``ray``, connected: to the instance this process already started, else to ``engine.address``
    or a new local instance, shut down on leaving (so several scans can share one: ``scan.session``)."""
    ray = ray_module()
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=engine.address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    except Exception as exc:  # any failure to reach or start a cluster is the user's to fix
        where = engine.address or "a local instance"
        raise OnnxvizError(
            f"Ray could not start or connect to {where}: {exc}",
            "Check --ray-address (e.g. ray://host:10001 or auto), or leave it out for a local instance.",
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _mapped(ray, opener, task: ScanTask, shards: list[Shard], engine: Engine) -> Iterator[tuple[Shard, Reducer, int]]:
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0)) if engine.gpus else 0
    cpus = max(1, int(resources.get("CPU", 1)))
    workers = min(engine.workers or gpus or cpus, len(shards))  # an idle actor would only hold resources
    threads = max(1, cpus // workers)
    rows = [{"index": shard.index, "names": list(shard.names)} for shard in shards]
    by_index = {shard.index: shard for shard in shards}
    with quiet_ray_data(ray):
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
        mapped = dataset.map_batches(
            ShardActor,
            fn_constructor_args=(opener, task, threads, gpus > 0, engine.decoders),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=threads,
            num_gpus=1 if gpus else 0,
        )
        for row in mapped.iter_rows():
            shard = by_index[int(row["index"])]
            yield shard, pickle.loads(row["partial"]), len(shard.names)


@contextlib.contextmanager
def quiet_ray_data(ray) -> Iterator[None]:
    """Ray Data's own progress bars and logs off while a scan runs (the command's bar counts shards;
    a failure reaches the caller as an onnxviz error, not as Ray Data's log of it), and back as they
    were afterwards: a notebook's own datasets keep its settings."""
    context = ray.data.DataContext.get_current()
    logger = logging.getLogger("ray.data")
    saved = context.enable_progress_bars, context.print_on_execution_start, logger.level
    context.enable_progress_bars = context.print_on_execution_start = False
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        context.enable_progress_bars, context.print_on_execution_start = saved[:2]
        logger.setLevel(saved[2])
