"""Correspondence: Δ per part and layer equals the definition, computed here in numpy on a plain
onnxruntime session of the model file (parts and the random baseline); pair counts; the draw rule."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

import onnxviz
from onnxviz.data.preprocess import Preprocessing
from tests.helpers import DEMO, FIXTURES, ROOT, make_model, session

IMAGES = ROOT / "models" / "images"
# "centre" in three images (3 pairs), "corner" in four (6 pairs), "eye" in two (1 pair); sizes differ
# per image, so the masked inputs need several occluder shapes.
MASKS = {
    "images": {
        "circle.png": {"centre": [24, 24, 16, 16], "corner": [0, 0, 12, 12]},
        "triangle.png": {"centre": [22, 28, 18, 14], "corner": [0, 0, 12, 12], "eye": [40, 8, 10, 6]},
        "stripes.png": {"centre": [24, 24, 16, 16], "corner": [52, 52, 12, 12]},
        "chelsea.png": {"corner": [50, 2, 12, 12], "eye": [12, 20, 10, 6]},
    }
}


@pytest.fixture(scope="module")
def masks_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("correspondence")
    for name in MASKS["images"]:
        shutil.copy(IMAGES / name, folder / name)
    path = folder / "masks.json"
    path.write_text(json.dumps(MASKS), encoding="utf-8")
    return path


def _activations(tensors: list[str], path: Path = DEMO):
    """A plain session of the model file with ``tensors`` as its outputs: input (1, …) → flat arrays."""
    proto = onnx.load(str(path))
    del proto.graph.output[:]
    proto.graph.output.extend(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in tensors)
    plain = session(proto)
    name = plain.get_inputs()[0].name
    return lambda x: [y.reshape(-1) for y in plain.run(None, {name: x})]


def _signs(forward, x: np.ndarray, rect: list[int], fill: np.ndarray, layout: str = "nchw") -> list[np.ndarray]:
    """sign(f_L(x) − f_L(x̃)) per layer, x̃ = x with the rectangle filled, channel by channel."""
    left, top, width, height = rect
    masked = x.copy()
    if layout == "nhwc":
        masked[0, top : top + height, left : left + width, :] = fill
    else:
        masked[0, :, top : top + height, left : left + width] = fill[:, None, None]
    return [np.sign(a - b) for a, b in zip(forward(x), forward(masked), strict=True)]


def _reference(
    model, masks: dict, layers: list[str], random: dict, fill: str, path: Path = DEMO
) -> tuple[dict, dict, dict]:
    """Δ from the definition: per part, the mean over pairs (and draws) of the Hamming fraction."""
    layout = model.layout
    tensors = [model.resolve(layer).tensor for layer in layers]
    forward = _activations(tensors, path)
    inputs = {name: model.prepare(IMAGES / name)[0] for name in masks["images"]}
    fills = {name: _fill(fill, x, layout) for name, x in inputs.items()}
    parts, baseline, pairs = {}, {}, {}
    for part in dict.fromkeys(p for rects in masks["images"].values() for p in rects):
        having = [name for name, rects in masks["images"].items() if part in rects]
        own = {n: _signs(forward, inputs[n], masks["images"][n][part], fills[n], layout) for n in having}
        drawn = {n: [_signs(forward, inputs[n], r, fills[n], layout) for r in random[part][n]] for n in having}
        couples = list(itertools.combinations(having, 2))
        pairs[part] = len(couples)
        parts[part] = {
            layer: np.mean([(own[a][k] != own[b][k]).sum() / own[a][k].size for a, b in couples])
            for k, layer in enumerate(layers)
        }
        baseline[part] = {
            layer: np.mean(
                [(s[k] != t[k]).sum() / s[k].size for a, b in couples for s, t in zip(drawn[a], drawn[b], strict=True)]
            )
            for k, layer in enumerate(layers)
        }
    return parts, baseline, pairs


def _fill(fill: str, x: np.ndarray, layout: str = "nchw") -> np.ndarray:
    if fill == "mean":
        return x.mean(axis=(0, 1, 2) if layout == "nhwc" else (0, 2, 3))
    if fill == "gray":
        return (128 / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    return np.full(3, float(0 if fill == "zero" else fill))


def _documented_draws(masks: dict, height: int, width: int, draws: int, seed: int) -> dict:
    """The draw rule the module documents: images and parts in file order, N tops then N lefts."""
    rng = np.random.default_rng(seed)
    drawn: dict = {}
    for name, rects in masks["images"].items():
        for part, (_, _, w, h) in rects.items():
            tops, lefts = rng.integers(0, height - h + 1, draws), rng.integers(0, width - w + 1, draws)
            drawn.setdefault(part, {})[name] = [[int(x), int(y), w, h] for x, y in zip(lefts, tops, strict=True)]
    return drawn


def test_deltas_equal_the_definition_on_the_model_file(demo_model: onnxviz.Model, masks_file: Path) -> None:
    result = demo_model.correspondence(masks_file, random=4, seed=3)
    assert result.layers == ["conv3", "relu4"]  # the last conv alias and the code layer
    random = _documented_draws(MASKS, 64, 64, 4, 3)
    drawn = result.random_rectangles
    assert {p: {n: [list(r) for r in rects] for n, rects in images.items()} for p, images in drawn.items()} == random
    parts, baseline, pairs = _reference(demo_model, MASKS, result.layers, random, "zero")
    assert result.pairs == pairs == {"centre": 3, "corner": 6, "eye": 1}
    for part in parts:
        for layer in result.layers:
            assert result.parts[part][layer] == pytest.approx(parts[part][layer], abs=1e-9)
            assert result.random[part][layer] == pytest.approx(baseline[part][layer], abs=1e-9)
    assert result.summary() == {"layers": result.layers, "parts": result.parts, "random": result.random, "pairs": pairs}
    # The masks change the layers (Δ is not trivially 0) and a part is not its random baseline.
    assert 0 < result.parts["centre"]["conv3"] < 1 and result.parts["centre"] != result.random["centre"]


@pytest.mark.parametrize("fill", ["mean", "gray", "-1.5"])
def test_fills_and_named_layers_follow_the_definition(demo_model: onnxviz.Model, masks_file: Path, fill: str) -> None:
    result = demo_model.correspondence(
        masks_file, layers=["conv1", "/classifier/fc2/Gemm"], random=2, seed=0, fill=fill
    )
    assert result.layers == ["conv1", "fc2"]
    random = _documented_draws(MASKS, 64, 64, 2, 0)
    parts, baseline, _ = _reference(demo_model, MASKS, result.layers, random, fill)
    for part in parts:
        for layer in result.layers:
            assert result.parts[part][layer] == pytest.approx(parts[part][layer], abs=1e-9)
            assert result.random[part][layer] == pytest.approx(baseline[part][layer], abs=1e-9)


def test_channel_last_models_follow_the_definition(fixture_model, tmp_path: Path) -> None:
    """tf2onnx's NHWC model (32 x 32): the occluder fills the last axis; default layers."""
    path = FIXTURES / "tf2onnx_nhwc.onnx"
    model = fixture_model("tf2onnx_nhwc.onnx")
    masks = {
        "images": {
            "circle.png": {"middle": [10, 12, 8, 6], "edge": [0, 20, 5, 12]},
            "chelsea.png": {"middle": [12, 10, 8, 6], "edge": [27, 0, 5, 12]},
            "stripes.png": {"middle": [8, 8, 8, 6]},
        }
    }
    folder = tmp_path
    for name in masks["images"]:
        shutil.copy(IMAGES / name, folder / name)
    (folder / "masks.json").write_text(json.dumps(masks), encoding="utf-8")
    result = model.correspondence(folder / "masks.json", random=3, seed=1, fill="mean")
    assert result.layers == ["conv2", "relu3"]
    random = _documented_draws(masks, 32, 32, 3, 1)
    parts, baseline, pairs = _reference(model, masks, result.layers, random, "mean", path)
    assert result.pairs == pairs == {"middle": 3, "edge": 1}
    for part in parts:
        for layer in result.layers:
            assert result.parts[part][layer] == pytest.approx(parts[part][layer], abs=1e-9)
            assert result.random[part][layer] == pytest.approx(baseline[part][layer], abs=1e-9)


def test_a_part_in_three_images_averages_its_three_pairs(demo_model: onnxviz.Model, masks_file: Path) -> None:
    result = demo_model.correspondence(masks_file, layers=["conv2"], random=1)
    forward = _activations([demo_model.resolve("conv2").tensor])
    having = ["circle.png", "triangle.png", "stripes.png"]
    inputs = [demo_model.prepare(IMAGES / name)[0] for name in having]
    signs = [
        _signs(forward, x, MASKS["images"][n]["centre"], np.zeros(3))[0] for x, n in zip(inputs, having, strict=True)
    ]
    pair_values = [np.mean(signs[0] != signs[1]), np.mean(signs[0] != signs[2]), np.mean(signs[1] != signs[2])]
    assert len(set(pair_values)) == 3  # three different pairs, so a wrong pairing would show
    assert result.pairs["centre"] == 3
    assert result.parts["centre"]["conv2"] == pytest.approx(np.mean(pair_values), abs=1e-9)


def test_seeds_draw_inside_the_image_and_repeat(demo_model: onnxviz.Model, masks_file: Path) -> None:
    first = demo_model.correspondence(masks_file, layers=["conv1"], random=20, seed=7)
    again = demo_model.correspondence(masks_file, layers=["conv1"], random=20, seed=7)
    other = demo_model.correspondence(masks_file, layers=["conv1"], random=20, seed=8)
    assert first.random_rectangles == again.random_rectangles and first.random == again.random
    assert first.random_rectangles != other.random_rectangles
    for part, images in first.random_rectangles.items():
        for name, rects in images.items():
            size = tuple(MASKS["images"][name][part][2:])
            assert len(rects) == 20
            assert all((w, h) == size and 0 <= x <= 64 - w and 0 <= y <= 64 - h for x, y, w, h in rects)


def test_a_model_that_only_runs_batch_one_gives_the_same_deltas(tmp_path: Path) -> None:
    """Flatten → MatMul → a Reshape that hard-codes batch 1: masked inputs run one by one, with a
    note; the code layer (the MatMul's input) is the input itself, so its signs are sign(x − fill)."""
    rng = np.random.default_rng(4)
    nodes = [
        onnx.helper.make_node("Reshape", ["x", "flat"], ["f"], name="flatten_all"),
        onnx.helper.make_node("MatMul", ["f", "w"], ["m"], name="dense"),
        onnx.helper.make_node("Reshape", ["m", "row"], ["y"], name="as_row"),
    ]
    weights = rng.standard_normal((3 * 6 * 6, 5)).astype(np.float32)
    inits = {"flat": np.array([-1], np.int64), "w": weights, "row": np.array([1, 5], np.int64)}
    model = onnxviz.Model(
        onnxviz.graph.model.ModelGraph.from_proto(make_model(nodes, (1, 3, 6, 6), "y", inits)),
        onnxviz.runtime.sessions.choose_device("cpu"),
        Preprocessing(),
    )
    inputs = {f"{name}.npy": rng.standard_normal((1, 3, 6, 6)).astype(np.float32) for name in "abc"}
    for name, x in inputs.items():
        np.save(tmp_path / name, x)
    masks = {"images": {name: {"spot": [1 + i, 2, 3, 2]} for i, name in enumerate(inputs)}}
    (tmp_path / "masks.json").write_text(json.dumps(masks), encoding="utf-8")
    result = model.correspondence(tmp_path / "masks.json", layers=None, random=3, fill="0.25")
    assert result.layers == ["flatten_all"] and "batch 1" in result.note

    def signs(name: str, rect: list[int]) -> np.ndarray:
        left, top, width, height = rect
        masked = inputs[name].copy()
        masked[0, :, top : top + height, left : left + width] = 0.25
        return np.sign(inputs[name] - masked).reshape(-1)

    names = list(inputs)
    couples = list(itertools.combinations(names, 2))
    own = {n: signs(n, masks["images"][n]["spot"]) for n in names}
    drawn = {n: [signs(n, list(r)) for r in result.random_rectangles["spot"][n]] for n in names}
    expected = np.mean([np.mean(own[a] != own[b]) for a, b in couples])
    baseline = np.mean([np.mean(s != t) for a, b in couples for s, t in zip(drawn[a], drawn[b], strict=True)])
    assert result.parts["spot"]["flatten_all"] == pytest.approx(expected, abs=1e-12) and expected > 0
    assert result.random["spot"]["flatten_all"] == pytest.approx(baseline, abs=1e-12)
    assert result.pairs == {"spot": 3}
