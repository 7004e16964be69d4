"""Does a converted model still see what the original sees?

``compare((A, B), images, options)`` runs the original A and its conversion B (another exporter, tf2onnx,
fp16, int8) on the same images and measures, against tolerances for B's precision:

* per image, on the outputs: top-1 agreement, and max |Δp| over classes, p = softmax of the
  logits (a Softmax at the output is skipped, as everywhere in onnxviz);
* per paired layer and image, with a = A's activation and b = B's (float64, flattened):
  relative error ‖b − a‖ / ‖a‖, and cosine cos(a, b) computed as 1 − ‖â − b̂‖² / 2 with
  â = a/‖a‖, which is exactly 1 for identical tensors and keeps its precision near 1, where
  ⟨a, b⟩/(‖a‖‖b‖) would cancel;
* per paired layer and image, the projection cosine: the K channels strongest in A are
  projected in both models (``Model.project``, same channels, same rule) and the smallest of the
  K cosines between A's and B's projection is kept;
* with ``occlusion``, per image: the Pearson correlation of the two occlusion maps of A's top-1
  class (the cosine of the centred maps, so exactly 1 for identical maps).

Every measure is a distance with a tolerance: relative error, 1 − cosine, 1 − projection cosine,
max |Δp|, 1 − correlation. A top-1 flip is beyond tolerance unless A itself nearly ties: when
every |Δp| is within t, the top-1 can only change if A's top-two margin is at most 2t.

A layer is compared where the next layer reads it: after the activation, batch norm, Cast and
quantize→dequantize round trip that follow it. So a conversion that fuses Conv+ReLU (int8 QDQ
does), inserts Q/DQ pairs or Casts, still pairs tensor for tensor with the original. fp16 and
QOperator conversions are compared as onnxviz loads them (fp16 weights run in float32, QOperator
ops in their QDQ form), so both forward runs and projections are those of the converted model.

Efficiency: one forward session per model exposes every compared tensor at once, and all images
run through it in batches; projections run K channels per inverse run on cached projectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from onnxviz.analyses._common import NHWC_TO_NCHW, move_layout, rule_field, softmax
from onnxviz.analyses.compare.measures import Comparison, ImageResult, LayerResult, cosines, judge, relative_errors
from onnxviz.analyses.compare.pairing import PRECISIONS, LayerPair, pair_layers, tolerance_for
from onnxviz.analyses.occlusion import OccludeOptions, OcclusionMap
from onnxviz.analyses.project import Projection
from onnxviz.core.options import Options, option
from onnxviz.core.progress import StageProgress
from onnxviz.core.types import Image
from onnxviz.errors import InferenceError, InvalidModelError, OnnxvizError, UsageError
from onnxviz.graph.model import ModelGraph
from onnxviz.passes.rewrite import forward_model
from onnxviz.runtime.projector import channel_strengths, seeded_tensor
from onnxviz.runtime.sessions import Device, create_session, run_bound

MEMORY_BUDGET = 256 << 20  # bytes of compared activations held per batch, both models together
MAX_BATCH = 64
# Occlusion's default patch, unless a quarter of the input's side is smaller: a comparison is made
# on small inputs too, and its correlation needs a map of several positions.
PATCH_SHARE = 4
LAYERS_HELP = "Layers named alike in both: conv2,pool3 or repeated (default: every layer both have)."


@dataclass(frozen=True)
class CompareOptions(Options):
    """What is compared (layers, projections, occlusion) and how strictly."""

    layers: list[str] | None = field(default=None, metadata=option(LAYERS_HELP))
    mapping: dict[str, str] | None = field(
        default=None,
        metadata=option(
            "A's layer → B's layer (node, tensor or alias), for layers named apart.",
            flag="--map",  # the command reads its A=B texts into this
            cli=False,
        ),
    )
    rule: str = rule_field()
    top: int = field(default=4, metadata=option("Channels projected per layer (0: none).", min=0))
    occlusion: bool = field(default=False, metadata=option("Also correlate the occlusion maps."))
    tolerance: float = field(default=1.0, metadata=option("Factor on every default tolerance.", min=0))
    precision: str | None = field(
        default=None,
        metadata=option(f"{' | '.join(PRECISIONS)} tolerances (default: from the models).", choices=PRECISIONS),
    )
    patch: int | None = field(
        default=None,
        metadata=option(f"Occlusion patch (default: side/{PATCH_SHARE}, ≤ {OccludeOptions().patch}).", min=1),
    )
    stride: int | None = field(default=None, metadata=option("Occlusion stride (default: patch/2).", min=1))


class ComparedModel(Protocol):
    """What a comparison needs of a loaded model (``onnxviz.Model`` is one): the analysis depends on
    this, not on the api that builds on it."""

    graph: ModelGraph
    device: Device

    @property
    def layout(self) -> str: ...

    def input_shape(self) -> tuple[int, ...]: ...

    def prepare(self, image: Image) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...]]: ...

    def project(self, image: np.ndarray, **options: Any) -> Projection: ...

    def occlude(self, image: np.ndarray, **options: Any) -> OcclusionMap: ...


# -- running --------------------------------------------------------------------------------------


def _channels_first(values: np.ndarray, nhwc: bool) -> np.ndarray:
    return values.transpose(NHWC_TO_NCHW) if nhwc else values


class _Forward:
    """One session exposing every compared tensor of one model; images run through it in batches."""

    def __init__(self, model: ComparedModel, shapes: dict[str, tuple[int, ...]], tensors: list[str]) -> None:
        self.model = model
        self.tensors = tensors
        self.shapes = shapes
        self.session = create_session(
            forward_model(model.graph, tensors, {}, shapes), model.device, "forward graph of the comparison"
        )
        self.batched = True

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if self.batched:
            try:
                return self._run(batch)
            except InferenceError:
                if len(batch) == 1:
                    raise
                self.batched = False  # a graph that only runs at its exported batch of 1
        parts = [self._run(batch[i : i + 1]) for i in range(len(batch))]
        return {t: np.concatenate([p[t] for p in parts]) for t in self.tensors}

    def _run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        values = run_bound(
            self.session, {self.model.graph.input_name: batch.astype(np.float32)}, self.model.device, "forward graph"
        )
        return {t: values[t].numpy().astype(np.float64) for t in self.tensors}


def compare(
    models: tuple[ComparedModel, ComparedModel],
    images: Sequence[Image],
    options: CompareOptions,
    progress: StageProgress | None = None,
) -> Comparison:
    """Compare ``models[1]`` (B, a conversion) with ``models[0]`` (A, the original) on ``images``.

    ``options.top``: channels projected per layer (0: no projections); ``patch``/``stride``: the
    occlusion grid (default: a quarter of the input side, at most occlusion's default patch, and
    half of that).
    """
    model_a, model_b = models
    note = progress or (lambda _: None)
    if len(images) == 0:
        raise UsageError("Give at least one image to compare the models on.")
    limits = tolerance_for(model_a.graph, model_b.graph, options.precision, options.tolerance)
    shapes_a, shapes_b = (m.graph.shapes(m.input_shape()) for m in models)
    logits = _check_compatible(model_a, model_b, shapes_a, shapes_b)
    pairs, notes = pair_layers(model_a.graph, model_b.graph, shapes_a, shapes_b, options.layers, options.mapping)
    names, inputs_a, inputs_b = _prepare(model_a, model_b, images)
    note("forward runs")
    outputs_a, outputs_b, layer_results, strongest = _measure_activations(
        (model_a, shapes_a), (model_b, shapes_b), logits, pairs, (inputs_a, inputs_b), options.top
    )
    results = _image_results(names, outputs_a, outputs_b)
    for result, channels in zip(layer_results, strongest, strict=True) if options.top > 0 else ():
        note(f"projections of {result.pair.name}")
        _project(models, result, (inputs_a, inputs_b), channels, options.rule)
    for result, x_a, x_b in zip(results, inputs_a, inputs_b, strict=True) if options.occlusion else ():
        note(f"occlusion of {result.image}")
        _occlude(models, result, (x_a, x_b), options)
    judge(results, layer_results, limits)
    loaded = [f"{which}: {line}" for which, m in (("A", model_a), ("B", model_b)) for line in m.graph.notes]
    return Comparison(
        model_a=str(model_a.graph.path or "A"),
        model_b=str(model_b.graph.path or "B"),
        tolerance=limits,
        rule=options.rule,
        top=options.top,
        images=results,
        layers=layer_results,
        notes=loaded + notes + [f"{la.pair.name}: {la.note}" for la in layer_results if la.note],
    )


def _check_compatible(
    model_a: ComparedModel,
    model_b: ComparedModel,
    shapes_a: dict[str, tuple[int, ...]],
    shapes_b: dict[str, tuple[int, ...]],
) -> tuple[str, str]:
    """The two logits tensors, once the models are known to take one input and give one output."""
    shape_a, shape_b = model_a.input_shape(), model_b.input_shape()
    if move_layout(np.zeros(shape_b), model_b.layout, model_a.layout).shape != shape_a:
        raise UsageError(
            f"The models take different inputs: A {list(shape_a)} ({model_a.layout.upper()}), "
            f"B {list(shape_b)} ({model_b.layout.upper()}).",
            "Compare a model with a conversion of itself; give --size for models with a free input size.",
        )
    logits = []
    for name, model, shapes in (("A", model_a, shapes_a), ("B", model_b, shapes_b)):
        if not model.graph.output_names:
            raise InvalidModelError(f"Model {name} declares no graph output, so there are no classes to compare.")
        tensor = seeded_tensor(model.graph, model.graph.output_names[0])
        if tensor not in shapes:  # shapes follow the image: an output computed without it has none
            raise InvalidModelError(
                f"Model {name}'s output '{tensor}' is not computed from its input, so it has no classes to compare.",
                "Check the export: the graph's output should depend on the image.",
            )
        logits.append((tensor, int(np.prod(shapes[tensor][1:]))))
    (logits_a, classes_a), (logits_b, classes_b) = logits
    if classes_a != classes_b:
        raise UsageError(
            f"The models have different outputs: A has {classes_a} classes, B has {classes_b}.",
            "Compare a model with a conversion of itself.",
        )
    return logits_a, logits_b


def _prepare(
    model_a: ComparedModel, model_b: ComparedModel, images: Sequence[Image]
) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """Names and each model's input tensors: a picture is preprocessed by each model (its own
    preprocessing and layout); a ready tensor is only moved to B's layout."""
    names, inputs_a, inputs_b = [], [], []
    for index, image in enumerate(images):
        x_a, picture, _ = model_a.prepare(image)
        x_b = model_b.prepare(image)[0] if picture is not None else move_layout(x_a, model_a.layout, model_b.layout)
        names.append(str(image) if isinstance(image, (str, Path)) else f"array {index}")
        inputs_a.append(x_a)
        inputs_b.append(x_b)
    return names, inputs_a, inputs_b


def _measure_activations(
    side_a: tuple[ComparedModel, dict[str, tuple[int, ...]]],
    side_b: tuple[ComparedModel, dict[str, tuple[int, ...]]],
    logits: tuple[str, str],
    pairs: list[LayerPair],
    inputs: tuple[list[np.ndarray], list[np.ndarray]],
    top: int,
) -> tuple[np.ndarray, np.ndarray, list[LayerResult], list[np.ndarray]]:
    """Both models' logits, the per-layer measures, and per layer A's ``top`` strongest channels
    per image: one session per model, every compared tensor exposed, images in batches. ``side_a``,
    ``side_b``: each model with its tensor shapes; ``inputs``: A's and B's input tensors."""
    inputs_a, inputs_b = inputs
    forward_a = _Forward(*side_a, list(dict.fromkeys([logits[0], *(p.tensor_a for p in pairs)])))
    forward_b = _Forward(*side_b, list(dict.fromkeys([logits[1], *(p.tensor_b for p in pairs)])))
    per_image = 2 * 8 * sum(int(np.prod(forward_a.shapes[t])) for t in forward_a.tensors)  # float64, both models
    size = int(max(1, min(MAX_BATCH, MEMORY_BUDGET // max(per_image, 1))))
    batches = []
    for start in range(0, len(inputs_a), size):
        values_a = forward_a.run(np.concatenate(inputs_a[start : start + size]))
        values_b = forward_b.run(np.concatenate(inputs_b[start : start + size]))
        count = len(values_a[logits[0]])
        outputs = (values_a[logits[0]].reshape(count, -1), values_b[logits[1]].reshape(count, -1))
        batches.append((outputs, [_measure_pair(pair, values_a, values_b, top) for pair in pairs]))
    outputs_a, outputs_b = (np.concatenate(parts) for parts in zip(*(outputs for outputs, _ in batches), strict=True))
    per_pair = [
        [np.concatenate(parts) for parts in zip(*(measured[k] for _, measured in batches), strict=True)]
        for k in range(len(pairs))
    ]
    results = [LayerResult(pair, errors, cosine) for pair, (errors, cosine, _) in zip(pairs, per_pair, strict=True)]
    return outputs_a, outputs_b, results, [strongest for *_, strongest in per_pair]


def _measure_pair(
    pair: LayerPair, values_a: dict[str, np.ndarray], values_b: dict[str, np.ndarray], top: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One batch's relative errors and cosines at ``pair``, and A's ``top`` strongest channels per image."""
    a = _channels_first(values_a[pair.tensor_a], pair.nhwc_a)
    b = _channels_first(values_b[pair.tensor_b], pair.nhwc_b)
    flat_a, flat_b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    strengths = np.stack([channel_strengths(a[i : i + 1]) for i in range(len(a))])
    return (
        relative_errors(flat_a, flat_b),
        cosines(flat_a, flat_b),
        np.argsort(-strengths, axis=1, kind="stable")[:, :top],
    )


def _image_results(names: list[str], logits_a: np.ndarray, logits_b: np.ndarray) -> list[ImageResult]:
    probabilities_a, probabilities_b = softmax(logits_a), softmax(logits_b)
    ranked = np.sort(probabilities_a, axis=1)
    return [
        ImageResult(
            image=name,
            top_a=int(probabilities_a[i].argmax()),
            top_b=int(probabilities_b[i].argmax()),
            margin_a=float(ranked[i, -1] - ranked[i, -2]) if ranked.shape[1] > 1 else 1.0,
            max_dp=float(np.abs(probabilities_a[i] - probabilities_b[i]).max()),
        )
        for i, name in enumerate(names)
    ]


def _project(
    models: tuple[ComparedModel, ComparedModel],
    result: LayerResult,
    inputs: tuple[list[np.ndarray], list[np.ndarray]],
    channels: np.ndarray,
    rule: str,
) -> None:
    """Project A's strongest channels in both models; keep per image the smallest cosine.

    A layer A itself cannot project is noted and skipped; one that only B cannot project is a
    failure: the conversion put something on the path that onnxviz cannot invert.
    """
    (model_a, model_b), (inputs_a, inputs_b), pair = models, inputs, result.pair
    if pair.transposed:
        result.note = "not projected: the activation is channel-last in one model"
        return
    try:
        projected_a = _projections(model_a, inputs_a, pair.tensor_a, channels, rule)
    except OnnxvizError as exc:
        result.note = f"not projected: A cannot be projected here ({exc.message})"
        return
    try:
        projected_b = _projections(model_b, inputs_b, pair.tensor_b, channels, rule)
    except OnnxvizError as exc:
        result.projection_error = exc.message
        return
    result.channels = channels
    moved_b = [move_layout(b, model_b.layout, model_a.layout) for b in projected_b]  # projections are inputs
    result.channel_cosines = np.stack(
        [cosines(a.reshape(len(a), -1), b.reshape(len(a), -1)) for a, b in zip(projected_a, moved_b, strict=True)]
    )


def _projections(
    model: ComparedModel, inputs: list[np.ndarray], tensor: str, channels: np.ndarray, rule: str
) -> list[np.ndarray]:
    """Each image's projections of its ``channels`` (one row per image) at ``tensor``."""
    return [
        model.project(x, node=tensor, channels=chosen.tolist(), rule=rule).projections
        for x, chosen in zip(inputs, channels, strict=True)
    ]


def _occlude(
    models: tuple[ComparedModel, ComparedModel],
    result: ImageResult,
    inputs: tuple[np.ndarray, np.ndarray],
    options: CompareOptions,
) -> None:
    """Correlate the occlusion maps of A's top-1 class in the two models (``inputs``: A's and B's)."""
    (model_a, model_b), (x_a, x_b) = models, inputs
    h_axis = 1 if model_a.layout == "nhwc" else 2
    side = min(x_a.shape[h_axis], x_a.shape[h_axis + 1])
    patch = options.patch if options.patch is not None else max(1, min(OccludeOptions().patch, side // PATCH_SHARE))
    stride = options.stride if options.stride is not None else max(1, patch // 2)
    scores_a = model_a.occlude(x_a, patch=patch, stride=stride, target=result.top_a).scores
    scores_b = model_b.occlude(x_b, patch=patch, stride=stride, target=result.top_a).scores
    a = scores_a.astype(np.float64).reshape(1, -1)
    b = scores_b.astype(np.float64).reshape(1, -1)
    result.occlusion_max_difference = float(np.abs(a - b).max())
    result.occlusion_range_a = float(a.max() - a.min())
    result.occlusion_correlation = float(cosines(a - a.mean(), b - b.mean())[0])
