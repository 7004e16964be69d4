"""Incremental occlusion through residual Adds, Concats, AveragePools and LRN equals plain onnxruntime
runs of the untouched model on occluded inputs made in numpy."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import onnxviz
from onnxviz.analyses.occlusion import make_grid
from onnxviz.runtime.incremental import IncrementalOcclusion, plan
from onnxviz.targets.classes import ClassTarget
from tests.helpers import DEMO, FIXTURES, GraphBuilder, session


def _plain_scores(model: onnx.ModelProto, x: np.ndarray, patch: int, corners, fill: np.ndarray) -> np.ndarray:
    """First output of the original model for each occluded image, one plain run each."""
    plain = session(model)
    name = plain.get_inputs()[0].name
    outputs = []
    for top, left in corners:
        occluded = x.copy()
        occluded[0, :, top : top + patch, left : left + patch] = fill[:, None, None]
        outputs.append(plain.run(None, {name: occluded})[0][0])
    return np.stack(outputs)


def _incremental_scores(
    model: onnxviz.Model, x: np.ndarray, patch: int, corners, fill: np.ndarray
) -> tuple[np.ndarray, IncrementalOcclusion]:
    engine = IncrementalOcclusion(
        model.graph, model.graph.output_names[0], x.shape, patch, corners, model.device, min_saving=0.0
    )
    assert engine.applicable
    engine.use_image(x)
    indices = list(range(len(corners)))
    batches = [engine.evaluate(fill, patch, indices[i : i + 5]) for i in range(0, len(indices), 5)]
    return np.concatenate(batches).reshape(len(corners), -1), engine


def _walked(engine: IncrementalOcclusion) -> set[str]:
    return {node.op_type for step in engine.steps for node in step.nodes}


def _branching_model() -> onnx.ModelProto:
    """Every op the walk follows: an AveragePool excluding its pads, a residual Add of two regions
    of different sizes, LRN, a ceil-mode MaxPool, a channel Concat, a padless AveragePool, a Mul of
    two branches; then global pooling and a dense layer."""
    g = GraphBuilder((1, 3, 24, 24))
    stem = g.op("Relu", [g.op("Conv", ["x", g.rand(8, 3, 3, 3), g.rand(8)], pads=[1, 1, 1, 1])])
    pooled = g.op("AveragePool", [stem], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=0)
    branch = g.op("Conv", [pooled, g.rand(8, 8, 3, 3)], pads=[1, 1, 1, 1])
    joined = g.op("LRN", [g.op("Add", [branch, stem])], size=3, alpha=0.5, beta=0.75, bias=1.0)
    down = g.op("MaxPool", [joined], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    wide = g.op("Conv", [down, g.rand(4, 8, 3, 3)], pads=[1, 1, 1, 1])
    narrow = g.op("Conv", [down, g.rand(4, 8, 1, 1), g.rand(4)])
    cat = g.op("Concat", [wide, narrow], axis=1)
    halved = g.op("AveragePool", [cat], kernel_shape=[2, 2], strides=[2, 2])
    gated = g.op("Mul", [halved, g.op("Sigmoid", [halved])])
    flat = g.op("Flatten", [g.op("GlobalAveragePool", [gated])])
    logits = g.op("Gemm", [flat, g.rand(5, 8), g.rand(5)], transB=1)
    model = g.model([logits])
    model.graph.output[0].type.tensor_type.shape.SetInParent()  # onnx.checker wants a (here unknown) shape
    return model


@pytest.mark.parametrize("switch_coverage", [plan.SWITCH_COVERAGE, 2.0])
def test_every_followed_op_gives_the_plain_scores(monkeypatch, tmp_path, switch_coverage: float) -> None:
    monkeypatch.setattr(plan, "SWITCH_COVERAGE", switch_coverage)
    proto = _branching_model()
    onnx.save(proto, tmp_path / "branching.onnx")
    model = onnxviz.load(tmp_path / "branching.onnx", device="cpu")
    x = np.random.default_rng(1).standard_normal((1, 3, 24, 24)).astype(np.float32)
    corners = make_grid(5, 3, 24, 24).corners()
    fill = np.array([0.5, -1.0, 2.0], np.float32)
    fast, engine = _incremental_scores(model, x, 5, corners, fill)
    expected = _plain_scores(proto, x, 5, corners, fill)
    np.testing.assert_allclose(fast, expected, rtol=2e-5, atol=2e-6 * np.abs(expected).max())
    if switch_coverage > 1:  # nothing stops the walk before global pooling
        assert {"AveragePool", "Add", "LRN", "MaxPool", "Concat", "Mul"} <= _walked(engine)
        assert engine.switch == engine.steps[-1].output and engine.steps[-1].nodes[-1].op_type == "Mul"
        assert any(step.window is not None and step.window.scale is not None for step in engine.steps)


@pytest.mark.parametrize(
    ("fixture", "followed", "patch", "stride"),
    [
        ("resnet_like.onnx", {"Add"}, 6, 5),
        ("squeezenet_like.onnx", {"Concat"}, 8, 6),
        ("opset7_alexnet_like.onnx", {"LRN"}, 7, 5),
        ("family_inception_v3_torchscript.onnx", {"AveragePool", "Concat"}, 6, 5),
        ("family_densenet_torchscript.onnx", {"Concat"}, 6, 5),
        ("edge_cases.onnx", {"Sub", "Div"}, 5, 4),  # per-pixel ops read the patch itself, no crop
    ],
)
def test_fixtures_through_joins_give_the_plain_scores(
    fixture: str, followed: set[str], patch: int, stride: int
) -> None:
    model = onnxviz.load(FIXTURES / fixture, device="cpu")
    shape = model.input_shape()
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    corners = make_grid(patch, stride, shape[2], shape[3]).corners()
    fill = np.zeros(shape[1], np.float32)
    fast, engine = _incremental_scores(model, x, patch, corners, fill)
    expected = _plain_scores(onnx.load(FIXTURES / fixture), x, patch, corners, fill).reshape(len(corners), -1)
    assert followed <= _walked(engine)
    np.testing.assert_allclose(fast, expected, rtol=2e-5, atol=2e-6 * np.abs(expected).max())


def test_a_residual_network_switches_to_full_maps_only_at_a_block_output() -> None:
    """The walk stops where one map carries everything after it: after the block's Add, never
    between its two branches; each Add runs in the session of the block's last conv."""
    model = onnxviz.load(FIXTURES / "resnet_like.onnx", device="cpu")
    x = np.zeros(model.input_shape(), np.float32)
    tensor = ClassTarget().tensor(model.graph)
    engine = IncrementalOcclusion(
        model.graph, tensor, x.shape, 6, make_grid(6, 5, 32, 32).corners(), model.device, min_saving=0.0
    )
    ops = [[n.op_type for n in step.nodes] for step in engine.steps]
    assert ops[-1][0] == "Conv" and ops[-1][-2:] == ["Add", "Relu"]
    assert sum(step.count("Add") for step in ops) == 3 and all(step[0] != "Add" for step in ops)
    assert engine.steps[-1].region.coverage >= plan.SWITCH_COVERAGE
    needed_after = {n.name for n in model.graph.nodes} - {n.name for s in engine.steps for n in s.nodes}
    readers = {t for n in model.graph.nodes if n.name in needed_after for t in n.input}
    walked_outputs = {n.output[0] for s in engine.steps for n in s.nodes}
    assert readers & walked_outputs == {engine.switch}


def test_a_warm_engine_scores_each_new_image_from_its_own_maps(fixture_model) -> None:
    """The engine's sessions are cached with the model; the unoccluded maps must not be."""
    model = fixture_model("resnet_like.onnx")
    rng = np.random.default_rng(7)
    first, second = (rng.standard_normal(model.input_shape()).astype(np.float32) for _ in range(2))
    model.occlude(first, patch=6, stride=5, batch_size=8)
    warm = model.occlude(second, patch=6, stride=5, batch_size=8)
    corners = make_grid(6, 5, 32, 32).corners()
    logits = _plain_scores(onnx.load(FIXTURES / "resnet_like.onnx"), second, 6, corners, np.zeros(3, np.float32))
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected = (shifted / shifted.sum(axis=1, keepdims=True))[:, warm.target].reshape(warm.scores.shape)
    assert warm.incremental
    np.testing.assert_allclose(warm.scores, expected, rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize(("path", "incremental"), [(DEMO, True), (FIXTURES / "family_resnet_dynamo.onnx", False)])
def test_the_engine_runs_only_where_it_saves_enough_work(path, incremental: bool) -> None:
    """Crops run where they save at least MIN_WORK_SAVING of the multiply-adds (counted here from
    the weights and the plan's regions); elsewhere full maps run, with the same scores."""
    model = onnxviz.load(path, device="cpu")
    x = np.random.default_rng(3).standard_normal(model.input_shape()).astype(np.float32)
    size = x.shape[2]
    grid = make_grid(size // 4, size // 8, size, size)
    tensor = model.graph.output_names[0]
    engine = IncrementalOcclusion(model.graph, tensor, x.shape, size // 4, grid.corners(), model.device)
    assert (engine.saving >= plan.MIN_WORK_SAVING) == incremental == engine.applicable
    fast = model.occlude(x, patch=size // 4, stride=size // 8, incremental=True)
    full = model.occlude(x, patch=size // 4, stride=size // 8, incremental=False)
    assert fast.incremental == incremental
    np.testing.assert_allclose(fast.scores, full.scores, rtol=1e-5, atol=1e-6)
