"""Activation and filter grids: the right numbers, drawn where and how the figure says, dead maps
counted, clear refusals."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import pytest
from onnx import helper

import onnxviz
from onnxviz.analyses.grids import FRAME
from onnxviz.data.preprocess import Preprocessing
from tests.cli_helpers import run_cli
from tests.helpers import FIXTURES, make_model

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


HEADER = 28  # rows of the title line above every grid


def _conv_relu(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """3x3 convolution with one pixel of zero padding, then ReLU, written out in numpy."""
    padded = np.pad(x[0].astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    height, width = x.shape[2:]
    out = np.zeros((len(weights), height, width))
    for dy in range(3):
        for dx in range(3):
            window = padded[:, dy : dy + height, dx : dx + width]
            out += np.einsum("oi,ihw->ohw", weights[:, :, dy, dx], window)
    return np.maximum(out, 0)


def test_activation_grid_holds_the_layer_maps_and_counts_dead_ones() -> None:
    model = _dead_channel_model()
    x = np.random.default_rng(1).standard_normal((1, 3, 6, 6)).astype(np.float32)
    grid = model.activations(x, node="conv1")
    weights = onnx.numpy_helper.to_array(next(t for t in model.graph.model.graph.initializer if t.name == "w"))
    expected = _conv_relu(x, weights)
    np.testing.assert_allclose(grid.maps, expected, rtol=1e-5, atol=1e-6)
    assert grid.dead == 1 and not grid.maps[2].any()
    assert grid.strongest == int(expected.reshape(4, -1).max(axis=1).argmax())
    summary = grid.summary()
    assert summary["dead"] == 1 and summary["strongest"] == grid.strongest
    np.testing.assert_allclose(summary["max_per_map"], expected.reshape(4, -1).max(axis=1), rtol=1e-5)


def test_activation_figure_shows_each_map_on_one_shared_scale() -> None:
    """4 maps of 6x6: a 2x2 grid of 96-pixel tiles (each map pixel a 16x16 block), grey = |a| / max|a|,
    the strongest framed, the dead map black."""
    model = _dead_channel_model()
    x = np.random.default_rng(1).standard_normal((1, 3, 6, 6)).astype(np.float32)
    grid = model.activations(x, node="conv1")
    figure = grid.figure()
    peak = np.abs(grid.maps).max()
    for index, fmap in enumerate(grid.maps):
        row, col = divmod(index, 2)
        top, left = HEADER + 2 + row * 98, 2 + col * 98
        tile = figure[top : top + 96, left : left + 96]
        grey = np.clip(np.abs(fmap) / peak * 255, 0, 255).astype(np.uint8)
        expected = np.repeat(np.repeat(grey, 16, axis=0), 16, axis=1)
        for channel in range(3):
            np.testing.assert_array_equal(tile[3:-3, 3:-3, channel], expected[3:-3, 3:-3])
        if index == grid.strongest:
            assert tuple(tile[0, 48]) == FRAME and tuple(tile[48, 0]) == FRAME
        else:
            assert tuple(tile[0, 48]) == (expected[0, 48],) * 3
    assert not figure[HEADER + 2 + 98 : HEADER + 2 + 98 + 96, 2 : 2 + 96].any()  # map 2 is dead: black


def _centres(kernel: int, size: int) -> list[tuple[int, int, int, int]]:
    """(weight row, weight column, tile y, tile x) at the middle of each weight's block in a tile."""
    return [
        (a, b, int((a + 0.5) * size / kernel), int((b + 0.5) * size / kernel))
        for a in range(kernel)
        for b in range(kernel)
    ]


@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_first_layer_filters_are_drawn_in_colour_centred_on_grey(order: str) -> None:
    model = onnxviz.load(DEMO, device="cpu", order=order)
    grid = model.filters(node="conv1")
    proto = onnx.load(str(DEMO))
    weights = next(onnx.numpy_helper.to_array(t) for t in proto.graph.initializer if t.name.endswith("conv1.weight"))
    np.testing.assert_array_equal(grid.weights, weights)
    figure = grid.figure()
    shown = np.clip(128 + 127 * weights / np.abs(weights).max(), 0, 255).astype(np.uint8)  # 0 -> mid grey
    size = 40  # 16 filters of 3x3: tiles of max(40, 8 * 3) pixels in 4 columns, 2 pixels apart
    for index, filt in enumerate(shown):
        row, col = divmod(index, 4)
        top, left = HEADER + 2 + row * (size + 2), 2 + col * (size + 2)
        for a, b, y, x in _centres(3, size):
            colour = filt[:, a, b] if order == "rgb" else filt[::-1, a, b]
            np.testing.assert_array_equal(figure[top + y, left + x], colour)


def test_deeper_filters_are_one_grey_tile_per_input_channel() -> None:
    grid = onnxviz.load(DEMO, device="cpu").filters(node="conv2")
    weights = grid.weights  # (32, 16, 3, 3): rows = filters, columns = input channels
    figure = grid.figure()
    shown = np.clip(128 + 127 * weights / np.abs(weights).max(), 0, 255).astype(np.uint8)
    size = 40
    for out_channel in range(32):
        for in_channel in range(16):
            top, left = HEADER + 1 + out_channel * (size + 1), 1 + in_channel * (size + 1)
            for a, b, y, x in _centres(3, size):
                value = shown[out_channel, in_channel, a, b]
                assert tuple(figure[top + y, left + x]) == (value, value, value)


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
