"""The local engine: any shard size, batch size or number of decoders gives the brute-force answer
to the byte, and images are decoded while the session runs the batch before them."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

import onnxviz
from onnxviz.data.scanner import Engine
from tests.cli_helpers import run_cli
from tests.datasets import VGG, brute_force, scan_folder

CHANNELS = [0, 3, 7]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return scan_folder(tmp_path_factory.mktemp("dataset"))


@pytest.fixture(scope="module")
def model():
    return onnxviz.load(VGG, device="cpu")


@pytest.mark.parametrize(("shard_size", "batch_size", "decoders"), [(1, 1, 1), (3, 2, 2), (5, 8, 3), (256, 4, 2)])
def test_every_cut_gives_the_brute_force_answer(model, folder, shard_size, batch_size, decoders) -> None:
    engine = Engine(shard_size=shard_size, decoders=decoders)
    result = model.topk(
        folder, node="conv3", channels=CHANNELS, k=5, batch_size=batch_size, project=False, engine=engine
    )
    expected = brute_force(model, folder, "conv3", CHANNELS, 5)
    got = result.to_json()["channels"]
    for c in expected:
        assert [(e["image"], e["y"], e["x"]) for e in got[c]] == [(e["image"], e["y"], e["x"]) for e in expected[c]]
        np.testing.assert_allclose([e["activation"] for e in got[c]], [e["activation"] for e in expected[c]], rtol=1e-5)
    assert result.scan.skipped == ["broken.png", "wrong_shape.npy"]
    assert result.scan.processed == 16
    reference = model.topk(folder, node="conv3", channels=CHANNELS, k=5, batch_size=4, project=False)
    assert json.dumps(result.to_json()) == json.dumps(reference.to_json())


def test_images_are_decoded_while_the_session_runs(tmp_path) -> None:
    """When the session starts a batch, files after it have started decoding: the run waits (up to
    5 s) for that, so without decoding ahead on other threads the test fails."""
    rng = np.random.default_rng(1)
    for i in range(12):
        np.save(tmp_path / f"img_{i:02d}.npy", rng.standard_normal((3, 32, 32)).astype(np.float32))
    model = onnxviz.load(VGG, device="cpu")
    started: list[str] = []
    ahead: list[bool] = []
    prepare = model.prepare

    def recording_prepare(image):
        started.append(threading.current_thread().name)
        return prepare(image)

    model.prepare = recording_prepare
    runner = model.forward_runner(model.resolve("conv3").tensor, model.input_shape())
    run = runner.run
    handed = [0]

    def waiting_run(batch, what="forward graph"):
        handed[0] += len(batch)
        pause = threading.Event()
        for _ in range(500):
            if len(started) > handed[0] or handed[0] == 12:
                break
            pause.wait(0.01)
        ahead.append(len(started) > handed[0])
        return run(batch, what)

    runner.run = waiting_run
    model.topk(tmp_path, node="conv3", channels=[0], k=2, batch_size=2, project=False, engine=Engine(shard_size=4))
    assert len(started) == 12 and all(name.startswith("onnxviz-decode") for name in started)
    assert len(ahead) == 6 and all(ahead[:-1])  # every batch but the last had files after it decoding


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--engine", "spark"], "Unknown engine 'spark'"),
        (["--shard-size", "0"], "--shard-size must be positive"),
        (["--decoders", "0"], "--decoders must be positive"),
        (["--engine", "ray", "--workers", "0"], "--workers must be positive"),
        (["--ray-address", "auto"], "--ray-address needs --engine ray"),
    ],
)
def test_bad_engine_options_exit_2(capsys, folder, args, needle) -> None:
    code, _, err = run_cli(capsys, "topk", VGG, folder, "--node", "conv2", *args)
    assert code == 2 and needle in err
