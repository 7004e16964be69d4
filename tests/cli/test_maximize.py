"""``onnxviz maximize``: the JSON contract, the picture and raw images it writes, and every refusal."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import pytest
from onnx import helper

from tests.cli_helpers import run_cli
from tests.helpers import DEMO, make_model, session


def test_json_follows_the_contract_and_raw_holds_the_images(capsys, tmp_path) -> None:
    raw, picture = tmp_path / "images.npy", tmp_path / "max.png"
    code, out, _ = run_cli(
        capsys, "maximize", DEMO, "--node", "fc2", "--channel", "2,6", "--steps", "12", "--json",
        "--raw", raw, "--out", picture,
    )  # fmt: skip
    assert code == 0
    summary = json.loads(out)
    assert {"node", "objective", "channels", "start", "final", "curve", "probability"} <= set(summary)
    assert summary["objective"] == "class" and summary["channels"] == [2, 6]
    assert len(summary["curve"]) == 2 and all(len(row) == 13 for row in summary["curve"])
    assert [row[0] for row in summary["curve"]] == summary["start"]
    assert [row[-1] for row in summary["curve"]] == summary["final"]
    images = np.load(raw)
    assert images.dtype == np.float32 and images.shape == (2, 3, 64, 64)
    logits = session(onnx.load(DEMO)).run(None, {"input": images})[0].astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    for k, c in enumerate([2, 6]):
        assert summary["final"][k] == pytest.approx(logits[k, c] + log_p[k, c], rel=1e-4)
        assert summary["probability"][k] == pytest.approx(np.exp(log_p[k, c]), rel=1e-4, abs=1e-6)
    shown = cv2.imread(str(picture))
    assert shown is not None and shown.shape[1] > 2 * 64


def test_the_channel_objective_on_a_conv_layer_has_no_probability(capsys) -> None:
    code, out, _ = run_cli(capsys, "maximize", DEMO, "--node", "conv3", "--top", "2", "--steps", "3", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["objective"] == "channel" and "probability" not in summary
    assert len(summary["channels"]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--node", "conv3", "--channel", "64"], "Channel 64 does not exist"),
        (["--node", "conv3", "--channel", "1,2", "--objective", "joint", "--weights", "1"], "--weights has 1 values"),
        (["--node", "conv3", "--steps", "0"], "--steps must be a positive number"),
        (["--node", "conv3", "--steps", "-3"], "--steps must be a positive number"),
        (["--node", "conv3", "--objective", "sideways"], "Unknown --objective 'sideways'"),
        (["--node", "conv3", "--param", "wavelet"], "Unknown --param 'wavelet'"),
        (["--node", "conv3", "--zoom", "1.2"], "--zoom needs two numbers"),
        (["--node", "conv3", "--blur", "1", "--blur-every", "2"], "--blur changes pixels between steps"),
        (["--node", "conv3", "--objective", "class"], "Use --objective channel, or name the logits layer with --node"),
        (["--node", "conv3", "--channel", "1", "--weights", "1"], "--weights weighs the channels"),
        (["--node", "conv3", "--regularise", "sharp"], "Unknown --regularise"),
        (["--node", "nowhere"], "No node, tensor or alias"),
    ],
)
def test_bad_requests_exit_2_with_one_clear_message(capsys, args: list[str], message: str) -> None:
    code, _, err = (
        run_cli(capsys, "maximize", DEMO, *args, "--steps", "1")
        if "--steps" not in args
        else run_cli(capsys, "maximize", DEMO, *args)
    )
    assert code == 2
    assert message in " ".join(err.split())


def test_a_node_with_no_gradient_path_exits_2(capsys, tmp_path) -> None:
    """Bernoulli is random (no inverse rule, a stated reason): the gradient cannot be taken through
    it, and maximize says so."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Bernoulli", ["c"], ["y"], seed=0.0, name="coin"),
    ]
    weights = {"w": np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)}
    path = tmp_path / "round.onnx"
    onnx.save(make_model(nodes, (1, 3, 16, 16), "y", weights), path)
    code, _, err = run_cli(capsys, "maximize", path, "--node", "y", "--steps", "2")
    assert code == 2
    assert "no gradient path" in err
