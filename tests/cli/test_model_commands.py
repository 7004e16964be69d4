"""``layers``, ``check``, ``invert``, ``filters``: what each prints or writes is the API's answer."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import onnxviz
from tests.cli_helpers import run_cli
from tests.helpers import FIXTURES

VGG = FIXTURES / "vgg_like_torchscript.onnx"
DEMO = FIXTURES.parents[2] / "models" / "demo.onnx"


def test_layers_table_and_json(capsys) -> None:
    code, out, _ = run_cli(capsys, "layers", VGG)
    assert code == 0 and "conv5" in out and "/12/MaxPool" in out
    code, out, _ = run_cli(capsys, "layers", VGG, "--json")
    data = json.loads(out)
    assert code == 0 and data["input_shape"] == [1, 3, 32, 32] and data["layout"] == "nchw"
    conv1 = next(layer for layer in data["layers"] if layer["alias"] == "conv1")
    assert conv1["node"] == "/0/Conv" and conv1["shape"] == [1, 8, 32, 32]
    assert conv1["receptive_field"] == [3, 3] and conv1["jump"] == [1, 1]
    pool3 = next(layer for layer in data["layers"] if layer["alias"] == "pool3")
    assert pool3["jump"] == [8, 8]
    fc1 = next(layer for layer in data["layers"] if layer["alias"] == "fc1")
    assert fc1["receptive_field"] is None


def test_layers_json_lists_exactly_the_api_layers(capsys) -> None:
    code, out, _ = run_cli(capsys, "layers", FIXTURES / "resnet_like.onnx", "--json")
    listed = [(r["alias"], r["node"], r["op"], r["tensor"], tuple(r["shape"])) for r in json.loads(out)["layers"]]
    expected = onnxviz.load(FIXTURES / "resnet_like.onnx", device="cpu").layers()
    assert code == 0 and listed == [(r.alias, r.node, r.op_type, r.tensor, tuple(r.shape)) for r in expected]


def test_layers_table_has_one_row_per_layer(capsys) -> None:
    code, out, _ = run_cli(capsys, "layers", DEMO)
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert code == 0 and len(rows) == len(onnxviz.load(DEMO, device="cpu").layers())


def test_invert_writes_valid_graphs_that_reproduce_the_projection(capsys, tmp_path, picture) -> None:
    code, out, err = run_cli(capsys, "invert", VGG, "--node", "conv3", "--rule", "guided", "--out-dir", tmp_path)
    assert code == 0, err
    assert out.split() == ["forward:", str(tmp_path / "forward.onnx"), "inverse:", str(tmp_path / "inverse.onnx")]
    forward, inverse = onnx.load(str(tmp_path / "forward.onnx")), onnx.load(str(tmp_path / "inverse.onnx"))
    onnx.checker.check_model(forward)
    onnx.checker.check_model(inverse)
    assert any(n.name.startswith("/5/Conv/inverse") for n in inverse.graph.node)
    model = onnxviz.load(VGG, device="cpu")
    result = model.project(picture, node="conv3", channels=[2], rule="guided")
    f = ort.InferenceSession(str(tmp_path / "forward.onnx"), providers=["CPUExecutionProvider"])
    i = ort.InferenceSession(str(tmp_path / "inverse.onnx"), providers=["CPUExecutionProvider"])
    values = dict(zip([o.name for o in f.get_outputs()], f.run(None, {"input": result.input_tensor}), strict=True))
    seed = np.zeros((1, *values[result.tensor].shape[1:]), np.float32)
    seed[0, 2] = values[result.tensor][0, 2]
    feeds = {"seed": seed} | {t.name: values[t.name] for t in i.get_inputs() if t.name != "seed"}
    np.testing.assert_allclose(i.run(None, feeds)[0], result.projections, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.onnx") if not p.name.startswith("family_")))
def test_check_passes_on_every_fixture(capsys, fixture: str) -> None:
    code, out, err = run_cli(capsys, "check", FIXTURES / fixture, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"], err
    assert report["layers"] and all(layer["ok"] for layer in report["layers"])
    expected = onnxviz.load(FIXTURES / fixture, device="cpu").check()
    assert [(r["alias"], r["node"], r["op"]) for r in report["layers"]] == [
        (r.alias, r.node, r.op_type) for r in expected
    ]


def test_check_fails_and_names_the_unsupported_op(capsys, unsupported_model) -> None:
    code, out, _ = run_cli(capsys, "check", unsupported_model, "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"]
    failed = [layer for layer in report["layers"] if not layer["ok"]]
    assert failed and "Bernoulli" in failed[0]["message"] and "coin_flips" in failed[0]["message"]
    assert "its output is random" in failed[0]["message"]
    assert any(layer["ok"] for layer in report["layers"])


def test_check_table_on_the_bundled_demo_model(capsys) -> None:
    code, out, _ = run_cli(capsys, "check", DEMO)
    assert code == 0 and "6/6 layers project." in out


def test_check_table_counts_the_failures(capsys, unsupported_model) -> None:
    code, out, _ = run_cli(capsys, "check", unsupported_model)
    results = onnxviz.load(unsupported_model, device="cpu").check()
    passed = sum(r.ok for r in results)
    assert code == 1 and 0 < passed < len(results) and f"{passed}/{len(results)} layers project." in out
    assert "FAIL" in out


def test_filters_writes_the_weights_and_their_grid(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "filters", VGG, "--node", "conv1", "--raw", "w.npy")
    assert code == 0, err
    grid = onnxviz.load(VGG, device="cpu").filters(node="conv1")
    weights = np.load("w.npy")
    assert weights.dtype == np.float32 and weights.shape == (8, 3, 3, 3)
    np.testing.assert_array_equal(weights, grid.weights)
    png = tmp_path / "conv1_filters.png"
    assert f"picture: {png.name}" in out
    np.testing.assert_array_equal(cv2.imread(str(png))[..., ::-1], grid.figure())


def test_layers_names_why_a_layer_cannot_be_projected(capsys, unsupported_model) -> None:
    code, out, _ = run_cli(capsys, "layers", unsupported_model, "--json")
    reasons = {layer["alias"]: layer["unsupported"] for layer in json.loads(out)["layers"]}
    assert code == 0 and reasons["conv1"] is None
    assert (
        "Bernoulli" in reasons["conv2"]
        and "coin_flips" in reasons["conv2"]
        and "its output is random" in reasons["conv2"]
    )
    code, out, _ = run_cli(capsys, "layers", unsupported_model)
    assert code == 0 and "its output is random" in " ".join(out.split())
