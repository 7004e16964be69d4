"""Activation maximisation with the whole step on the device: the numpy loop of
``maximize._ascend`` as a chain of onnxruntime runs whose tensors stay where the sessions run.

Per step: render (parameters → transformed model input), the model's forward, objective (the
layer's value → K objectives and the seed), the ``saliency`` inverse, update (adjoints,
regularisers, Adam, pixel constraints) — the graphs of ``device_graphs.py`` chained with the
gradient engine's own forward and inverse sessions through IOBinding. Parameters, Adam's moments,
the step count and every intermediate are OrtValues bound on the device (the GPU under CUDA);
per step only the transform's draws go up (4·K floats, drawn on the host from the run's generator
in the numpy path's order, so a seeded run draws the same transforms) and the K objectives come
down, for the curve and the progress bar. The class objective's seed, 2·one-hot − softmax, is
computed on the device by the objective graph. The parameters come down once, at the end.

The numpy path keeps parameters and moments in float64; these graphs are float32, so the two
agree to float32 round-off, which Adam's normalised steps let grow slowly over a long run.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import onnxruntime as ort

from onnxviz.analyses.maximize import device_graphs as graphs
from onnxviz.analyses.maximize.objectives import Target
from onnxviz.analyses.maximize.parameterisations import FourierImage, InputRange, PixelImage
from onnxviz.analyses.maximize.transforms import Transforms
from onnxviz.core.progress import StepProgress
from onnxviz.runtime.gradient import GradientEngine
from onnxviz.runtime.sessions import create_session, run_bound


class PosedProblem(Protocol):
    """What the chained loop reads of ``maximize.Problem``."""

    engine: GradientEngine
    target: Target
    pixels: InputRange
    layout: str
    shape: tuple[int, ...]


class AscentSettings(Protocol):
    """What the chained loop reads of ``MaximizeOptions``."""

    steps: int
    lr: float
    decay: float
    tv: float
    blur: float
    blur_every: int
    clip_percentile: float

    def transforms(self, height: int) -> Transforms: ...


def ascend_chained(
    posed: PosedProblem,
    image: FourierImage | PixelImage,
    settings: AscentSettings,
    rng: np.random.Generator,
    progress: StepProgress | None = None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``_ascend`` on the device: returns the final image (K, C, H, W, float64, NCHW, as
    ``image.image()`` gives it) and each step's objectives (before its update). ``image`` holds
    the start parameters and gets the final ones."""
    count, height = len(posed.target.seeds), posed.shape[2]
    transforms = settings.transforms(height)
    spec = ascent_spec(posed, image, settings, not transforms.identity)
    chain = Chain(spec, posed)
    state = chain.start(_to_device_params(image, spec))
    curve = []
    for step in range(settings.steps):
        draws = None if transforms.identity else _draws(transforms, count, rng)
        blurs = bool(settings.blur and settings.blur_every and (step + 1) % settings.blur_every == 0)
        objective, state = chain.step(state, draws, blurs)
        curve.append(objective)
        if progress is not None:
            progress(step + 1, settings.steps, float(np.mean(objective)))
    image.params = _from_device_params(state[graphs.PARAMS].numpy(), image)
    return image.image(), curve


def ascent_spec(
    posed: PosedProblem, image: FourierImage | PixelImage, settings: AscentSettings, transformed: bool
) -> graphs.AscentSpec:
    _, channels, height, width = posed.shape
    fourier = isinstance(image, FourierImage)
    return graphs.AscentSpec(
        count=len(posed.target.seeds),
        channels=channels,
        height=height,
        width=width,
        layout=posed.layout,
        gain=posed.pixels.gain,
        offset=posed.pixels.offset,
        order=tuple(posed.pixels.order),
        fourier_scale=image.scale if fourier else None,
        decorrelation=image.decorrelation if fourier else None,
        transformed=transformed,
        lr=settings.lr,
        decay=settings.decay,
        tv=settings.tv,
        blur=settings.blur if settings.blur_every else 0.0,
        clip_percentile=settings.clip_percentile if not fourier else 0.0,
    )


class Chain:
    """The sessions of one run and the step that chains them; tensors stay on ``device``."""

    def __init__(self, spec: graphs.AscentSpec, posed: PosedProblem) -> None:
        device = posed.engine.projector.device
        self.device = device
        self.spec = spec
        self.engine = posed.engine
        target = posed.target
        self.class_objective = target.objective == "class"
        self.render = create_session(graphs.render_graph(spec), device, "ascent's render graph")
        self.objective = create_session(
            graphs.objective_graph(target.seeds, self.class_objective), device, "ascent's objective graph"
        )
        self.update = create_session(graphs.update_graph(spec), device, "ascent's update graph")
        self.update_blurred = (
            create_session(graphs.update_graph(spec, blur=True), device, "ascent's blurring update graph")
            if spec.blur
            else None
        )
        self.seed = None if self.class_objective else self._upload(target.seeds)

    def _upload(self, array: np.ndarray) -> ort.OrtValue:
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array, np.float32), self.device.name, 0)

    def start(self, params: np.ndarray) -> dict[str, ort.OrtValue]:
        """The state on the device: parameters, Adam's zero moments, step 0."""
        zeros = np.zeros_like(params)
        names = (graphs.PARAMS, graphs.MOMENT, graphs.SECOND, graphs.STEP)
        return dict(zip(names, map(self._upload, (params, zeros, zeros, np.zeros(1))), strict=True))

    def step(
        self, state: dict[str, ort.OrtValue], draws: np.ndarray | None, blurs: bool
    ) -> tuple[np.ndarray, dict[str, ort.OrtValue]]:
        """One ascent step: (the K objectives at this step's image, the next state)."""
        feeds: dict[str, np.ndarray | ort.OrtValue] = {graphs.PARAMS: state[graphs.PARAMS]}
        if draws is not None:
            feeds[graphs.DRAWS] = draws
        rendered = self._run(self.render, feeds, "render")
        forward = self.engine.projector.forward_on_device(rendered[graphs.MODEL_INPUT], self.engine.input_name)
        scored = run_bound(
            self.objective,
            {graphs.VALUE: forward[self.engine.target]},
            self.device,
            "ascent's objective graph",
            frozenset({graphs.SEED}),
        )
        seed = scored[graphs.SEED] if self.class_objective else self.seed
        gradient = self.engine.projector.inverse_on_device(seed, forward)
        update = self.update_blurred if blurs and self.update_blurred is not None else self.update
        passed = {name: value for name, value in rendered.items() if name != graphs.MODEL_INPUT}
        feeds = {graphs.GRADIENT: gradient, **state, **passed}  # the taps, the image, the sigmoid
        updated = self._run(update, feeds, "update")
        state = {name: updated[graphs.NEW + name] for name in state}
        return scored[graphs.OBJECTIVE].numpy().astype(np.float64), state

    def _run(self, session: ort.InferenceSession, feeds: dict, what: str) -> dict[str, ort.OrtValue]:
        outputs = frozenset(o.name for o in session.get_outputs())
        return run_bound(session, feeds, self.device, f"ascent's {what} graph", outputs)


def _draws(transforms: Transforms, count: int, rng: np.random.Generator) -> np.ndarray:
    """One step's transform as (K, 4) floats: shift y, shift x, cos/zoom, sin/zoom."""
    shifts, zooms, turns = transforms.parameters(count, rng)
    draws = np.column_stack([shifts[:, 0], shifts[:, 1], np.cos(turns) / zooms, np.sin(turns) / zooms])
    return np.ascontiguousarray(draws, np.float32)


def _to_device_params(image: FourierImage | PixelImage, spec: graphs.AscentSpec) -> np.ndarray:
    """The parameters in the graphs' layout: fft (2, K, C, H, W/2+1) → (K, C, 2H, W/2+1)."""
    params = image.params
    if isinstance(image, FourierImage):
        params = np.concatenate([params[0], params[1]], axis=2)
    return np.ascontiguousarray(params, np.float32).reshape(spec.params_shape)


def _from_device_params(params: np.ndarray, image: FourierImage | PixelImage) -> np.ndarray:
    params = params.astype(np.float64)
    if isinstance(image, FourierImage):
        height = params.shape[2] // 2
        return np.stack([params[:, :, :height], params[:, :, height:]])
    return params
