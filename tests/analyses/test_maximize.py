"""Activation maximisation: the step's gradient against finite differences and torch autograd,
the parameterisations' and transforms' adjoints, and the result's quality on the demo model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import onnxviz
from onnxviz.analyses.maximize.analysis import objective_gradient, problem
from onnxviz.analyses.maximize.options import MaximizeOptions
from onnxviz.analyses.maximize.parameterisations import FourierImage, InputRange, irfft2_adjoint
from onnxviz.analyses.maximize.transforms import Transforms, bilinear_taps, transform, transform_adjoint
from onnxviz.data.preprocess import Preprocessing
from onnxviz.errors import UsageError
from tests.helpers import DEMO, GraphBuilder, make_model, session


def _layer_session(path: Path, tensor: str):
    """A plain onnxruntime session on the model file with ``tensor`` as its only output."""
    model = onnx.load(path)
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    return session(model)


def _objective(values: np.ndarray, objective: str, channels: list[int], weights: list[float] | None) -> np.ndarray:
    """The objectives from their definitions, in float64, for each image."""
    values = values.astype(np.float64)
    if objective == "class":
        shifted = values - values.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return np.array([values[k, c] + log_p[k, c] for k, c in enumerate(channels)])
    if objective == "joint":
        return np.array([sum(w * values[0, c].mean() for c, w in zip(channels, weights, strict=True))])
    if objective == "neuron":
        centre = tuple(n // 2 for n in values.shape[2:])
        return np.array([values[(k, c, *centre)] for k, c in enumerate(channels)])
    return np.array([values[k, c].mean() for k, c in enumerate(channels)])


CASES = [
    ("conv2", "channel", [3, 7], None),
    ("conv2", "neuron", [3, 7], None),
    ("conv3", "joint", [1, 4, 9], [1.0, -0.5, 2.0]),
    ("fc2", "class", [1, 5], None),
    ("fc2", "channel", [1, 5], None),  # a 1-D layer: the unit itself (the logit)
]


@pytest.mark.parametrize(("node", "objective", "channels", "weights"), CASES)
def test_the_step_gradient_equals_central_differences_of_the_objective(node, objective, channels, weights) -> None:
    """Central differences of the objective, computed from its definition on a plain onnxruntime
    session of the model file: along the gradient (the slope there is ‖∇f‖) and along single
    pixels where the gradient is largest. Random full-image directions are not used: with ReLUs
    and max-pools, a float32-sized step crosses hundreds of kinks and swamps the slope."""
    model = onnxviz.load(DEMO, device="cpu")
    rng = np.random.default_rng(2)
    count = 1 if objective == "joint" else len(channels)
    x = rng.standard_normal((count, 3, 64, 64)).astype(np.float32)
    options = MaximizeOptions(node=node, channels=channels, objective=objective, weights=weights, param="pixel")
    objective_values, gradient = objective_gradient(model, x, options)
    tensor = model.resolve(node).tensor
    producer = model.graph.producer[tensor]
    if producer.op_type == "Relu":  # a rectified map is maximised before its ReLU
        tensor = producer.input[0]
    plain = _layer_session(DEMO, tensor)

    def f(z: np.ndarray) -> np.ndarray:
        return _objective(plain.run(None, {"input": z.astype(np.float32)})[0], objective, channels, weights)

    np.testing.assert_allclose(objective_values, f(x), rtol=1e-5, atol=1e-5)
    gradient = gradient.astype(np.float64)
    norms = np.linalg.norm(gradient.reshape(count, -1), axis=1)
    assert norms.max() > 0
    # A unit off for this input (ReLU at 0) has no gradient: the objective does not move either.
    direction = np.where(norms[:, None, None, None] > 0, gradient, rng.standard_normal(x.shape))
    direction /= np.linalg.norm(direction.reshape(count, -1), axis=1)[:, None, None, None]
    step = 1e-3
    along = (f(x + step * direction) - f(x - step * direction)) / (2 * step)
    np.testing.assert_allclose(along, norms, rtol=1e-2)
    for k in range(count):
        for flat in np.argsort(-np.abs(gradient[k]).ravel())[:4]:
            poke = np.zeros_like(x)
            poke[(k, *np.unravel_index(flat, x.shape[1:]))] = 1e-2
            numeric = (f(x + poke)[k] - f(x - poke)[k]) / 2e-2
            assert numeric == pytest.approx(gradient[k].ravel()[flat], rel=5e-2)


@pytest.mark.torch
@pytest.mark.parametrize("objective", ["channel", "neuron", "joint", "class"])
def test_the_step_gradient_equals_torch_autograd(tmp_path, objective: str) -> None:
    torch = pytest.importorskip("torch")
    g = GraphBuilder((1, 3, 12, 12), rng=np.random.default_rng(4))
    w1, b1, w2 = g.rand(6, 3, 3, 3), g.rand(6), g.rand(8, 6, 3, 3)
    conv = g.op("Relu", [g.op("Conv", ["x", w1, b1], pads=[1, 1, 1, 1])])
    pooled = g.op("MaxPool", [conv], kernel_shape=[2, 2], strides=[2, 2])
    features = g.op("Relu", [g.op("Conv", [pooled, w2], pads=[1, 1, 1, 1])])  # maximised before the ReLU
    flat = g.op("Flatten", [features])
    dense, bias = g.rand(5, 8 * 6 * 6, scale=0.1), g.rand(5)
    logits = g.op("Gemm", [flat, dense, bias], transB=1)
    proto = g.model([features, logits])
    for output in proto.graph.output:
        output.type.tensor_type.shape.SetInParent()
    path = tmp_path / "net.onnx"
    onnx.save(proto, path)
    arrays = {t.name: onnx.numpy_helper.to_array(t).astype(np.float64) for t in proto.graph.initializer}
    weights = {name: torch.from_numpy(array) for name, array in arrays.items()}
    node, channels, mix = (logits if objective == "class" else features), [2, 4], [0.5, -1.5]
    count = 1 if objective == "joint" else 2
    x = np.random.default_rng(5).standard_normal((count, 3, 12, 12)).astype(np.float32)
    model = onnxviz.load(path, device="cpu", preset="raw")
    mixed = mix if objective == "joint" else None
    options = MaximizeOptions(node=node, channels=channels, objective=objective, weights=mixed, param="pixel")
    _, got = objective_gradient(model, x, options)
    f = torch.nn.functional
    xt = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    hidden = f.max_pool2d(f.relu(f.conv2d(xt, weights[w1], weights[b1], padding=1)), 2)
    feats = f.conv2d(hidden, weights[w2], padding=1)
    scores = f.relu(feats).flatten(1) @ weights[dense].T + weights[bias]
    if objective == "class":
        total = sum(scores[k, c] + torch.log_softmax(scores, 1)[k, c] for k, c in enumerate(channels))
    elif objective == "joint":
        total = sum(w * feats[0, c].mean() for c, w in zip(channels, mix, strict=True))
    elif objective == "neuron":
        total = sum(feats[k, c, 3, 3] for k, c in enumerate(channels))
    else:
        total = sum(feats[k, c].mean() for k, c in enumerate(channels))
    total.backward()
    np.testing.assert_allclose(got, xt.grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("width", [8, 9])
def test_the_spectrum_adjoint_is_the_adjoint_of_irfft2(width: int) -> None:
    """⟨irfft2(X), g⟩ = ⟨(Re X, Im X), adjoint(g)⟩ for random X and g, even and odd widths."""
    rng = np.random.default_rng(0)
    spectrum = rng.standard_normal((2, 3, 7, width // 2 + 1)) + 1j * rng.standard_normal((2, 3, 7, width // 2 + 1))
    g = rng.standard_normal((2, 3, 7, width))
    left = float((np.fft.irfft2(spectrum, s=(7, width)) * g).sum())
    back = irfft2_adjoint(g, width)
    right = float((spectrum.real * back.real).sum() + (spectrum.imag * back.imag).sum())
    assert left == pytest.approx(right, rel=1e-10)


def test_the_fourier_image_backward_is_its_jacobian_transposed() -> None:
    """Through the 1/frequency scale, decorrelation, sigmoid and preprocessing: the directional
    derivative of ⟨image(p), g⟩ equals ⟨backward(g), d⟩."""
    rng = np.random.default_rng(1)
    pixels = InputRange.of(Preprocessing.preset("caffe"), 3)  # BGR and a gain of 255
    image = FourierImage((2, 3, 10, 12), pixels, rng, decorrelate=True)
    image.params = rng.standard_normal(image.params.shape) * 0.05
    g = rng.standard_normal((2, 3, 10, 12))
    image.image()
    analytic_grad = image.backward(g)
    base = image.params.copy()
    direction = rng.standard_normal(base.shape)
    step = 1e-5

    def value(params: np.ndarray) -> float:
        image.params = params
        return float((image.image() * g).sum())

    numeric = (value(base + step * direction) - value(base - step * direction)) / (2 * step)
    assert float((analytic_grad * direction).sum()) == pytest.approx(numeric, rel=1e-6)


def test_the_transforms_adjoint_is_exact_and_a_pure_shift_moves_pixels() -> None:
    rng = np.random.default_rng(3)
    u, v = rng.standard_normal((2, 2, 3, 11, 13))
    sampling = Transforms(jitter=3, scale=(0.8, 1.2), rotate=30).draw(2, 11, 13, rng)
    zero = np.zeros((1, 3, 1, 1))
    left = float((transform(u, sampling, zero) * v).sum())
    assert left == pytest.approx(float((u * transform_adjoint(v, sampling)).sum()), rel=1e-10)
    rows, cols = np.mgrid[0:11, 0:13].astype(np.float64)
    shifted = bilinear_taps((rows + 2).ravel()[None], (cols - 1).ravel()[None], 11, 13)
    gray = np.full((1, 3, 1, 1), 0.25)
    moved = transform(u[:1], shifted, gray)
    want = np.full_like(u[:1], 0.25)
    want[:, :, :9, 1:] = u[:1, :, 2:, :12]
    np.testing.assert_allclose(moved, want, atol=1e-12)


def test_bad_requests_are_usage_errors() -> None:
    model = onnxviz.load(DEMO, device="cpu")
    x = np.zeros((1, 3, 64, 64), np.float32)
    with pytest.raises(UsageError, match="Channel 64 does not exist"):
        objective_gradient(model, x, MaximizeOptions(node="conv3", channels=[64]))
    with pytest.raises(UsageError, match=r"^weights has 1 values for 2 channels"):
        objective_gradient(model, x, MaximizeOptions(node="conv3", channels=[0, 1], objective="joint", weights=[1.0]))
    with pytest.raises(UsageError, match=r"^steps must be a positive number"):
        model.maximize(node="conv3", channels=[0], steps=0)
    with pytest.raises(UsageError, match="class objective needs the logits"):
        objective_gradient(model, x, MaximizeOptions(node="conv3", channels=[0], objective="class"))
    with pytest.raises(UsageError, match="fft parameterisation"):
        model.maximize(node="conv3", channels=[0], blur=1.0, blur_every=2)


@pytest.mark.slow
def test_every_demo_class_visualisation_is_classified_as_its_class() -> None:
    """Defaults, 256 steps: a plain onnxruntime session on the model file gives each image its
    class with probability ≥ 0.9."""
    model = onnxviz.load(DEMO, device="cpu")
    result = model.maximize(node="fc2", channels=list(range(8)))
    logits = session(onnx.load(DEMO)).run(None, {"input": result.images})[0].astype(np.float64)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    assert probabilities[np.arange(8), np.arange(8)].min() >= 0.9
    np.testing.assert_allclose(result.probability, probabilities[np.arange(8), np.arange(8)], rtol=1e-4)
    assert (result.curve[-1] > result.curve[0]).all()


def test_a_channel_its_relu_holds_at_zero_still_climbs(tmp_path) -> None:
    """A bias of −10 keeps the ReLU at 0 everywhere for the start image: read after the ReLU the
    channel would have no gradient; read before it, it climbs."""
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    weights = {"w": np.full((2, 3, 3, 3), 0.1, np.float32), "b": np.array([-10.0, 0.0], np.float32)}
    path = tmp_path / "dead.onnx"
    onnx.save(make_model(nodes, (1, 3, 16, 16), "y", weights), path)
    model = onnxviz.load(path, device="cpu", preset="raw")
    result = model.maximize(node="y", channels=[0], steps=6, param="pixel", jitter=0, zoom=(1.0, 1.0), rotate=0.0)
    assert np.all(np.diff(result.curve[:, 0]) > 0)


def test_pixel_images_step_in_pixels_and_map_back_exactly() -> None:
    """The pixel parameterisation's image is the preprocessing of its pixels (BGR, mean, std) and
    ``set_image`` inverts it; its backward is the preprocessing's adjoint."""
    from onnxviz.analyses.maximize.parameterisations import PixelImage

    rng = np.random.default_rng(6)
    pixels = InputRange.of(Preprocessing.preset("caffe"), 3)
    image = PixelImage((2, 3, 5, 4), pixels, rng)
    rgb = image.params.copy()
    want = (rgb[:, ::-1] * 255.0 - np.array([103.939, 116.779, 123.68])[:, None, None]) / 1.0
    np.testing.assert_allclose(image.image(), want, rtol=1e-12)
    image.set_image(image.image())
    np.testing.assert_allclose(image.params, rgb, rtol=1e-12)
    g = rng.standard_normal(rgb.shape)
    assert float((image.image() * g).sum() - (want * g).sum()) == pytest.approx(0.0, abs=1e-9)
    direction = rng.standard_normal(rgb.shape)
    linear = float((pixels.to_input(direction) - pixels.to_input(np.zeros_like(direction))).ravel() @ g.ravel())
    assert float((image.backward(g) * direction).sum()) == pytest.approx(linear, rel=1e-10)


def test_the_regularisers_gradient_is_that_of_decay_and_total_variation() -> None:
    from onnxviz.analyses.maximize.transforms import regulariser_gradient

    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 6, 7))

    def penalty(z: np.ndarray) -> float:
        tv = (np.diff(z, axis=2) ** 2).sum() + (np.diff(z, axis=3) ** 2).sum()
        return 0.5 * 0.3 * float((z * z).sum()) + 0.7 * float(tv)

    direction = rng.standard_normal(x.shape)
    numeric = (penalty(x + 1e-6 * direction) - penalty(x - 1e-6 * direction)) / 2e-6
    assert float((regulariser_gradient(x, 0.3, 0.7) * direction).sum()) == pytest.approx(numeric, rel=1e-6)


def test_a_second_run_on_the_layer_reuses_its_gradient_engine() -> None:
    """A notebook's next channels or seed must not rebuild the sessions: the engine is cached per
    (tensor, input shape), and another layer gets its own."""
    model = onnxviz.load(DEMO, device="cpu")
    first = problem(model, MaximizeOptions(node="conv3", channels=[0, 1], steps=1))
    again = problem(model, MaximizeOptions(node="conv3", channels=[2], steps=1, seed=4))
    other = problem(model, MaximizeOptions(node="conv2", channels=[0], steps=1))
    assert again.engine is first.engine
    assert other.engine is not first.engine
    assert other.engine.target != first.engine.target
