"""Activation maximisation: the images that drive a channel, a neuron or a class most, found by
gradient ascent on the input with nothing but the ONNX file.

The gradient of a linear objective of a layer, ⟨seed, f_L(x)⟩, is one run of the ``saliency``
inverse graph (the exact vector-Jacobian product) seeded with ``seed``; the gradient engine runs
the K images as one batch, so a step is one forward and one inverse run. Objectives (per image k,
channel cₖ of layer L with map size H·W):

* ``channel``: the mean of channel cₖ's map (a 1-D layer: the unit itself, so the logits give
  class model visualisations);
* ``neuron``: the map's centre position;
* ``joint``: one image maximising Σₖ wₖ · mean(channel cₖ);
* ``class`` (the default where L is the logits: a 1-D layer the model gives out or reads by a
  Softmax): the logit plus the log-probability of class cₖ. The logit alone often rises while a
  rival's rises more (the demo model's "square" logit climbs to 100 while "circle" wins with
  p(square) ≈ 1e-29); the log-probability alone stops moving once p ≈ 1 and leaves a faint
  picture. Their sum, seed 2·one-hot(cₖ) − softmax, keeps raising the logit and pushes the rivals
  down: a picture the model calls cₖ, as vivid as the logit's.

A rectified map (``conv3``, ``relu3``) is read before its ReLU (``objective_tensor``): a channel
the ReLU holds at 0 everywhere at the start would have no gradient and never move.

The images are written by a parameterisation (``parameterisations.py``: lucid's ``fft`` by
default, or ``pixel``), moved by random transforms each step and regularised
(``transforms.py``); the step is Adam's (lr 0.05), in numpy, or off the CPU as chained graphs
that keep it on the device (``device.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxviz.analyses._common import move_layout
from onnxviz.analyses.maximize.device import ascend_chained
from onnxviz.analyses.maximize.device_graphs import ADAM_BETAS, ADAM_EPSILON
from onnxviz.analyses.maximize.objectives import (
    Target,
    choose_channels,
    is_logits,
    objective_seeds,
    probabilities,
)
from onnxviz.analyses.maximize.options import MaximizeOptions
from onnxviz.analyses.maximize.parameterisations import FourierImage, InputRange, PixelImage
from onnxviz.analyses.maximize.transforms import (
    blur,
    clip_small_norms,
    regulariser_gradient,
    transform,
    transform_adjoint,
)
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.progress import StepProgress
from onnxviz.core.result import Result
from onnxviz.data.preprocess import Preprocessing, picture_from_tensor
from onnxviz.errors import OptionError, UnsupportedOpError, UsageError
from onnxviz.render import pictures as render
from onnxviz.render.lineplot import line_plot
from onnxviz.runtime.engines import GradientKey
from onnxviz.runtime.gradient import GradientEngine
from onnxviz.runtime.projector import seeded_tensor

RECTIFIERS = ("Relu", "Clip")


@dataclass
class Maximization(Result):
    """K images (or one, ``joint``) in the model's layout and preprocessed space, with the
    objective at every step (``curve``: steps × images, regularisers not included)."""

    images: np.ndarray
    node: str
    objective: str
    channels: list[int]
    curve: np.ndarray
    layout: str
    preprocessing: Preprocessing
    probability: list[float] | None = None
    weights: list[float] | None = None
    class_names: list[str] | None = None  # the model's labels, for titles on the logits

    def figure(self) -> np.ndarray:
        """The K images titled with channel and final objective, beside the objective curves."""
        pictures = [picture_from_tensor(image, self.layout, self.preprocessing) for image in self.images]
        size = render.tile_size(*pictures[0].shape[:2])
        final = self.curve[-1]
        labels = self._labels()
        notes = [f"objective {value:.3g}" for value in final]
        if self.probability is not None and len(self.probability) == len(notes):
            notes = [f"{note}, p {p:.2f}" for note, p in zip(notes, self.probability, strict=True)]
        tiles = [
            render.titled_tile(picture, size, [label, note])
            for picture, label, note in zip(pictures, labels, notes, strict=True)
        ]
        columns = min(len(tiles), max(1, int(np.ceil(np.sqrt(len(tiles))))))
        body = render.grid(tiles, columns)
        plot = line_plot(self.curve.T, labels, "objective per step", "step", "objective", height=body.shape[0])
        return render.with_header(render.beside(body, plot), f"{self.objective} maximisation of {self.node}")

    def _labels(self) -> list[str]:
        if self.objective == "joint":
            return ["joint " + "+".join(str(c) for c in self.channels)]
        names = self.class_names
        if self.probability is not None and names is not None and len(names) > max(self.channels):
            return [f"{c} {names[c]}" for c in self.channels]
        return [f"ch {c}" for c in self.channels]

    def summary(self) -> dict:
        summary = {
            "node": self.node,
            "objective": self.objective,
            "channels": self.channels,
            "start": [float(v) for v in self.curve[0]],
            "final": [float(v) for v in self.curve[-1]],
            "curve": [[float(v) for v in row] for row in self.curve.T],
        }
        if self.weights is not None:
            summary["weights"] = self.weights
        if self.probability is not None:
            summary["probability"] = self.probability
        return summary


@dataclass(frozen=True)
class Problem:
    """What a run ascends: the gradient engine, the objective, and the input's pixel range."""

    engine: GradientEngine
    target: Target
    pixels: InputRange
    layout: str
    shape: tuple[int, ...]  # the model input for one image, NCHW

    def objective_and_gradient(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each image's objective at ``x`` (K, C, H, W) and its exact gradient with respect to x:
        one forward and one inverse run for the batch."""
        value, gradient = self.engine.value_and_gradient(
            move_layout(x, "nchw", self.layout, np.float32), self.target.gradient_seeds
        )
        return self.target.values(value), move_layout(gradient, self.layout, "nchw", np.float64)


def problem(model: LoadedModel, options: MaximizeOptions) -> Problem:
    """The ascent ``options`` pose on ``model``: its layer's gradient engine and objective."""
    shape = model.input_shape()
    nchw = (shape[0], shape[3], shape[1], shape[2]) if model.layout == "nhwc" else shape
    pixels = InputRange.of(model.preprocessing, nchw[1])
    layer = model.resolve(options.node)
    tensor = objective_tensor(model, layer.tensor)
    engine = _engine(model, tensor, shape, layer.alias)
    target = _target(model, (layer.alias, tensor, shape), options, engine, pixels)
    return Problem(engine, target, pixels, model.layout, nchw)


def objective_tensor(model: LoadedModel, tensor: str) -> str:
    """The tensor the objective reads: a Softmax's logits, and a rectified map's input. A channel
    that a ReLU (or ReLU6's Clip) holds at 0 everywhere at the start has no gradient and would never
    move; before the rectifier it always has one, and raising it raises the rectified map (lucid
    optimises its layers before the ReLU for the same reason)."""
    tensor = seeded_tensor(model.graph, tensor)
    producer = model.graph.producer.get(tensor)
    if producer is not None and producer.op_type in RECTIFIERS and producer.input[0] in model.graph.signal:
        return producer.input[0]
    return tensor


def objective_gradient(model: LoadedModel, x: np.ndarray, options: MaximizeOptions) -> tuple[np.ndarray, np.ndarray]:
    """The objective and its gradient at ``x`` (K images in the model's layout and preprocessed
    space): one step of the pixel parameterisation with no transforms and no regularisers."""
    posed = problem(model, options)
    objective, gradient = posed.objective_and_gradient(move_layout(x, model.layout, "nchw", np.float64))
    return objective, move_layout(gradient, "nchw", model.layout, np.float32)


def maximize(model: LoadedModel, options: MaximizeOptions, progress: StepProgress | None = None) -> Maximization:
    """Gradient ascent on the input for the chosen channels of ``options.node`` (see the module doc)."""
    settings = options.regularised()
    posed = problem(model, settings)
    rng = np.random.default_rng(settings.seed)
    image = start_image(posed, settings, rng)
    if model.device.name != "cpu" and posed.engine.batched:  # the step as chained graphs on the device
        final, curve = ascend_chained(posed, image, settings, rng, progress)
    else:
        curve = _ascend(posed, image, settings, rng, progress)
        final = image.image()
    value = posed.engine.value(move_layout(final, "nchw", model.layout, np.float32))
    curve.append(posed.target.values(value))
    target = posed.target
    return Maximization(
        images=move_layout(final, "nchw", model.layout, np.float32),
        node=target.alias,
        objective=target.objective,
        channels=target.channels,
        curve=np.asarray(curve, np.float64),
        layout=model.layout,
        preprocessing=model.preprocessing,
        probability=probabilities(value, target) if target.logits else None,
        weights=list(settings.weights) if target.objective == "joint" and settings.weights else None,
        class_names=model.labels() if target.logits else None,
    )


def start_image(posed: Problem, settings: MaximizeOptions, rng: np.random.Generator) -> FourierImage | PixelImage:
    """The K images' start parameters, drawn first from the run's generator (a seeded run's
    transforms come after them, whichever path steps)."""
    shape = (len(posed.target.seeds), *posed.shape[1:])
    if settings.param == "fft":
        return FourierImage(shape, posed.pixels, rng, settings.decorrelate)
    return PixelImage(shape, posed.pixels, rng)


def _ascend(
    posed: Problem,
    image: FourierImage | PixelImage,
    settings: MaximizeOptions,
    rng: np.random.Generator,
    progress: StepProgress | None,
) -> list[np.ndarray]:
    """The steps: transform, objective and gradient, back through the transform and the
    parameterisation, regularisers, Adam. Returns each step's objective (before its update)."""
    optimiser = Adam(settings.lr)
    count, _, height, width = (len(posed.target.seeds), *posed.shape[1:])
    transforms = settings.transforms(height)
    gray = posed.pixels.gray()
    curve = []
    for step in range(settings.steps):
        x = image.image()
        sampling = None if transforms.identity else transforms.draw(count, height, width, rng)
        objective, gradient = posed.objective_and_gradient(x if sampling is None else transform(x, sampling, gray))
        if sampling is not None:
            gradient = transform_adjoint(gradient, sampling)
        penalty_gradient = regulariser_gradient(x, settings.decay, settings.tv)
        optimiser.ascend(image.params, image.backward(gradient - penalty_gradient))
        image.project()
        if isinstance(image, PixelImage):
            _pixel_regularisers(image, settings, step, posed.pixels)
        curve.append(objective)
        if progress is not None:
            progress(step + 1, settings.steps, float(np.mean(objective)))
    return curve


class Adam:
    """Adam (Kingma & Ba) for ascent, on one parameter array updated in place."""

    def __init__(self, lr: float) -> None:
        self.lr = lr
        self.moment: np.ndarray | None = None
        self.second: np.ndarray | None = None
        self.steps = 0

    def ascend(self, params: np.ndarray, gradient: np.ndarray) -> None:
        if self.moment is None or self.second is None:
            self.moment, self.second = np.zeros_like(params), np.zeros_like(params)
        self.steps += 1
        beta1, beta2 = ADAM_BETAS
        self.moment = beta1 * self.moment + (1 - beta1) * gradient
        self.second = beta2 * self.second + (1 - beta2) * gradient * gradient
        corrected = self.moment / (1 - beta1**self.steps)
        spread = np.sqrt(self.second / (1 - beta2**self.steps)) + ADAM_EPSILON
        params += self.lr * corrected / spread


def _pixel_regularisers(image: PixelImage, settings: MaximizeOptions, step: int, pixels: InputRange) -> None:
    if settings.blur and settings.blur_every and (step + 1) % settings.blur_every == 0:
        image.set_image(blur(image.image(), settings.blur))
    if settings.clip_percentile:
        image.set_image(clip_small_norms(image.image(), settings.clip_percentile, pixels.gray()))


def _engine(model: LoadedModel, tensor: str, shape: tuple[int, ...], alias: str) -> GradientEngine:
    try:
        return model.engines.gradient(GradientKey(tensor, tuple(shape)))
    except UnsupportedOpError as exc:
        raise UsageError(
            f"'{alias}' has no gradient path to the input that onnxviz can follow: {exc}",
            "Pick another layer (`onnxviz layers MODEL` lists them).",
        ) from None


def _target(
    model: LoadedModel,
    layer: tuple[str, str, tuple[int, ...]],
    options: MaximizeOptions,
    engine: GradientEngine,
    pixels: InputRange,
) -> Target:
    """The objective on ``layer`` (its alias, objective tensor and the model's input shape): the
    channels asked for, or the ``top`` a gray image drives most, seeded for the objective."""
    alias, tensor, shape = layer
    channels, top = options.channels, options.top
    layer_shape = model.graph.shapes(shape)[tensor]
    count = layer_shape[1] if len(layer_shape) >= 2 else 1
    chosen = choose_channels(channels, top, count, alias)
    if top is not None:  # the K channels the gray start image drives most
        gray = np.broadcast_to(pixels.gray(), (1, pixels.gain.shape[0], *_spatial(shape, model.layout)))
        gray_seeds = objective_seeds(layer_shape, list(range(count)), "channel", None)
        value = engine.value(move_layout(gray, "nchw", model.layout, np.float32))
        scores = (value * gray_seeds).reshape(count, -1).sum(axis=1)
        chosen = [int(c) for c in np.argsort(-scores, kind="stable")[:top]]
    logits = is_logits(model, tensor, layer_shape)
    objective = options.objective or ("class" if logits else "channel")
    if objective == "class" and not logits:
        raise OptionError(
            "objective",
            f"The class objective needs the logits; {alias} is not a 1-D layer the model gives out "
            "or reads by a Softmax.",
            "Use {option} channel, or name the logits layer with {node}.",
        )
    weights = options.weights
    if weights is not None and len(weights) != len(chosen):
        message = f"{{option}} has {len(weights)} values for {len(chosen)} channels; give one per channel."
        raise OptionError("weights", message)
    if weights is not None and objective != "joint":
        raise OptionError("weights", "{option} weighs the channels of the joint objective.", "Add {objective} joint.")
    seeds = objective_seeds(layer_shape, chosen, objective, weights)
    return Target(alias, tensor, layer_shape, chosen, objective, seeds, logits)


def _spatial(shape: tuple[int, ...], layout: str) -> tuple[int, int]:
    return (shape[1], shape[2]) if layout == "nhwc" else (shape[2], shape[3])
