"""The chained ascent (the step as ONNX graphs on the model's device), under the CPU provider:
images and curves against the numpy path (``maximize._ascend``, float64, seeded alike), and the
graphs' adjoints by the adjoint identity ⟨A·x, y⟩ = ⟨x, Aᵀ·y⟩ evaluated with the graphs' own ops."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest

import onnxviz
from onnxviz.analyses.maximize import device_graphs as graphs
from onnxviz.analyses.maximize.analysis import _ascend, problem, start_image
from onnxviz.analyses.maximize.device import ascend_chained
from onnxviz.analyses.maximize.options import MaximizeOptions
from onnxviz.analyses.maximize.parameterisations import COLOUR_DECORRELATION
from onnxviz.analyses.maximize.transforms import Transforms
from onnxviz.runtime.sessions import choose_device, create_session
from tests.helpers import DEMO

STILL = {"jitter": 0, "zoom": (1.0, 1.0), "rotate": 0.0}


def _both_paths(model, node: str, channels: list[int], **options) -> list[tuple[np.ndarray, np.ndarray]]:
    """(final image, curve) of the numpy path and of the chained path, from the same seed."""
    settings = MaximizeOptions(node=node, channels=channels, **options)
    posed = problem(model, settings)
    results = []
    for ascend in ("numpy", "chained"):
        rng = np.random.default_rng(settings.seed)
        image = start_image(posed, settings, rng)
        if ascend == "chained":
            final, curve = ascend_chained(posed, image, settings, rng)
        else:
            curve, final = _ascend(posed, image, settings, rng, None), image.image()
        results.append((final, np.asarray(curve)))
    return results


def _assert_agree(numpy_path: tuple[np.ndarray, np.ndarray], chained: tuple[np.ndarray, np.ndarray]) -> None:
    """Float32 agreement. Adam divides each gradient by its own running size, so a parameter whose
    gradient is at float32 round-off of the others' (a bilinear tap of weight 1e-9) can step by a
    sizeable fraction of the learning rate in one path and not the other: at most 0.1 % of the
    pixels may differ by more than 1e-4, none by more than 5e-3."""
    (image, curve), (chained_image, chained_curve) = numpy_path, chained
    assert chained_image.shape == image.shape and chained_curve.shape == curve.shape
    difference = np.abs(chained_image - image)
    assert np.mean(difference > 1e-4) <= 1e-3, f"{np.mean(difference > 1e-4):.2%} of the pixels differ"
    assert difference.max() <= 5e-3
    np.testing.assert_allclose(chained_curve, curve, rtol=1e-4, atol=1e-5)
    assert np.abs(image - image.mean()).max() > 0.05  # the images moved: agreement is not both standing still


CASES = {
    "pixel, no transforms": ("conv2", [1, 4], {"param": "pixel", "steps": 6, **STILL}),
    "fft, decorrelated, jitter zoom rotate": ("conv2", [1, 4], {"param": "fft", "steps": 6}),
    "pixel, decay and tv, transforms": ("conv2", [1, 4], {"param": "pixel", "steps": 6, "decay": 0.1, "tv": 0.05}),
    "class on the logits": ("fc2", [1, 5], {"param": "pixel", "steps": 2, **STILL}),
    "joint, fft, transforms": ("conv2", [1, 4, 9], {"objective": "joint", "weights": (1.0, -0.5, 2.0), "steps": 6}),
    "blur every 4 and 50th percentile clipping": ("conv2", [1, 4], {"regularise": "blur", "steps": 8, **STILL}),
    "decay and 20th percentile clipping": ("conv2", [1, 4], {"regularise": "decay", "steps": 8, **STILL}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_chained_ascent_equals_the_numpy_path(demo_model, case: str) -> None:
    node, channels, options = CASES[case]
    numpy_path, chained = _both_paths(demo_model, node, channels, **options)
    _assert_agree(numpy_path, chained)


def test_the_chained_ascent_reads_and_writes_an_nhwc_model_in_its_layout(fixture_model) -> None:
    """The render graph hands the forward NHWC and the update reads the inverse's NHWC gradient."""
    model = fixture_model("tf2onnx_nhwc.onnx")
    assert model.layout == "nhwc"
    numpy_path, chained = _both_paths(model, "conv1", [0, 1], param="fft", steps=4)
    _assert_agree(numpy_path, chained)


def _spec(fourier: bool, transformed: bool) -> graphs.AscentSpec:
    """Three channels of 12 × 10 with the identity input range: the graphs' linear parts alone."""
    height, width = 12, 10
    scale = np.random.default_rng(3).uniform(0.5, 2.0, (height, width // 2 + 1)) if fourier else None
    return graphs.AscentSpec(
        count=2,
        channels=3,
        height=height,
        width=width,
        layout="nchw",
        gain=np.ones(3),
        offset=np.zeros(3),
        order=(0, 1, 2),
        fourier_scale=scale,
        decorrelation=COLOUR_DECORRELATION if fourier else None,
        transformed=transformed,
        lr=0.05,
    )


def _session(model: onnx.ModelProto, extra_output: str):
    model.graph.output.append(onnx.helper.make_tensor_value_info(extra_output, onnx.TensorProto.FLOAT, None))
    session = create_session(model, choose_device("cpu"), "test graph")
    names = [o.name for o in session.get_outputs()]
    return lambda feeds: dict(zip(names, session.run(None, feeds), strict=True))


def _update_feeds(spec: graphs.AscentSpec, gradient: np.ndarray) -> dict[str, np.ndarray]:
    zeros = np.zeros(spec.params_shape, np.float32)
    return {
        graphs.GRADIENT: gradient.astype(np.float32),
        graphs.PARAMS: zeros,
        graphs.MOMENT: zeros,
        graphs.SECOND: zeros,
        graphs.STEP: np.zeros(1, np.float32),
    }


def test_the_transform_graphs_are_adjoint() -> None:
    """⟨T·x, y⟩ = ⟨x, Tᵀ·y⟩ with T the render graph's bilinear reads (its gray fill removed by
    rendering x = 0) and Tᵀ the update graph's scatter, for one step's zoom, turn and shift."""
    spec = _spec(fourier=False, transformed=True)
    render = _session(graphs.render_graph(spec), graphs.MODEL_INPUT)
    update = _session(graphs.update_graph(spec), graphs.PARAMS_GRADIENT)
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((2, *spec.params_shape))
    shifts, zooms, turns = Transforms(jitter=2, scale=(0.8, 1.2), rotate=20.0).parameters(spec.count, rng)
    draws = np.column_stack([shifts, np.cos(turns) / zooms, np.sin(turns) / zooms]).astype(np.float32)
    rendered = render({graphs.PARAMS: x.astype(np.float32), graphs.DRAWS: draws})
    fill = render({graphs.PARAMS: np.zeros_like(x, np.float32), graphs.DRAWS: draws})[graphs.MODEL_INPUT]
    feeds = _update_feeds(spec, y) | {graphs.INDEX: rendered[graphs.INDEX], graphs.WEIGHTS: rendered[graphs.WEIGHTS]}
    adjoint = update(feeds)[graphs.PARAMS_GRADIENT]
    forward = np.vdot(rendered[graphs.MODEL_INPUT] - fill, y)
    assert np.abs(rendered[graphs.MODEL_INPUT] - fill).max() > 0.5  # the transform moved something
    np.testing.assert_allclose(forward, np.vdot(x, adjoint), rtol=1e-5)


def test_the_fourier_render_and_its_adjoint_in_the_update_are_adjoint() -> None:
    """⟨F·p, y⟩ = ⟨p, Fᵀ·y⟩ with F the render graph's spectrum → decorrelated image (before the
    sigmoid) and Fᵀ the update graph's parameter gradient at a sigmoid of 0.5 (slope 1/4)."""
    spec = _spec(fourier=True, transformed=False)
    render = _session(graphs.render_graph(spec), graphs.LINEAR)
    update = _session(graphs.update_graph(spec), graphs.PARAMS_GRADIENT)
    rng = np.random.default_rng(5)
    params = rng.standard_normal(spec.params_shape)
    y = rng.standard_normal((spec.count, spec.channels, spec.height, spec.width))
    image = render({graphs.PARAMS: params.astype(np.float32)})[graphs.LINEAR]
    sigmoid = np.full(y.shape, 0.5, np.float32)
    adjoint = update(_update_feeds(spec, y) | {graphs.SIGMOID: sigmoid})[graphs.PARAMS_GRADIENT] * 4
    np.testing.assert_allclose(np.vdot(image, y), np.vdot(params, adjoint), rtol=1e-5)


def test_maximize_off_the_cpu_runs_the_chained_step() -> None:
    """``maximize`` takes the chained path wherever the model's device is not the CPU. Here the
    model is told it is on "cuda" while its engines keep the CPU provider they were built with, so
    the dispatch branch runs for real: its images differ from the numpy path's by float32
    round-off (so not to the bit: the chained graphs ran), and by no more."""
    options = {"steps": 6, "param": "pixel", "seed": 2, **STILL}
    reference = onnxviz.load(DEMO, device="cpu").maximize(node="conv2", channels=[1, 3], **options)
    model = onnxviz.load(DEMO, device="cpu")
    model.device = replace(model.device, name="cuda")
    chained = model.maximize(node="conv2", channels=[1, 3], **options)
    difference = np.abs(chained.images - reference.images).max()
    assert 0 < difference < 1e-3
    np.testing.assert_allclose(chained.curve, reference.curve, rtol=1e-4)
