"""Activation and filter grids: the right numbers, dead maps counted, clear refusals."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
from onnx import helper

import onnxviz
from onnxviz.data.preprocess import Preprocessing
from tests.cli_helpers import run_cli
from tests.helpers import FIXTURES, make_model, session

DEMO = FIXTURES.parents[2] / "models" / "demo.onnx"
TRIANGLE = FIXTURES.parents[2] / "models" / "images" / "triangle.png"


def _dead_channel_model() -> onnxviz.Model:
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    weights[2] = 0.0
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    graph = onnxviz.graph.model.ModelGraph.from_proto(make_model(nodes, (1, 3, 6, 6), "y", {"w": weights}))
    return onnxviz.Model(graph, onnxviz.runtime.sessions.choose_device("cpu"), Preprocessing())


def test_activation_grid_holds_the_layer_maps_and_counts_dead_ones() -> None:
    model = _dead_channel_model()
    x = np.random.default_rng(1).standard_normal((1, 3, 6, 6)).astype(np.float32)
    grid = model.activations(x, "conv1")
    expected = session(model.graph.model).run(None, {"x": x})[0][0]
    np.testing.assert_allclose(grid.maps, expected, rtol=1e-6)
    assert grid.dead == 1
    assert grid.strongest == int(expected.reshape(4, -1).max(axis=1).argmax())
    assert grid.figure().shape[0] > 28


def test_filter_grid_shows_the_first_layer_weights() -> None:
    model = onnxviz.load(DEMO, device="cpu")
    grid = model.filters("conv1")
    proto = onnx.load(str(DEMO))
    expected = next(onnx.numpy_helper.to_array(t) for t in proto.graph.initializer if t.name.endswith("conv1.weight"))
    np.testing.assert_array_equal(grid.weights, expected)
    assert grid.figure().shape[1] >= 4 * 40


def test_activations_and_filters_commands(capsys, tmp_path) -> None:
    png, raw = tmp_path / "a.png", tmp_path / "a.npy"
    code, out, err = run_cli(
        capsys, "activations", DEMO, TRIANGLE, "--node", "conv2", "--out", png, "--raw", raw, "--json"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["maps"] == 32 and np.load(raw).shape == (32, 32, 32)
    assert cv2.imread(str(png)) is not None
    code, _, err = run_cli(capsys, "filters", DEMO, "--node", "conv2", "--out", tmp_path / "f.png")
    assert code == 0 and cv2.imread(str(tmp_path / "f.png")) is not None


def test_grids_refuse_layers_without_maps_or_filters(capsys) -> None:
    code, _, err = run_cli(capsys, "activations", DEMO, TRIANGLE, "--node", "fc1")
    assert code == 2 and "no spatial feature maps" in err
    code, _, err = run_cli(capsys, "filters", DEMO, "--node", "pool1")
    assert code == 2 and "not a conv layer" in err
