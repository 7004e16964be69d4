"""The gradient engine from a layer source: value, activation and ∂score/∂activation for K images
in one forward and one partial inverse run, against the network cut at the layer."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from onnxviz.graph.model import ModelGraph
from onnxviz.runtime import projector
from onnxviz.runtime.engines import Engines, GradientKey
from onnxviz.runtime.gradient import GradientEngine
from onnxviz.runtime.sessions import choose_device
from tests.helpers import DEMO, FIXTURES, CutAt

DEVICE = choose_device("cpu")
CASES = [
    (DEMO, "/features/pool1/MaxPool_output_0", "logits"),
    (FIXTURES / "resnet_like.onnx", "/stem/stem.2/Relu_output_0", "output"),  # both the branch and the skip
    (FIXTURES / "resnet_like.onnx", "/layer1/relu/Relu_output_0", "/layer3/relu_1/Relu_output_0"),
]


def distinct_images(shape: tuple[int, ...], count: int = 3) -> np.ndarray:
    return np.random.default_rng(23).standard_normal((count, *shape[1:])).astype(np.float32)


@pytest.mark.parametrize(("path", "source", "target"), CASES)
def test_the_layer_gradient_of_each_image_matches_a_finite_difference_at_the_layer(path, source, target) -> None:
    graph = ModelGraph.load(path)
    shape = graph.concrete_input_shape()
    engine = GradientEngine(graph, target, shape, DEVICE, source=source)
    images = distinct_images(shape)
    rng = np.random.default_rng(29)
    seeds = rng.standard_normal((len(images), *graph.shapes(shape)[target][1:])).astype(np.float32)
    value, activation, gradient = engine.value_activation_gradient(images, lambda _: seeds)
    assert activation.shape == gradient.shape == (len(images), *graph.shapes(shape)[source][1:])
    rest = CutAt(onnx.load(str(path)), graph.input_name, source, target)
    for k, image in enumerate(images):
        row = image[None]
        np.testing.assert_allclose(rest(row, activation[k : k + 1]), value[k : k + 1], rtol=1e-4, atol=1e-4)
        u = gradient[k : k + 1] / np.abs(gradient[k]).max()
        ju = rest.directional_derivative(row, activation[k : k + 1], u, eps=1e-4)
        measured = float(np.sum(ju * seeds[k]))
        assert measured == pytest.approx(float(np.sum(u * gradient[k])), rel=1e-2), f"image {k}"
        other = (k + 1) % len(images)  # another image's gradient at this image's layer: not the same
        assert measured != pytest.approx(float(np.sum(u * gradient[other])), rel=0.1)
    assert not np.allclose(activation[0], activation[1])


def test_value_activation_and_gradient_come_from_one_forward_and_one_inverse_run(monkeypatch) -> None:
    graph = ModelGraph.load(DEMO)
    shape = graph.concrete_input_shape()
    engine = GradientEngine(graph, "logits", shape, DEVICE, source="/features/pool2/MaxPool_output_0")
    runs: list[str] = []
    original = projector.run_bound

    def counting(session, feeds, device, what, *args):
        runs.append(what)
        return original(session, feeds, device, what, *args)

    monkeypatch.setattr(projector, "run_bound", counting)
    engine.value_activation_gradient(distinct_images(shape, 4), lambda value: np.ones_like(value))
    assert runs == ["forward graph", "inverse graph"]


def test_the_input_as_the_source_gives_the_input_gradient() -> None:
    graph = ModelGraph.load(DEMO)
    shape = graph.concrete_input_shape()
    images = distinct_images(shape)
    seeds = np.random.default_rng(31).standard_normal((3, *graph.shapes(shape)["logits"][1:])).astype(np.float32)
    value, gradient = GradientEngine(graph, "logits", shape, DEVICE).value_and_gradient(images, lambda _: seeds)
    named = GradientEngine(graph, "logits", shape, DEVICE, source=graph.input_name)
    layer_value, activation, layer_gradient = named.value_activation_gradient(images, lambda _: seeds)
    np.testing.assert_array_equal(layer_value, value)
    np.testing.assert_array_equal(activation, images)
    np.testing.assert_array_equal(layer_gradient, gradient)


def test_the_layer_gradient_carried_back_to_the_input_is_the_input_gradient() -> None:
    """The chain rule across the cut: the gradient at the layer, seeded into the layer's own
    input-gradient engine, is the input gradient of the target."""
    graph = ModelGraph.load(FIXTURES / "resnet_like.onnx")
    shape = graph.concrete_input_shape()
    layer, target = "/layer1/relu_1/Relu_output_0", "output"
    images = distinct_images(shape)
    seeds = np.random.default_rng(37).standard_normal((3, *graph.shapes(shape)[target][1:])).astype(np.float32)
    _, _, at_layer = GradientEngine(graph, target, shape, DEVICE, source=layer).value_activation_gradient(
        images, lambda _: seeds
    )
    _, through_layer = GradientEngine(graph, layer, shape, DEVICE).value_and_gradient(images, lambda _: at_layer)
    _, direct = GradientEngine(graph, target, shape, DEVICE).value_and_gradient(images, lambda _: seeds)
    np.testing.assert_allclose(through_layer, direct, rtol=1e-4, atol=1e-5 * np.abs(direct).max())


def test_engines_keep_one_gradient_engine_per_source() -> None:
    graph = ModelGraph.load(DEMO)
    engines = Engines(graph, DEVICE)
    shape = graph.concrete_input_shape()
    layer = engines.gradient(GradientKey("logits", shape, "/features/pool2/MaxPool_output_0"))
    assert engines.gradient(GradientKey("logits", shape, "/features/pool2/MaxPool_output_0")) is layer
    from_input = engines.gradient(GradientKey("logits", shape))
    assert from_input is not layer and (layer.source, from_input.source) == (
        "/features/pool2/MaxPool_output_0",
        graph.input_name,
    )
