"""Dataset scans: decoding overlapped with inference, and the local engine against Ray.

    python benchmarks/bench_scan.py [--model models/vgg16_random.onnx] [--node conv13] [--images 48]
                                    [--rounds 3] [--part all|decoding|engines]

1. Decoding ahead, decoding-bound: the demo model on 1600x1200 JPEGs (as on a GPU worker, the
   forward costs far less than the decoding), the scan as it was against the local engine.
2. Decoding ahead, forward-bound: a folder of JPEGs at ImageNet's typical size (500x375, from
   scikit-image's photos, random crops so every file differs) scanned for the top 9 of every channel of
   ``--node``, in batches of 16: the scan as it was (each batch decoded, then run: the session
   waits for the decoder) against the local engine (two threads decode the next batches while
   the session runs), interleaved A B A B, images/s and the median ratio.
3. Engines: the same scan on the local engine and on a local Ray instance (``num_cpus=2``) with
   1 and 2 actors, one run each: wall time of the scan call (the actors' start included) and
   images/s; the JSON of every run is checked equal to the local one.
4. Ray's cost per shard: the demo model on 200 tiny inputs, one actor, shards
   of 1 image against one shard of all of them: (difference) / (shards - 1) is what a task costs
   beyond its images (scheduling, the object store, the driver's merge).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_topk import make_folder  # run as a script: benchmarks/ is on the path

import onnxviz
from onnxviz.data.images import list_images
from onnxviz.errors import ImageError
from onnxviz.runtime.batching import batch_size_for
from onnxviz.runtime.projector import seeded_tensor

ROOT = Path(__file__).resolve().parents[1]
BATCH = 16


def make_jpegs(folder: Path, count: int, seed: int = 0, size: tuple[int, int] = (500, 375)) -> Path:
    return make_folder(folder, count, size, seed, suffix=".jpg")


def sequential_scan(model: onnxviz.Model, folder: Path, node: str) -> int:
    """The scan before decoding was overlapped: decode a batch, then run it (the same session)."""
    shape = model.input_shape()
    runner = model.forward_runner(seeded_tensor(model.graph, model.resolve(node).tensor), shape)
    names = list_images(folder)
    size = batch_size_for(model.graph, model.graph.shapes(shape), BATCH)
    for start in range(0, len(names), size):
        tensors = []
        for name in names[start : start + size]:
            try:
                tensors.append(model.prepare(folder / name)[0])
            except ImageError:
                continue
        runner.run(np.concatenate(tensors))
    return len(names)


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def decoding(model, folder: Path, node: str, rounds: int) -> None:
    count = len(list_images(folder))
    model.topk(folder, node=node, k=9, batch_size=BATCH, project=False)  # warm: sessions built, files in the page cache
    before, after = [], []
    for _ in range(rounds):
        before.append(timed(lambda: sequential_scan(model, folder, node)))
        after.append(timed(lambda: model.topk(folder, node=node, k=9, batch_size=BATCH, project=False)))
    ratios = [b / a for b, a in zip(before, after, strict=True)]
    for label, times in (("decode then run", before), ("decoding ahead", after)):
        rounds_text = ", ".join(f"{t:.1f}" for t in times)
        print(f"{label + ':':20s} {count / statistics.median(times):6.2f} images/s ({rounds_text} s)")
    print(f"speed-up: median {statistics.median(ratios):.3f}x (per round: {', '.join(f'{r:.3f}' for r in ratios)})")


def decoding_bound(rounds: int, count: int = 48) -> None:
    """The demo model (a forward of well under a millisecond per image) on 1600x1200 JPEGs: the
    decoder is the bottleneck, as it is for a GPU worker; decoding ahead spreads it over threads."""
    demo = onnxviz.load(ROOT / "models" / "demo.onnx", device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_jpegs(Path(tmp), count, seed=1, size=(1600, 1200))
        print(f"decoding-bound case: the demo model, {count} JPEGs of 1600x1200")
        decoding(demo, folder, demo.graph.conv_layers()[-1].alias, rounds)


def engines(model, folder: Path, node: str) -> None:
    import ray

    count = len(list_images(folder))
    options = {"k": 9, "batch_size": BATCH, "project": False}
    local_time = timed(lambda: model.topk(folder, node=node, engine=onnxviz.Engine(shard_size=16), **options))
    reference = json.dumps(model.topk(folder, node=node, **options).to_json())
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    print(f"ray.init (local instance, 2 CPUs): {time.perf_counter() - start:.1f} s")
    print(f"local engine:        {count / local_time:6.2f} images/s ({local_time:.1f} s)")
    try:
        for workers in (1, 2):
            engine = onnxviz.Engine("ray", workers=workers, shard_size=16)
            start = time.perf_counter()
            result = model.topk(folder, node=node, engine=engine, **options)
            wall = time.perf_counter() - start
            same = json.dumps(result.to_json()) == reference
            print(f"ray, {workers} actor(s):     {count / wall:6.2f} images/s ({wall:.1f} s with the actors' start)")
            print(f"                     same JSON as the local engine: {same}")
        overhead(ray)
    finally:
        ray.shutdown()


def overhead(ray, images: int = 200) -> None:
    demo = onnxviz.load(ROOT / "models" / "demo.onnx", device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for i in range(images):
            np.save(Path(tmp) / f"{i:05d}.npy", rng.standard_normal((3, 64, 64)).astype(np.float32))
        node = demo.graph.conv_layers()[-1].alias
        runs = {}
        for shard in (images, 1, images, 1):  # interleaved; the first of each pair also warms the actor's start
            engine = onnxviz.Engine("ray", workers=1, shard_size=shard)
            start = time.perf_counter()
            demo.topk(tmp, node=node, k=1, project=False, engine=engine)
            runs.setdefault(shard, []).append(time.perf_counter() - start)
        one, many = min(runs[images]), min(runs[1])
        print(f"ray per-shard cost: {(many - one) / (images - 1) * 1000:.1f} ms")
        print(f"                     ({images} shards of 1: {many:.2f} s; one shard of {images}: {one:.2f} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "vgg16_random.onnx")
    parser.add_argument("--node", default="conv13")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--part", choices=("all", "decoding", "engines"), default="all")
    args = parser.parse_args(argv)
    if args.part != "engines":
        decoding_bound(args.rounds)
    model = onnxviz.load(args.model, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_jpegs(Path(tmp) / "jpegs", args.images)
        start = time.perf_counter()
        for name in list_images(folder)[:16]:
            model.prepare(folder / name)
        print(f"decode + preprocess: {(time.perf_counter() - start) / 16 * 1000:.1f} ms per 500x375 JPEG (one thread)")
        if args.part != "engines":
            decoding(model, folder, args.node, args.rounds)
        if args.part != "decoding":
            engines(model, folder, args.node)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
