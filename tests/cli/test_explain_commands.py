"""``project`` and ``activations``: the files and JSON they write are the API's results."""

from __future__ import annotations

import json

import cv2
import numpy as np

import onnxviz
from tests.cli_helpers import run_cli
from tests.helpers import FIXTURES

VGG = FIXTURES / "vgg_like_torchscript.onnx"


def decoded(path) -> np.ndarray:
    """The RGB pixels of a PNG the command wrote."""
    image = cv2.imread(str(path))
    assert image is not None, f"{path} is not a PNG OpenCV can read"
    return image[..., ::-1]


def test_project_writes_png_raw_and_json_that_agree_with_the_api(capsys, tmp_path, picture) -> None:
    png, raw = tmp_path / "out" / "p.png", tmp_path / "p.npy"
    args = ("--node", "conv4", "--channel", "3,7", "--channel", "1", "--out", png, "--raw", raw, "--json")
    code, out, err = run_cli(capsys, "project", VGG, picture, *args)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["channels"] == [3, 7, 1] and summary["device"] == "cpu"
    assert summary["out"] == str(png) and summary["raw"] == str(raw)
    assert set(summary["timings_ms"]) >= {"forward", "inverse", "build"}
    assert "running on the" in err
    saved = np.load(raw)
    assert saved.dtype == np.float32 and saved.shape == (3, 3, 32, 32)
    api = onnxviz.load(VGG, device="cpu").project(picture, node="conv4", channels=[3, 7, 1])
    np.testing.assert_allclose(saved, api.projections, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(summary["activations"], api.activations, rtol=1e-6)
    figure = api.figure()
    assert np.abs(decoded(png).astype(int) - figure).max() <= 1  # the same picture, up to rounding
    assert not list(png.parent.glob("*.tmp"))


def test_project_top_k_picks_the_strongest_channels(capsys, tmp_path, picture) -> None:
    raw = tmp_path / "r.npy"
    code, out, _ = run_cli(capsys, "project", VGG, picture, "-n", "pool2", "--top", "4", "--json", "--raw", raw)
    summary = json.loads(out)
    assert code == 0 and len(summary["channels"]) == 4
    model = onnxviz.load(VGG, device="cpu")
    every = model.project(picture, node="pool2", top=16)  # pool2 has 16 channels: all, ranked by the API
    assert summary["channels"] == [int(c) for c in every.channels[:4]]
    assert summary["activations"] == sorted(summary["activations"], reverse=True)
    assert min(summary["activations"]) >= max(every.activations[4:])
    np.testing.assert_allclose(np.load(raw), every.projections[:4], rtol=1e-5, atol=1e-6)


def test_project_default_output_name(capsys, tmp_path, picture, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "project", VGG, picture, "--node", "conv2", "--rule", "guided")
    png = tmp_path / "chelsea_conv2_guided.png"
    assert code == 0 and f"picture: {png.name}" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [png.name]
    api = onnxviz.load(VGG, device="cpu").project(picture, node="conv2", rule="guided")
    assert np.abs(decoded(png).astype(int) - api.figure()).max() <= 1


def test_project_npy_input(capsys, tmp_path) -> None:
    x = np.random.default_rng(0).standard_normal((3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    raw = tmp_path / "r.npy"
    code, out, _ = run_cli(
        capsys, "project", VGG, tmp_path / "x.npy", "--node", "fc2", "--channel", "4", "--raw", raw, "--json"
    )
    assert code == 0 and json.loads(out)["tensor"] == "output"
    expected = onnxviz.load(VGG, device="cpu").project(x, node="fc2", channels=[4]).projections
    assert np.abs(expected).max() > 0  # a class-4 saliency map that is not all zero, so the match means something
    np.testing.assert_allclose(np.load(raw), expected, rtol=1e-5, atol=1e-6)


def test_lrn_passthrough_differs_from_the_exact_gradient(capsys, tmp_path) -> None:
    zoo = FIXTURES / "opset9_zoo.onnx"
    x = np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    model = onnxviz.load(zoo, device="cpu")
    saved = {}
    for mode in ("exact", "passthrough"):
        raw = tmp_path / f"{mode}.npy"
        args = ("--node", "conv2", "--channel", "0", "--lrn", mode, "--rule", "saliency", "--raw", raw)
        code, _, err = run_cli(capsys, "project", zoo, tmp_path / "x.npy", *args)
        assert code == 0, err
        saved[mode] = np.load(raw)
        expected = model.project(x, node="conv2", channels=[0], rule="saliency", lrn=mode).projections
        np.testing.assert_allclose(saved[mode], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(saved["exact"], saved["passthrough"], rtol=1e-3)


def test_activations_writes_the_maps_and_their_grid(capsys, tmp_path, picture) -> None:
    png, raw = tmp_path / "a.png", tmp_path / "a.npy"
    code, out, err = run_cli(capsys, "activations", VGG, picture, "--node", "conv2", "--out", png, "--raw", raw)
    assert code == 0, err
    grid = onnxviz.load(VGG, device="cpu").activations(picture, node="conv2")
    np.testing.assert_allclose(np.load(raw), grid.maps, rtol=1e-6)
    assert np.abs(decoded(png).astype(int) - grid.figure()).max() <= 1
    assert f"{grid.node}: {len(grid.maps)} maps, strongest {grid.strongest}, {grid.dead} dead" in out
