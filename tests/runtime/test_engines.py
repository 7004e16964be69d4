"""The runtime layer: typed cache keys, the forward runner, batching and the gradient engine."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import onnxviz
from onnxviz.errors import UsageError
from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import InverseSpec
from onnxviz.runtime.batching import batch_size_for, run_in_batches
from onnxviz.runtime.engines import Engines, ForwardKey, OccluderKey, ProjectorKey
from onnxviz.runtime.gradient import GradientEngine
from onnxviz.runtime.perturb import Occluder
from onnxviz.runtime.projector import Projector
from onnxviz.runtime.sessions import choose_device
from tests.helpers import FIXTURES, make_model, session

DEMO = FIXTURES.parents[2] / "models" / "demo.onnx"


def test_keys_of_different_engines_never_collide() -> None:
    shape = (1, 3, 8, 8)
    assert ProjectorKey("t", "deconvnet", shape) == ProjectorKey("t", "deconvnet", shape, "exact")
    assert ProjectorKey("t", "deconvnet", shape) != ProjectorKey("t", "guided", shape)
    assert len({ForwardKey(("t",), shape), OccluderKey(shape, "nchw", 3), ProjectorKey("t", "deconvnet", shape)}) == 3
    with pytest.raises(AttributeError):
        ForwardKey(("t",), shape).tensors = ("u",)  # frozen: a key cannot change under its cache


def test_the_forward_runner_is_cached_and_cut_at_its_tensor() -> None:
    model = onnxviz.load(DEMO, device="cpu")
    engines = Engines(model.graph, model.device)
    x = np.random.default_rng(0).standard_normal((3, 3, 64, 64)).astype(np.float32)
    tensor = model.resolve("conv2").tensor
    runner = engines.forward(ForwardKey((tensor,), (1, 3, 64, 64)))
    assert engines.forward(ForwardKey((tensor,), (1, 3, 64, 64))) is runner and runner.batched
    (batched,) = runner.run(x)
    singles = [runner.run(x[i : i + 1])[0] for i in range(3)]
    np.testing.assert_array_equal(batched, np.concatenate(singles))


def test_a_forward_runner_started_at_a_layer_continues_the_full_forward() -> None:
    model = onnxviz.load(DEMO, device="cpu")
    engines = Engines(model.graph, model.device)
    x = np.random.default_rng(0).standard_normal((3, 3, 64, 64)).astype(np.float32)
    layer, output = model.resolve("conv2").tensor, model.graph.output_names[0]
    activation, full = engines.forward(ForwardKey((layer, output), (1, 3, 64, 64))).run(x)
    tail = engines.forward(ForwardKey((output,), (1, 3, 64, 64), start=layer))
    assert tail.input_name == layer and tail.batched
    np.testing.assert_allclose(tail.run(activation)[0], full, rtol=1e-5, atol=1e-6)


def test_batching_covers_every_item_once_in_order() -> None:
    seen: list[list[int]] = []
    progress: list[tuple[int, int]] = []

    def evaluate(indices: list[int]) -> np.ndarray:
        seen.append(indices)
        return np.asarray(indices) * 10

    out = run_in_batches(evaluate, 7, 3, lambda done, total: progress.append((done, total)))
    assert seen == [[0, 1, 2], [3, 4, 5], [6]] and progress == [(3, 7), (6, 7), (7, 7)]
    np.testing.assert_array_equal(out, np.arange(7) * 10)
    graph = onnxviz.load(DEMO, device="cpu").graph
    assert batch_size_for(graph, graph.shapes((1, 3, 64, 64)), 5) == 5
    assert 1 <= batch_size_for(graph, graph.shapes((1, 3, 64, 64)), None) <= 64
    with pytest.raises(UsageError, match="--batch-size must be positive"):
        batch_size_for(graph, {}, 0)


def test_the_gradient_engine_is_the_adjoint_of_a_linear_forward() -> None:
    """For f linear, ⟨f(u), v⟩ = ⟨u, ∇ₓ⟨v, f(x)⟩⟩ at any x: the engine's gradient is Jᵀv."""
    rng = np.random.default_rng(3)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv"),
        helper.make_node("AveragePool", ["c"], ["y"], kernel_shape=[2, 2], name="pool"),
    ]
    proto = make_model(nodes, (1, 2, 8, 8), "y", {"w": rng.standard_normal((3, 2, 3, 3)).astype(np.float32)})
    graph = ModelGraph.from_proto(proto)
    engine = GradientEngine(graph, "y", (1, 2, 8, 8), choose_device("cpu"))
    x, u = (rng.standard_normal((1, 2, 8, 8)).astype(np.float32) for _ in range(2))
    f_x, f_u = (session(proto).run(None, {"x": z})[0] for z in (x, u))
    v = rng.standard_normal(f_x.shape).astype(np.float32)
    value, gradient = engine.value_and_gradient(x, lambda _: v)
    np.testing.assert_allclose(value, f_x, rtol=1e-6)
    assert gradient.shape == x.shape
    np.testing.assert_allclose(float((f_u * v).sum()), float((u * gradient).sum()), rtol=1e-5)


def test_the_gradient_engine_matches_central_differences_through_a_nonlinearity() -> None:
    """∂⟨g, σ(conv(x))⟩/∂x at every input pixel, against (f(x + h) − f(x − h)) / 2h."""
    rng = np.random.default_rng(5)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Sigmoid", ["c"], ["y"], name="sigmoid"),
    ]
    proto = make_model(nodes, (1, 1, 5, 5), "y", {"w": rng.standard_normal((2, 1, 3, 3)).astype(np.float32)})
    engine = GradientEngine(ModelGraph.from_proto(proto), "y", (1, 1, 5, 5), choose_device("cpu"))
    x = rng.standard_normal((1, 1, 5, 5))
    g = rng.standard_normal((1, 2, 5, 5))
    _, gradient = engine.value_and_gradient(x.astype(np.float32), lambda value: g.astype(np.float32))
    plain = session(proto)

    def objective(z: np.ndarray) -> float:
        return float((plain.run(None, {"x": z.astype(np.float32)})[0].astype(np.float64) * g).sum())

    step = 1e-2
    numeric = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        bumped, lowered = x.copy(), x.copy()
        bumped[index] += step
        lowered[index] -= step
        numeric[index] = (objective(bumped) - objective(lowered)) / (2 * step)
    np.testing.assert_allclose(gradient, numeric, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize(("layout", "patch"), [("nchw", (2, 3)), ("nhwc", (3, 1)), ("nchw", 2)])
def test_the_occluder_fills_exactly_the_rectangle_at_each_corner(layout: str, patch) -> None:
    rng = np.random.default_rng(1)
    shape = (1, 2, 5, 6) if layout == "nchw" else (1, 5, 6, 2)
    image = rng.standard_normal(shape).astype(np.float32)
    corners = np.array([[0, 0], [3, 4], [2, 1]], np.int64)
    fill = np.array([7.0, -3.0], np.float32)
    occluder = Occluder(shape, layout, patch, choose_device("cpu"))
    batch = occluder.occluded(occluder.place(image), corners, fill).numpy()
    rows, cols = (patch, patch) if isinstance(patch, int) else patch
    channels_first = image.transpose(0, 3, 1, 2) if layout == "nhwc" else image
    for index, (top, left) in enumerate(corners):
        expected = channels_first[0].copy()
        expected[:, top : top + rows, left : left + cols] = fill[:, None, None]  # numpy clips at the border
        got = batch[index].transpose(2, 0, 1) if layout == "nhwc" else batch[index]
        np.testing.assert_array_equal(got, expected)


def test_projecting_one_position_is_its_activation_times_the_transposed_forward() -> None:
    """On a linear model the deconvnet is the transpose: ⟨P, u⟩ = a · f(u)[c, y, x] for every u,
    where P is the projection of the single activation a = f(x)[c, y, x]."""
    rng = np.random.default_rng(7)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("AveragePool", ["c"], ["y"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
    ]
    proto = make_model(nodes, (1, 2, 6, 6), "y", {"w": rng.standard_normal((3, 2, 3, 3)).astype(np.float32)})
    spec = InverseSpec("y", (1, 2, 6, 6), sparse=True)
    projector = Projector(ModelGraph.from_proto(proto), spec, choose_device("cpu"))
    x, u = (rng.standard_normal((1, 2, 6, 6)).astype(np.float32) for _ in range(2))
    f_x, f_u = (session(proto).run(None, {"x": z})[0] for z in (x, u))
    for channel, row, col in [(0, 0, 0), (2, 1, 2), (1, 2, 1)]:
        projection = projector.project_position(x, "x", channel, row, col)
        assert projection.shape == (2, 6, 6)
        expected = float(f_x[0, channel, row, col]) * float(f_u[0, channel, row, col])
        assert float((projection * u[0]).sum()) == pytest.approx(expected, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("fixture", ["resnet_like.onnx", "squeezenet_like.onnx", "family_hrnet_dynamo.onnx"])
def test_the_gradient_engine_runs_k_images_as_one_batch_each_through_its_own_switches(fixture: str) -> None:
    """Row k of a K-image run equals image k run alone: each seed goes back through its own image's
    MaxPool switches and ReLU masks (the switches onnxruntime numbers from the start of the batch).
    HRNet's dynamo export wrote batch 1 into a Resize, so its K images run one at a time."""
    graph = ModelGraph.load(FIXTURES / fixture)
    shape = graph.concrete_input_shape()
    target = graph.conv_layers()[-1].tensor
    engine = GradientEngine(graph, target, shape, choose_device("cpu"))
    assert engine.batched == ("hrnet" not in fixture)
    rng = np.random.default_rng(11)
    images = rng.standard_normal((3, *shape[1:])).astype(np.float32)
    seeds = rng.standard_normal((3, *graph.shapes(shape)[target][1:])).astype(np.float32)
    values, gradients = engine.value_and_gradient(images, lambda _: seeds)
    for k in range(3):
        value, gradient = engine.value_and_gradient(images[k : k + 1], lambda _, k=k: seeds[k : k + 1])
        np.testing.assert_array_equal(values[k : k + 1], value)
        np.testing.assert_allclose(gradients[k : k + 1], gradient, rtol=1e-5, atol=1e-6 * np.abs(gradient).max())
    assert not np.allclose(gradients[0], gradients[1])
