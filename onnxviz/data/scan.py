"""Dataset scans as a map over shards and an exact merge, on the local engine or on Ray.

Both engines turn shards into partial reducers with the same worker (``data/scanner.py``): the
local engine runs one in this process, the Ray engine (``data/ray_engine.py``) one per actor.
``run_scan`` records each finished shard (for ``--resume``), merges the partials and reports
progress; the merge is order-free, so the answer does not depend on the engine, the shard size
or the order shards finish in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from onnxviz.core.progress import Progress
from onnxviz.data.scanner import Engine, Reducer, ScanModel, ScanTask, ShardScanner
from onnxviz.data.shards import ShardStore, make_shards


@contextlib.contextmanager
def session(engine: Engine) -> Iterator[None]:
    """Scans inside share one engine: on Ray, one connection (or local instance) for all of them."""
    if engine.name != "ray":
        yield
        return
    from onnxviz.data.ray_engine import connected

    with connected(engine):
        yield


def run_scan(
    model: ScanModel,
    task: ScanTask,
    images: list[str],
    engine: Engine,
    opener: Callable[..., ScanModel] | None = None,
    store: ShardStore | None = None,
    resumed: Callable[[dict], Reducer] | None = None,
    progress: Progress | None = None,
) -> Reducer:
    """The merged reducer of ``task`` over ``images``, shard by shard on ``engine``.

    ``opener(threads, gpu)`` opens the model in a Ray worker; ``store`` records each finished shard
    (its partial's ``state()``) and, with ``resumed`` (a partial from its state), supplies the shards
    an earlier run finished, which are not scanned again."""
    shards = make_shards(images, engine.shard_size)
    merged = task.empty()
    done = store.finished(shards, resumed) if store is not None and resumed is not None else {}
    for index in sorted(done):
        merged = merged.merge(done[index])
    counted = sum(len(shard.names) for shard in shards if shard.index in done)
    if progress is not None and counted:
        progress(counted, len(images))
    pending = [shard for shard in shards if shard.index not in done]
    if engine.name == "ray":
        from onnxviz.data.ray_engine import scan_on_ray  # Ray is an extra: imported only when asked for

        partials = scan_on_ray(opener, task, pending, engine)
    else:
        partials = ShardScanner(model, task, engine.decoders).scan(pending)
    for shard, partial, files in partials:
        if partial is not None:
            if store is not None:
                store.save(shard.index, partial.state())
            merged = merged.merge(partial)
        counted += files
        if progress is not None:
            progress(counted, len(images))
    return merged
