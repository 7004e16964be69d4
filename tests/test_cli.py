"""Every command, and every way a user can get it wrong: exit codes, messages, files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

import onnxviz
from onnxviz import cli
from onnxviz.runtime import cuda_status
from tests.helpers import FIXTURES, make_model

VGG = FIXTURES / "vgg_like_torchscript.onnx"


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``onnxviz ARGS`` in-process; returns (exit code, stdout, stderr)."""
    argv = sys.argv
    sys.argv = ["onnxviz", *map(str, args)]
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> Path:
    import skimage.data

    path = tmp_path_factory.mktemp("img") / "chelsea.png"
    cv2.imwrite(str(path), cv2.cvtColor(skimage.data.chelsea(), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def unsupported_model(tmp_path_factory) -> Path:
    """conv → LpPool (no inverse rule) → conv: conv2 cannot be projected, conv1 can."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="first_conv"),
        helper.make_node("Relu", ["c1"], ["r1"], name="first_relu"),
        helper.make_node("LpPool", ["r1"], ["up"], kernel_shape=[2, 2], pads=[0, 0, 1, 1], name="lp_pool"),
        helper.make_node("Conv", ["up", "w2"], ["c2"], pads=[1, 1, 1, 1], name="second_conv"),
        helper.make_node("Relu", ["c2"], ["y"], name="second_relu"),
    ]
    inits = {
        "w1": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "w2": rng.standard_normal((4, 4, 3, 3)).astype(np.float32),
    }
    path = tmp_path_factory.mktemp("m") / "lp_pool.onnx"
    onnx.save(make_model(nodes, (1, 3, 8, 8), "y", inits), str(path))
    return path


def test_layers_table_and_json(capsys) -> None:
    code, out, _ = run_cli(capsys, "layers", VGG)
    assert code == 0 and "conv5" in out and "/12/MaxPool" in out
    code, out, _ = run_cli(capsys, "layers", VGG, "--json")
    data = json.loads(out)
    assert code == 0 and data["input_shape"] == [1, 3, 32, 32]
    conv1 = next(layer for layer in data["layers"] if layer["alias"] == "conv1")
    assert conv1["node"] == "/0/Conv" and conv1["shape"] == [1, 8, 32, 32]
    assert conv1["receptive_field"] == [3, 3] and conv1["jump"] == [1, 1]
    pool3 = next(layer for layer in data["layers"] if layer["alias"] == "pool3")
    assert pool3["jump"] == [8, 8]
    fc1 = next(layer for layer in data["layers"] if layer["alias"] == "fc1")
    assert fc1["receptive_field"] is None


def test_project_writes_png_raw_and_json_that_agree_with_the_api(capsys, tmp_path, picture) -> None:
    png, raw = tmp_path / "out" / "p.png", tmp_path / "p.npy"
    code, out, err = run_cli(
        capsys,
        "project",
        VGG,
        picture,
        "--node",
        "conv4",
        "--channel",
        "3,7",
        "--channel",
        "1",
        "--out",
        png,
        "--raw",
        raw,
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["channels"] == [3, 7, 1] and summary["device"] == "cpu"
    assert set(summary["timings_ms"]) >= {"forward", "inverse", "build"}
    assert "running on the" in err
    saved = np.load(raw)
    assert saved.dtype == np.float32 and saved.shape == (3, 3, 32, 32)
    api = onnxviz.load(VGG, device="cpu").project(picture, "conv4", channels=[3, 7, 1])
    np.testing.assert_allclose(saved, api.projections, rtol=1e-5, atol=1e-6)
    image = cv2.imread(str(png))
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 3 * 190
    assert not list(png.parent.glob("*.tmp"))


def test_project_top_k_picks_the_strongest_channels(capsys, tmp_path, picture) -> None:
    code, out, _ = run_cli(
        capsys, "project", VGG, picture, "-n", "pool2", "--top", "4", "--json", "--raw", tmp_path / "r.npy"
    )
    summary = json.loads(out)
    assert code == 0 and len(summary["channels"]) == 4
    assert summary["activations"] == sorted(summary["activations"], reverse=True)


def test_project_default_output_name(capsys, tmp_path, picture, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, _ = run_cli(capsys, "project", VGG, picture, "--node", "conv2", "--rule", "guided")
    assert code == 0 and (tmp_path / "chelsea_conv2_guided.png").exists()


def test_project_npy_input(capsys, tmp_path) -> None:
    x = np.random.default_rng(0).standard_normal((3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, out, _ = run_cli(
        capsys,
        "project",
        VGG,
        tmp_path / "x.npy",
        "--node",
        "fc2",
        "--channel",
        "4",
        "--raw",
        tmp_path / "r.npy",
        "--json",
    )
    assert code == 0 and json.loads(out)["tensor"] == "output"
    assert np.abs(np.load(tmp_path / "r.npy")).sum() > 0


def test_invert_writes_valid_graphs_that_reproduce_the_projection(capsys, tmp_path, picture) -> None:
    code, _, err = run_cli(capsys, "invert", VGG, "--node", "conv3", "--rule", "guided", "--out-dir", tmp_path)
    assert code == 0, err
    forward, inverse = onnx.load(str(tmp_path / "forward.onnx")), onnx.load(str(tmp_path / "inverse.onnx"))
    onnx.checker.check_model(forward)
    onnx.checker.check_model(inverse)
    assert any(n.name.startswith("/5/Conv/inverse") for n in inverse.graph.node)
    model = onnxviz.load(VGG, device="cpu")
    result = model.project(picture, "conv3", channels=[2], rule="guided")
    f = ort.InferenceSession(str(tmp_path / "forward.onnx"), providers=["CPUExecutionProvider"])
    i = ort.InferenceSession(str(tmp_path / "inverse.onnx"), providers=["CPUExecutionProvider"])
    values = dict(zip([o.name for o in f.get_outputs()], f.run(None, {"input": result.input_tensor}), strict=True))
    seed = np.zeros((1, *values[result.tensor].shape[1:]), np.float32)
    seed[0, 2] = values[result.tensor][0, 2]
    feeds = {"seed": seed} | {t.name: values[t.name] for t in i.get_inputs() if t.name != "seed"}
    np.testing.assert_allclose(i.run(None, feeds)[0], result.projections, rtol=1e-5, atol=1e-6)


# The family fixtures have their own check test (test_families.py), with strict xfails.
@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.onnx") if not p.name.startswith("family_")))
def test_check_passes_on_every_fixture(capsys, fixture: str) -> None:
    code, out, err = run_cli(capsys, "check", FIXTURES / fixture, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"], err
    assert report["layers"] and all(layer["ok"] for layer in report["layers"])


def test_check_fails_and_names_the_unsupported_op(capsys, unsupported_model) -> None:
    code, out, _ = run_cli(capsys, "check", unsupported_model, "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"]
    failed = [layer for layer in report["layers"] if not layer["ok"]]
    assert failed and "LpPool" in failed[0]["message"] and "lp_pool" in failed[0]["message"]
    assert any(layer["ok"] for layer in report["layers"])


def test_unsupported_op_is_a_failure_that_names_op_node_and_what_to_do(capsys, unsupported_model, picture) -> None:
    code, _, err = run_cli(capsys, "project", unsupported_model, picture, "--node", "conv2")
    assert code == 1
    assert "LpPool" in err and "lp_pool" in err and "conv1" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["project", VGG, "{picture}", "--node", "conv55"], "conv5"),
        (["project", VGG, "{picture}", "--node", "Conv"], "matches"),
        (["project", "missing.onnx", "{picture}", "--node", "conv1"], "not found"),
        (["project", VGG, "missing.png", "--node", "conv1"], "Image not found"),
        (["project", VGG, "{picture}", "--node", "conv1", "--channel", "99"], "does not exist"),
        (["project", VGG, "{picture}", "--node", "conv1", "--channel", "x"], "integers"),
        (["project", VGG, "{picture}", "--node", "conv1", "--top", "0"], "--top"),
        (["project", VGG, "{picture}", "--node", "conv1", "--rule", "lrp"], "deconvnet"),
        (["project", VGG, "{picture}", "--node", "conv1", "--preset", "keras"], "imagenet"),
        (["project", VGG, "{picture}", "--node", "conv1", "--size", "64"], "--size"),
        (["project", VGG, "{picture}", "--node", "conv1", "--size", "64,64"], "fixed"),
        (["project", VGG, "{picture}", "--node", "conv1", "--device", "tpu"], "auto"),
        (["project", VGG, "{picture}", "--node", "conv1", "--layout", "nwhc"], "nchw"),
        (["project", VGG, "{picture}"], "--node"),
    ],
)
def test_usage_errors_exit_2_with_a_message(capsys, picture, args: list, needle: str) -> None:
    args = [str(picture) if a == "{picture}" else a for a in args]
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert needle in err


def test_corrupt_model_and_unreadable_image_exit_2(capsys, tmp_path, picture) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(VGG.read_bytes()[:5000])
    code, _, err = run_cli(capsys, "project", bad, picture, "--node", "conv1")
    assert code == 2 and "truncated or corrupt" in err
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    code, _, err = run_cli(capsys, "project", VGG, text, "--node", "conv1")
    assert code == 2 and "OpenCV" in err
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((3, 31, 32), np.float32))
    code, _, err = run_cli(capsys, "project", VGG, wrong, "--node", "conv1")
    assert code == 2 and "(1, 3, 32, 32)" in err


@pytest.mark.skipif(cuda_status()[0], reason="this machine has a working CUDA provider")
def test_device_cuda_without_cuda_is_a_failure_that_says_what_is_missing(capsys, picture) -> None:
    code, _, err = run_cli(capsys, "project", VGG, picture, "--node", "conv1", "--device", "cuda")
    assert code == 1 and "CUDA" in err and "--device" in err and "onnxviz[cuda]" in err


def test_unwritable_output_leaves_nothing_behind(capsys, tmp_path, picture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(capsys, "project", VGG, picture, "--node", "conv1", "--out", blocker / "p.png")
    assert code == 2 and "Cannot" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_debug_shows_the_traceback(capsys, picture) -> None:
    argv = sys.argv
    sys.argv = ["onnxviz", "--debug", "project", str(VGG), str(picture), "--node", "conv55"]
    try:
        with pytest.raises(SystemExit) as info:
            cli.main()
    finally:
        sys.argv = argv
    assert info.value.code == 2 and "Traceback" in capsys.readouterr().err


def test_check_table_on_the_bundled_demo_model(capsys) -> None:
    demo = FIXTURES.parents[2] / "models" / "demo.onnx"
    code, out, _ = run_cli(capsys, "check", demo)
    assert code == 0 and "6/6 layers project." in out


def test_invert_unknown_node_and_bad_form_are_usage_errors(capsys, tmp_path) -> None:
    code, _, err = run_cli(capsys, "invert", VGG, "--node", "nope", "--out-dir", tmp_path)
    assert code == 2 and "layers" in err
    code, _, err = run_cli(capsys, "invert", VGG, "--node", "conv1", "--out-dir", tmp_path, "--form", "gpu")
    assert code == 2 and "portable" in err
    assert not list(tmp_path.iterdir())


def test_layers_on_a_corrupt_model_is_a_usage_error(capsys, tmp_path) -> None:
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    code, _, err = run_cli(capsys, "layers", bad)
    assert code == 2 and "ONNX" in err


def test_lrn_passthrough_differs_from_the_exact_gradient(capsys, tmp_path) -> None:
    zoo = FIXTURES / "opset9_zoo.onnx"
    x = np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    paths = {}
    for mode in ("exact", "passthrough"):
        paths[mode] = tmp_path / f"{mode}.npy"
        code, _, err = run_cli(
            capsys,
            "project",
            zoo,
            tmp_path / "x.npy",
            "--node",
            "conv2",
            "--channel",
            "0",
            "--lrn",
            mode,
            "--rule",
            "saliency",
            "--raw",
            paths[mode],
        )
        assert code == 0, err
    exact, passthrough = np.load(paths["exact"]), np.load(paths["passthrough"])
    assert not np.allclose(exact, passthrough, rtol=1e-3)
    code, _, err = run_cli(capsys, "project", zoo, tmp_path / "x.npy", "--node", "conv2", "--lrn", "approx")
    assert code == 2 and "passthrough" in err
