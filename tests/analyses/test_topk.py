"""Top-k per channel: equal to a brute-force scan, robust to bad files, resumable exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

import onnxviz
from onnxviz.data.scanner import Engine
from tests.cli_helpers import run_cli
from tests.datasets import VGG, brute_force, scan_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return scan_folder(tmp_path_factory.mktemp("dataset"))


def test_topk_equals_a_brute_force_scan(folder) -> None:
    model = onnxviz.load(VGG, device="cpu")
    result = model.topk(folder, node="conv3", channels=[0, 5, 11], k=4, batch_size=3, project=False)
    expected = brute_force(model, folder, "conv3", [0, 5, 11], 4)
    got = result.to_json()["channels"]
    assert set(got) == set(expected)
    for c in expected:
        assert [(e["image"], e["y"], e["x"]) for e in got[c]] == [(e["image"], e["y"], e["x"]) for e in expected[c]]
        np.testing.assert_allclose([e["activation"] for e in got[c]], [e["activation"] for e in expected[c]], rtol=1e-5)
        assert len({e["image"] for e in got[c]}) == 4
    assert sorted(result.scan.skipped) == ["broken.png", "wrong_shape.npy"]


def test_ties_are_broken_by_path(folder) -> None:
    model = onnxviz.load(VGG, device="cpu")
    result = model.topk(folder, node="conv3", channels=list(range(16)), k=14, project=False)
    for entries in result.scan.entries.values():
        names = [e.image for e in entries]
        assert names.index("img_03.npy") + 1 == names.index("img_03_copy.npy")


def test_an_interrupted_scan_resumes_exactly(folder, tmp_path) -> None:
    model = onnxviz.load(VGG, device="cpu")
    engine = Engine(shard_size=4)
    calls = []

    def interrupt(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 4:  # batches of 2: the second shard of 4 files has just been recorded
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.topk(
            folder,
            node="conv4",
            channels=[1, 2],
            k=3,
            state_dir=tmp_path,
            batch_size=2,
            progress=interrupt,
            engine=engine,
        )
    records = sorted(p.name for p in (tmp_path / "scan").glob("shard_*.json"))
    assert records == ["shard_000000.json", "shard_000001.json"]
    assert json.loads((tmp_path / "scan" / "shard_000001.json").read_text())["processed"] == 4
    seen = []
    resumed = model.topk(
        folder,
        node="conv4",
        k=3,
        state_dir=tmp_path,
        resume=True,
        batch_size=2,
        project=False,
        progress=lambda done, total: seen.append(done),
        engine=engine,
    )
    assert seen[:2] == [8, 10]  # the first 8 files were not read again
    whole = model.topk(folder, node="conv4", channels=[1, 2], k=3, batch_size=4, project=False)
    assert resumed.to_json() == whole.to_json()
    assert resumed.scan.skipped == whole.scan.skipped == ["broken.png", "wrong_shape.npy"]


def test_a_scan_does_not_resume_across_shard_sizes(folder, tmp_path) -> None:
    model = onnxviz.load(VGG, device="cpu")
    model.topk(folder, node="conv4", channels=[1], k=2, state_dir=tmp_path, project=False, engine=Engine(shard_size=4))
    with pytest.raises(onnxviz.UsageError, match="Cannot resume: shard_size changed"):
        model.topk(folder, node="conv4", k=2, state_dir=tmp_path, resume=True, engine=Engine(shard_size=5))


def test_topk_cli_writes_grids_index_and_json(capsys, folder, tmp_path) -> None:
    code, out, err = run_cli(
        capsys, "topk", VGG, folder, "--node", "conv2", "--top-channels", "2", "--k", "3", "--out", tmp_path, "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["node"] == "conv2" and len(data["channels"]) == 2
    assert all(len(v) == 3 for v in data["channels"].values())
    assert (tmp_path / "index.html").read_text().count("<img") == 2
    assert len(list(tmp_path.glob("channel_*.png"))) == 2


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--k", "0"], "--k"),
        (["--resume"], "--resume needs --out"),
        (["--channels", "99"], "Channel 99"),
        (["--channels", "1", "--top-channels", "2"], "either"),
        (["--top-channels", "0"], "--top-channels"),
    ],
)
def test_topk_usage_errors_exit_2(capsys, folder, args: list[str], needle: str) -> None:
    code, _, err = run_cli(capsys, "topk", VGG, folder, "--node", "conv2", *args)
    assert code == 2 and needle in err


def test_topk_refuses_an_empty_folder_and_a_foreign_state(capsys, tmp_path, folder) -> None:
    code, _, err = run_cli(capsys, "topk", VGG, tmp_path, "--node", "conv2")
    assert code == 2 and "No pictures" in err
    out_dir = tmp_path / "out"
    assert run_cli(capsys, "topk", VGG, folder, "--node", "conv2", "--channels", "0", "--out", out_dir)[0] == 0
    code, _, err = run_cli(capsys, "topk", VGG, folder, "--node", "conv3", "--resume", "--out", out_dir)
    assert code == 2 and "Cannot resume" in err
