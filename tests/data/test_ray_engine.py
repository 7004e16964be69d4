"""The Ray engine on a real local Ray instance: the same JSON, to the byte, and the same codes as
the local engine, for several shard sizes, on a folder with ties and unreadable files; a worker
killed mid-scan changes nothing; a scan interrupted on one engine resumes on the other."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

import onnxviz
from onnxviz.data.scanner import Engine
from tests.cli_helpers import run_cli
from tests.datasets import VGG, scan_folder
from tests.helpers import ROOT

ray = pytest.importorskip("ray", reason='the Ray engine needs the [ray] extra (pip install "onnxviz[ray]")')

CHECKPOINTS = [ROOT / "models" / "checkpoints" / f"epoch{i}.onnx" for i in (1, 8)]
PROBES = ROOT / "models" / "checkpoints" / "images"


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local instance for the module (two CPUs, no dashboard); the engine uses it as it finds it."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return scan_folder(tmp_path_factory.mktemp("dataset"))


@pytest.fixture(scope="module")
def model():
    return onnxviz.load(VGG, device="cpu")


def dumped(result) -> str:
    return json.dumps(result.to_json() if hasattr(result, "to_json") else result.summary())


@pytest.mark.parametrize("shard_size", [1, 5, 64])
def test_topk_on_ray_equals_the_local_engine_to_the_byte(model, folder, shard_size) -> None:
    options = {"node": "conv3", "k": 14, "batch_size": 3, "project": False}
    local = model.topk(folder, engine=Engine(shard_size=shard_size), **options)
    distributed = model.topk(folder, engine=Engine("ray", workers=2, shard_size=shard_size), **options)
    assert dumped(distributed) == dumped(local)
    assert distributed.scan.skipped == local.scan.skipped == ["broken.png", "wrong_shape.npy"]
    assert distributed.scan.processed == local.scan.processed == 16
    for entries in distributed.scan.entries.values():  # the tie: two identical files, broken by path
        names = [e.image for e in entries]
        assert names.index("img_03.npy") + 1 == names.index("img_03_copy.npy")


@pytest.mark.parametrize("shard_size", [2, 7])
def test_embed_codes_on_ray_equal_the_local_ones(model, folder, shard_size) -> None:
    local = model.embed(folder, method="pca", engine=Engine(shard_size=shard_size))
    distributed = model.embed(folder, method="pca", engine=Engine("ray", workers=2, shard_size=shard_size))
    assert distributed.images == local.images == sorted(local.images)
    np.testing.assert_array_equal(distributed.codes, local.codes)
    assert dumped(distributed) == dumped(local)
    assert distributed.skipped == local.skipped == ["broken.png", "wrong_shape.npy"]
    for mine, theirs in zip(distributed.thumbnails, local.thumbnails, strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_evolution_on_ray_equals_the_local_engine(tmp_path) -> None:
    shard_size = 3  # topk and embed are compared at several shard sizes; each size here costs two Ray scans
    images = tmp_path / "probes"
    images.mkdir()
    for picture in sorted(PROBES.glob("*.png"))[:10]:
        (images / picture.name).write_bytes(picture.read_bytes())
    (images / "broken.png").write_bytes(b"not a png")

    def load(path):
        return onnxviz.load(path, device="cpu")

    options = {"top_channels": 3, "loader": load}
    local = onnxviz.evolution(CHECKPOINTS, images=images, node="conv2", engine=Engine(shard_size=shard_size), **options)
    ray_engine = Engine("ray", shard_size=shard_size)
    distributed = onnxviz.evolution(CHECKPOINTS, images=images, node="conv2", engine=ray_engine, **options)
    assert dumped(distributed) == dumped(local)
    assert distributed.skipped == ["broken.png"]


def actor_processes() -> list[int]:
    """The pids of this Ray instance's scan actors (their process titles name the actor class)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"ShardActor" in title:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the actor's process in /proc")
def test_a_worker_killed_mid_scan_changes_nothing(model, folder) -> None:
    killed: list[int] = []

    def kill_once(done: int, total: int) -> None:
        if not killed and done >= 2:  # two shards in; fourteen still to come
            victim = actor_processes()[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    options = {"node": "conv4", "k": 4, "batch_size": 2, "project": False}
    distributed = model.topk(folder, engine=Engine("ray", workers=2, shard_size=1), progress=kill_once, **options)
    assert killed and killed[0] not in actor_processes()
    local = model.topk(folder, engine=Engine(shard_size=1), **options)
    assert dumped(distributed) == dumped(local)
    assert distributed.scan.processed == 16


def test_a_scan_interrupted_locally_resumes_on_ray(model, folder, tmp_path) -> None:
    calls = []

    def interrupt(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 3:
            raise KeyboardInterrupt

    options = {"node": "conv3", "channels": [2, 9], "k": 3, "batch_size": 4, "state_dir": tmp_path}
    with pytest.raises(KeyboardInterrupt):
        model.topk(folder, engine=Engine(shard_size=4), progress=interrupt, **options)
    assert len(list((tmp_path / "scan").glob("shard_*.json"))) == 3
    seen = []
    resumed = model.topk(
        folder,
        resume=True,
        project=False,
        engine=Engine("ray", shard_size=4),
        progress=lambda done, total: seen.append(done),
        **options,
    )
    assert seen == [12, 16]  # three shards read back, only the fourth scanned
    whole = model.topk(folder, project=False, **options)
    assert dumped(resumed) == dumped(whole)


def test_a_worker_that_cannot_open_the_model_raises_its_onnxviz_error(folder, tmp_path) -> None:
    """The model moved after the driver loaded it: each actor fails to open it; the caller gets
    the worker's own error (type, message, hint), not Ray's exception."""
    path = tmp_path / "model.onnx"
    shutil.copy(VGG, path)
    model = onnxviz.load(path, device="cpu")
    model.graph.shapes(model.input_shape())  # all the driver needs, read before the file goes
    path.rename(tmp_path / "moved.onnx")
    with pytest.raises(onnxviz.ModelLoadError, match="Model file not found") as raised:
        model.topk(folder, node="conv3", k=2, project=False, engine=Engine("ray", workers=1, shard_size=8))
    assert raised.value.hint == "Check the path."


def test_the_ray_command_prints_the_local_json(capsys, folder) -> None:
    args = ("topk", VGG, folder, "--node", "conv2", "--k", "3", "--top-channels", "4", "--json", "--device", "cpu")
    code, local, err = run_cli(capsys, *args, "--shard-size", "4")
    assert code == 0, err
    code, distributed, err = run_cli(capsys, *args, "--engine", "ray", "--workers", "2", "--shard-size", "6")
    assert code == 0, err
    assert distributed == local


def test_the_ray_embed_command_writes_the_local_codes(capsys, folder, tmp_path) -> None:
    args = ("embed", VGG, folder, "--method", "pca", "--json", "--device", "cpu")
    code, local, err = run_cli(capsys, *args, "--codes", tmp_path / "local.npy", "--out", tmp_path / "local.png")
    assert code == 0, err
    outputs = ("--codes", tmp_path / "ray.npy", "--out", tmp_path / "ray.png")
    code, distributed, err = run_cli(capsys, *args, "--engine", "ray", "--shard-size", "3", *outputs)
    assert code == 0, err
    assert distributed == local
    np.testing.assert_array_equal(np.load(tmp_path / "ray.npy"), np.load(tmp_path / "local.npy"))


def test_without_ray_the_engine_names_the_extra(capsys, folder, monkeypatch) -> None:
    for name in [n for n in sys.modules if n == "ray" or n.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # what Python does for a package that is not installed
    code, _, err = run_cli(capsys, "topk", VGG, folder, "--node", "conv2", "--engine", "ray")
    assert code == 1
    assert "needs Ray" in err and 'pip install "onnxviz[ray]"' in err
