"""``onnxviz export``: the explainer written and checked against onnxviz's own result, what the file
holds said in text and JSON, and bad input refused with exit code 2 and one paragraph."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from tests.cli_helpers import run_cli
from tests.helpers import DEMO, FIXTURES, make_model

VGG = FIXTURES / "cam_vgg.onnx"


@pytest.fixture(scope="module")
def branched_model(tmp_path_factory):
    """conv → relu → conv → global pool → logits (the first output), and a side conv off the relu
    (a second output): the side conv is not on the path to the logits."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="trunk_conv"),
        helper.make_node("Relu", ["c1"], ["r1"], name="trunk_relu"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="head_conv"),
        helper.make_node("GlobalAveragePool", ["c2"], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["logits"], name="flatten"),
        helper.make_node("Conv", ["r1", "w3"], ["side"], name="side_conv"),
    ]
    weights = {
        "w1": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "w2": rng.standard_normal((5, 4, 3, 3)).astype(np.float32),
        "w3": rng.standard_normal((2, 4, 1, 1)).astype(np.float32),
    }
    model = make_model(nodes, (1, 3, 16, 16), "logits", weights)
    model.graph.output.append(helper.make_tensor_value_info("side", TensorProto.FLOAT, [1, 2, 16, 16]))
    path = tmp_path_factory.mktemp("export") / "branched.onnx"
    onnx.save(model, str(path))
    return path


def test_export_writes_the_explainer_and_checks_it_on_a_picture(capsys, tmp_path, picture) -> None:
    out = tmp_path / "explainer.onnx"
    code, printed, err = run_cli(capsys, "export", VGG, "--method", "gradcam++", "--out", out, "--check", picture)
    assert code == 0, err
    assert f"gradcam++ at conv5: {out}" in printed
    assert "inputs: input; outputs: logits, target_score, attribution" in printed
    assert "check on" in printed and "tolerance 0.0001" in printed
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "target_score", "attribution"]


def test_export_json_says_what_the_file_holds_and_how_the_check_went(capsys, tmp_path, picture) -> None:
    out = tmp_path / "ig.onnx"
    args = ["--method", "ig", "--steps", "4", "--target", "input", "--out", out, "--check", picture, "--json"]
    code, printed, err = run_cli(capsys, "export", VGG, *args)
    assert code == 0, err
    summary = json.loads(printed)
    assert summary["inputs"] == ["input", "target"]
    assert summary["outputs"] == ["logits", "target_score", "attribution"]
    assert summary["opset"] == 20 and summary["bytes"] == out.stat().st_size
    assert summary["model_bytes"] == VGG.stat().st_size
    assert summary["check"]["ok"] and summary["check"]["attribution_rel"] <= 1e-4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "gradcams"], "Unknown method 'gradcams'. hint: Methods that export: gradcam, gradcam++"),
        (["--method", "eigencam"], "cannot be exported: it takes a singular value decomposition"),
        (["--method", "rise"], "Methods that export: gradcam, gradcam++, xgradcam, layercam, hirescam, saliency"),
        (["--method", "gradcam", "--layer", "no-such-layer"], "No node, tensor or alias named 'no-such-layer'"),
        (["--method", "gradcam", "--layer", "fc1"], "a cam needs a 4-D layer"),
        (["--method", "ig", "--layer", "conv2"], "--layer is read by the cam methods"),
        (["--method", "gradcam", "--target", "top5"], "--target"),
        (["--method", "ig", "--steps", "0"], "--steps"),
    ],
)
def test_export_refuses_bad_input_with_exit_2_and_one_paragraph(capsys, tmp_path, args, message) -> None:
    out = tmp_path / "e.onnx"
    code, printed, err = run_cli(capsys, "export", VGG, *args, "--out", out)
    assert code == 2
    assert printed == ""
    assert message in " ".join(err.split())
    assert not out.exists()


def test_export_refuses_a_layer_off_the_path_to_the_target(capsys, tmp_path, branched_model) -> None:
    out = tmp_path / "e.onnx"
    code, _, err = run_cli(
        capsys, "export", branched_model, "--method", "gradcam", "--layer", "side_conv", "--out", out
    )
    assert code == 2
    assert "The layer 'side_conv' is not on the path to the target 'logits'" in " ".join(err.split())
    assert not out.exists()
    code, _, err = run_cli(
        capsys, "export", branched_model, "--method", "gradcam", "--layer", "trunk_relu", "--out", out
    )
    assert code == 0, err
    outputs = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).get_outputs()
    assert [o.name for o in outputs] == ["logits", "side", "target_score", "attribution"]


def test_export_fails_with_exit_1_naming_the_node_where_the_model_takes_no_batch(capsys, tmp_path) -> None:
    out = tmp_path / "e.onnx"
    batch_one = FIXTURES / "family_vit_dynamo.onnx"  # the dynamo exporter wrote batch 1 into a Reshape
    code, printed, err = run_cli(capsys, "export", batch_one, "--method", "saliency", "--out", out)
    assert code == 1
    assert printed == ""
    message = " ".join(err.split())
    assert (
        "The model does not run on a batch of images" in message and "Reshape node. Name:'node_Reshape_54'" in message
    )
    assert "Re-export the model with a dynamic batch axis" in message
    assert not out.exists()


def test_a_model_that_declares_no_output_exits_2(capsys, tmp_path) -> None:
    """Found by the long fuzz: an IndexError (internal error) where the model lists no output."""
    model = onnx.load(str(DEMO))
    del model.graph.output[:]
    path = tmp_path / "no_output.onnx"
    onnx.save(model, str(path))
    code, out, err = run_cli(capsys, "export", path, "--method", "gradcam", "--out", tmp_path / "e.onnx")
    assert code == 2 and out == ""
    assert "declares no graph output" in " ".join(err.split()) and "internal error" not in err
    assert not (tmp_path / "e.onnx").exists()
