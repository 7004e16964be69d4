"""Every way a user can get a command wrong: exit codes, one-paragraph messages, no files left."""

from __future__ import annotations

import json

import numpy as np
import pytest

from onnxviz import api
from onnxviz.runtime.sessions import cuda_status
from tests.cli_helpers import invoke, run_cli
from tests.helpers import FIXTURES

VGG = FIXTURES / "vgg_like_torchscript.onnx"
DEMO = FIXTURES.parents[2] / "models" / "demo.onnx"


def test_unsupported_op_is_a_failure_that_names_op_node_and_what_to_do(capsys, unsupported_model, picture) -> None:
    code, _, err = run_cli(capsys, "project", unsupported_model, picture, "--node", "conv2")
    assert code == 1
    assert "Bernoulli" in err and "coin_flips" in err and "conv1" in err and "eval mode" in err


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
        (["project", VGG, "{picture}", "--node", "conv1", "--mean", "0.5,x"], "--mean must be comma-separated"),
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


def test_layers_on_a_corrupt_model_is_a_usage_error(capsys, tmp_path) -> None:
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    code, _, err = run_cli(capsys, "layers", bad)
    assert code == 2 and "ONNX" in err


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


def test_invert_unknown_node_and_bad_form_are_usage_errors(capsys, tmp_path) -> None:
    code, _, err = run_cli(capsys, "invert", VGG, "--node", "nope", "--out-dir", tmp_path)
    assert code == 2 and "layers" in err
    code, _, err = run_cli(capsys, "invert", VGG, "--node", "conv1", "--out-dir", tmp_path, "--form", "gpu")
    assert code == 2 and "portable" in err and "internal error" not in err
    code, _, err = run_cli(capsys, "invert", VGG, "--node", "conv1", "--out-dir", tmp_path, "--lrn", "approx")
    assert code == 2 and "passthrough" in err
    assert not list(tmp_path.iterdir())


def test_bad_lrn_mode_is_a_usage_error_for_project(capsys, picture) -> None:
    code, _, err = run_cli(
        capsys, "project", FIXTURES / "opset9_zoo.onnx", picture, "--node", "conv2", "--lrn", "approx"
    )
    assert code == 2 and "passthrough" in err


# -- --debug: read from what the app parsed, for this run only --------------------------------


def test_debug_shows_the_traceback(capsys, picture) -> None:
    code, _, err = invoke(capsys, "--debug", "project", VGG, picture, "--node", "conv55")
    assert code == 2 and "Traceback" in err and "No node" in err


def test_debug_is_this_runs_flag_not_the_last_runs(capsys, picture) -> None:
    invoke(capsys, "--debug", "project", VGG, picture, "--node", "conv55")
    code, _, err = invoke(capsys, "project", VGG, picture, "--node", "conv55")
    assert code == 2 and "Traceback" not in err and "No node" in err


def test_debug_as_an_option_value_is_not_the_debug_flag(capsys, picture) -> None:
    """``--node --debug`` asks for a node named ``--debug``; only the parsed flag turns debugging on."""
    code, _, err = invoke(capsys, "project", VGG, picture, "--node", "--debug")
    assert code == 2 and "'--debug'" in err and "Traceback" not in err


def test_onnxviz_debug_variable_shows_the_traceback(capsys, picture, monkeypatch) -> None:
    monkeypatch.setenv("ONNXVIZ_DEBUG", "1")
    code, _, err = invoke(capsys, "project", VGG, picture, "--node", "conv55")
    assert code == 2 and "Traceback" in err


def test_a_bug_is_an_internal_error_with_a_hint_and_exit_1(capsys, monkeypatch) -> None:
    def broken(self) -> list:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(api.Model, "layers", broken)
    code, out, err = run_cli(capsys, "layers", DEMO, "--json")
    assert code == 1 and out == ""
    assert "internal error: ZeroDivisionError: a bug" in err and "--debug" in err
    code, _, err = invoke(capsys, "--debug", "layers", DEMO)
    assert code == 1 and "Traceback" in err and "ZeroDivisionError" in err


def test_interrupt_says_so_and_exits_130(capsys, monkeypatch) -> None:
    def interrupted(self, **options) -> list:
        raise KeyboardInterrupt

    monkeypatch.setattr(api.Model, "check", interrupted)
    code, _, err = run_cli(capsys, "check", DEMO)
    assert code == 130 and "interrupted" in err


def test_json_output_is_json_alone(capsys) -> None:
    """Notes and progress go to stderr, so ``--json`` output pipes into a JSON reader as it is."""
    code, out, err = run_cli(capsys, "check", DEMO, "--json", "--device", "cpu")
    assert code == 0 and json.loads(out)["ok"] and "running on the" in err


def test_an_onnxruntime_refusal_is_said_once_without_onnxruntimes_own_log_line(capfd, tmp_path) -> None:
    """Found by the fuzz (which now reads file descriptor 2): folding a Gemm onnxruntime refuses
    printed its red ERROR log beside onnxviz's paragraph."""
    import sys

    import onnx

    from onnxviz import cli
    from tests.helpers import DEMO

    model = onnx.load(str(DEMO))
    gemm = next(n for n in model.graph.node if n.name == "/classifier/fc1/Gemm")
    gemm.input[0] = "features.conv1.bias"
    path = tmp_path / "cut_off.onnx"
    onnx.save(model, str(path))
    picture = DEMO.parent / "images" / "chelsea.png"
    argv, sys.argv = sys.argv, ["onnxviz", "attribute", str(path), str(picture), "--method", "saliency", "--json"]
    try:
        with pytest.raises(SystemExit) as ended:
            cli.main()
    finally:
        sys.argv = argv
    err = capfd.readouterr().err
    assert ended.value.code in (1, 2) and "error:" in err
    assert "onnxruntime:" not in err and "ExecuteKernel" not in err, err
