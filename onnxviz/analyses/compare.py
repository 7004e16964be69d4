"""Does a converted model still see what the original sees?

``compare(A, B, images)`` runs the original A and its conversion B (another exporter, tf2onnx,
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
does), inserts Q/DQ pairs or Casts, still pairs tensor for tensor with the original.

Efficiency: one forward session per model exposes every compared tensor at once, and all images
run through it in batches; projections run K channels per inverse run on cached projectors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx

from onnxviz.errors import InferenceError, OnnxvizError, UnknownNodeError, UsageError
from onnxviz.inverse import MODES
from onnxviz.model import ACTIVATION_OPS, PASS_THROUGH_OPS, ModelGraph
from onnxviz.project import seeded_tensor
from onnxviz.rewrite import forward_model
from onnxviz.runtime import create_session, run_bound

if TYPE_CHECKING:
    from onnxviz.api import Model

PRECISIONS = ("fp32", "fp16", "int8")  # from strictest to loosest
QUANTIZED_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "QLinearAdd",
        "QLinearMul",
        "QLinearAveragePool",
        "QLinearGlobalAveragePool",
        "QLinearConcat",
        "QGemm",
        "ConvInteger",
        "MatMulInteger",
    }
)
HALF_TYPES = frozenset({onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16})
# What a layer's output passes through before the next layer reads it.
FOLLOWED_OPS = ACTIVATION_OPS | PASS_THROUGH_OPS | {"Cast"}
# Alias kinds paired by default; reluN is left out since convN already names the rectified output.
PAIRED_KINDS = ("conv", "pool", "fc")
MEMORY_BUDGET = 256 << 20  # bytes of compared activations held per batch, both models together
MAX_BATCH = 64
NHWC_TO_NCHW = (0, 3, 1, 2)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Tolerance:
    """The largest distance each measure may show before the comparison fails.

    ``scale`` (``--tolerance T``) multiplies every field of the precision's defaults.
    """

    precision: str
    relative_error: float  # ‖b − a‖ / ‖a‖ of a layer's activation
    projection: float  # 1 − cosine of a layer's projections
    probability: float  # max |Δp| of the output probabilities
    occlusion: float  # 1 − correlation of the occlusion maps
    scale: float = 1.0

    @property
    def cosine(self) -> float:
        """1 − cosine of a layer's activation: the most an error within the relative-error
        tolerance r can turn it, 1 − √(1 − r²). So the cosine never fails alone, and a relative
        error beyond tolerance with the cosine within it is a change of scale, not of direction."""
        r = self.relative_error
        return r * r / (1.0 + np.sqrt(1.0 - r * r)) if r <= 1 else 2.0

    def scaled(self, scale: float) -> Tolerance:
        return replace(
            self,
            relative_error=self.relative_error * scale,
            projection=self.projection * scale,
            probability=self.probability * scale,
            occlusion=self.occlusion * scale,
            scale=scale,
        )

    def summary(self) -> dict:
        return {
            "precision": self.precision,
            "scale": self.scale,
            "relative_error": self.relative_error,
            "cosine_distance": self.cosine,
            "projection_cosine_distance": self.projection,
            "max_abs_dp": self.probability,
            "occlusion_correlation_distance": self.occlusion,
        }


# Measured on the demo model's conversions (scripts/measure_compare_tolerances.py; the numbers and
# the reasoning are in the README's "compare" section): each default sits above the worst value an
# honest conversion showed and below what one corrupted conv filter does to its layer.
DEFAULT_TOLERANCES = {
    "fp32": Tolerance("fp32", relative_error=1e-4, projection=1e-3, probability=1e-4, occlusion=1e-4),
    "fp16": Tolerance("fp16", relative_error=5e-3, projection=0.05, probability=5e-3, occlusion=1e-3),
    "int8": Tolerance("int8", relative_error=0.2, projection=0.3, probability=0.3, occlusion=0.5),
}


@dataclass(frozen=True)
class LayerPair:
    """One compared place: A's tensor, B's tensor, and how B's is brought to A's layout."""

    name: str
    tensor_a: str
    tensor_b: str
    shape: tuple[int, ...]  # the compared shape (batch 1), channels on axis 1 where 4-D
    nhwc_a: bool = False  # A's tensor is channel-last: moved to NCHW before comparing
    nhwc_b: bool = False

    @property
    def transposed(self) -> bool:
        return self.nhwc_a or self.nhwc_b


@dataclass
class LayerResult:
    pair: LayerPair
    relative_error: np.ndarray  # (images,)
    cosine: np.ndarray  # (images,)
    projection_cosine: np.ndarray | None = None  # (images,): the smallest over the K channels
    channels: np.ndarray | None = None  # (images, K): A's strongest channels, projected in both
    channel_cosines: np.ndarray | None = None  # (images, K)
    projection_error: str = ""  # why B could not be projected where A could
    note: str = ""
    failed: dict[str, str] = field(default_factory=dict)  # measure → what was measured against what

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class ImageResult:
    image: str
    top_a: int
    top_b: int
    margin_a: float  # A's top-1 minus top-2 probability
    max_dp: float
    occlusion_correlation: float | None = None
    occlusion_max_difference: float | None = None
    occlusion_range_a: float | None = None  # max − min of A's map
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def agree(self) -> bool:
        return self.top_a == self.top_b

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class Comparison:
    """What ``onnxviz compare`` found; ``ok`` is the exit status a CI job needs."""

    model_a: str
    model_b: str
    tolerance: Tolerance
    rule: str
    top: int
    images: list[ImageResult]
    layers: list[LayerResult]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.images) and all(la.ok for la in self.layers)

    @property
    def first_diverging_layer(self) -> str | None:
        return next((la.pair.name for la in self.layers if not la.ok), None)

    @property
    def failures(self) -> list[str]:
        return [f"{i.image}: {why}" for i in self.images for why in i.failed.values()] + [
            f"{la.pair.name}: {why}" for la in self.layers for why in la.failed.values()
        ]

    def verdict(self) -> str:
        agree = sum(i.agree for i in self.images)
        head = (
            f"{agree}/{len(self.images)} images agree on the top-1, "
            f"max |Δp| {max(i.max_dp for i in self.images):.3g}, {len(self.layers)} layers compared"
        )
        if self.ok:
            return f"PASS ({self.tolerance.precision} tolerance ×{self.tolerance.scale:g}): {head}."
        where = self.first_diverging_layer
        first = f"first diverging layer {where}; " if where else ""
        return f"FAIL ({self.tolerance.precision} tolerance ×{self.tolerance.scale:g}): {first}{head}."

    def messages(self) -> list[str]:
        """What the layer table does not show: notes, images beyond tolerance, why B did not project."""
        return (
            self.notes
            + [f"{i.image}: {why}" for i in self.images for why in i.failed.values()]
            + [
                f"{la.pair.name}: B cannot be projected here: {la.projection_error}"
                for la in self.layers
                if la.projection_error
            ]
        )

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """(layer, worst relative error, worst cosine, worst projection cosine, verdict) per layer."""
        rows = []
        for la in self.layers:
            projection = _cosine_text(la.projection_cosine.min()) if la.projection_cosine is not None else "—"
            projection = "B fails" if la.projection_error else projection
            verdict = "ok" if la.ok else "beyond: " + ", ".join(la.failed)
            rows.append(
                (la.pair.name, f"{la.relative_error.max():.3g}", _cosine_text(la.cosine.min()), projection, verdict)
            )
        return rows

    def summary(self) -> dict:
        return {
            "model_a": self.model_a,
            "model_b": self.model_b,
            "ok": self.ok,
            "verdict": self.verdict(),
            "first_diverging_layer": self.first_diverging_layer,
            "failures": self.failures,
            "tolerance": self.tolerance.summary(),
            "rule": self.rule,
            "top": self.top,
            "images": [
                {
                    "image": i.image,
                    "top1_a": i.top_a,
                    "top1_b": i.top_b,
                    "agree": i.agree,
                    "margin_a": i.margin_a,
                    "max_abs_dp": i.max_dp,
                    "occlusion_correlation": i.occlusion_correlation,
                    "occlusion_max_abs_difference": i.occlusion_max_difference,
                    "occlusion_range_a": i.occlusion_range_a,
                    "ok": i.ok,
                }
                for i in self.images
            ],
            "layers": [_layer_summary(la) for la in self.layers],
            "notes": self.notes,
        }


def _cosine_text(value: float) -> str:
    """A cosine near 1 as 1 − distance, so 1 − 1e-7 and 1 − 1e-4 do not both read 1.000000."""
    distance = 1.0 - float(value)
    if distance == 0:
        return "1"
    return f"1 − {distance:.2g}" if 0 < distance < 1e-3 else f"{value:.4f}"


def _layer_summary(la: LayerResult) -> dict:
    pair = la.pair
    return {
        "layer": pair.name,
        "tensor_a": pair.tensor_a,
        "tensor_b": pair.tensor_b,
        "shape": list(pair.shape),
        "layout": "nhwc_a" if pair.nhwc_a else "nhwc_b" if pair.nhwc_b else "same",
        "relative_error": [float(v) for v in la.relative_error],
        "cosine": [float(v) for v in la.cosine],
        "projection_cosine": None if la.projection_cosine is None else [float(v) for v in la.projection_cosine],
        "channels": None if la.channels is None else la.channels.tolist(),
        "channel_cosines": None if la.channel_cosines is None else la.channel_cosines.tolist(),
        "ok": la.ok,
        "failed": list(la.failed.values()),
        "note": la.note,
    }


# -- measures -------------------------------------------------------------------------------------


def relative_errors(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """‖b − a‖ / ‖a‖ per row; 0 where both rows are zero, inf where only a's is."""
    difference = np.linalg.norm(b - a, axis=1)
    reference = np.linalg.norm(a, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            reference > 0, difference / np.where(reference > 0, reference, 1), np.where(difference > 0, np.inf, 0.0)
        )


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine per row as 1 − ‖â − b̂‖²/2: exactly 1 for equal rows; 1 for two zero rows, 0 for one."""
    norm_a = np.linalg.norm(a, axis=1, keepdims=True)
    norm_b = np.linalg.norm(b, axis=1, keepdims=True)
    unit_a = a / np.where(norm_a > 0, norm_a, 1)
    unit_b = b / np.where(norm_b > 0, norm_b, 1)
    value = 1.0 - 0.5 * np.square(np.linalg.norm(unit_a - unit_b, axis=1))
    both_zero = (norm_a[:, 0] == 0) & (norm_b[:, 0] == 0)
    one_zero = (norm_a[:, 0] == 0) != (norm_b[:, 0] == 0)
    return np.where(both_zero, 1.0, np.where(one_zero, 0.0, value))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


# -- precision ------------------------------------------------------------------------------------


def precision_of(graph: ModelGraph) -> str:
    """'int8' for quantized graphs, 'fp16' where any tensor is half precision, else 'fp32'."""
    model = graph.model
    if any(node.op_type in QUANTIZED_OPS for node in model.graph.node):
        return "int8"
    if graph.half_precision:  # loading runs fp16 files in float32; the file's precision is what counts
        return "fp16"
    typed = [*model.graph.input, *model.graph.output, *model.graph.value_info]
    elem_types = {t.data_type for t in model.graph.initializer} | {v.type.tensor_type.elem_type for v in typed}
    elem_types |= {a.i for n in model.graph.node if n.op_type == "Cast" for a in n.attribute if a.name == "to"}
    return "fp16" if elem_types & HALF_TYPES else "fp32"


def tolerance_for(graph_a: ModelGraph, graph_b: ModelGraph, precision: str | None, scale: float) -> Tolerance:
    """The defaults of the looser of the two models' precisions (or of ``precision``), × ``scale``."""
    if precision is None:
        precision = max(precision_of(graph_a), precision_of(graph_b), key=PRECISIONS.index)
    if precision not in PRECISIONS:
        raise UsageError(f"Unknown precision '{precision}'.", f"Use one of: {', '.join(PRECISIONS)}.")
    if not np.isfinite(scale) or scale < 0:
        raise UsageError(f"--tolerance must be a number ≥ 0 (a factor on the defaults); got {scale}.")
    return DEFAULT_TOLERANCES[precision].scaled(scale)


# -- pairing --------------------------------------------------------------------------------------


def read_tensor(graph: ModelGraph, tensor: str) -> str:
    """Where the next layer reads ``tensor``: past the activation, batch norm, Cast and
    quantize→dequantize pair that follow it alone (a graph output stops the walk)."""
    while True:  # the graph is a DAG, so the walk ends
        users = graph.consumers.get(tensor, [])
        if len(users) != 1 or tensor in graph.output_names:
            return tensor
        user = users[0]
        if user.op_type == "QuantizeLinear":
            after = graph.consumers.get(user.output[0], [])
            if len(after) != 1 or after[0].op_type != "DequantizeLinear":
                return tensor
            user = after[0]
        elif user.op_type not in FOLLOWED_OPS or user.input[0] != tensor:
            return tensor
        tensor = user.output[0]


def _kind(alias: str) -> str:
    return alias.rstrip("0123456789")


def _kind_counts(graph: ModelGraph) -> dict[str, int]:
    counts: dict[str, int] = {}
    for layer in graph.layers:
        counts[_kind(layer.alias)] = counts.get(_kind(layer.alias), 0) + 1
    return counts


def _layouts(shape_a: tuple[int, ...], shape_b: tuple[int, ...]) -> tuple[tuple[int, ...], bool, bool] | None:
    """(compared shape, A is channel-last, B is channel-last) when the shapes agree up to
    NHWC/NCHW; None when they are not one tensor."""
    if shape_a == shape_b:
        return shape_a, False, False
    if len(shape_a) == 4 and len(shape_b) == 4:
        if shape_b == tuple(shape_a[i] for i in (0, 2, 3, 1)):
            return shape_a, False, True
        if shape_a == tuple(shape_b[i] for i in (0, 2, 3, 1)):
            return shape_b, True, False
    return None


def pair_layers(
    graph_a: ModelGraph,
    graph_b: ModelGraph,
    shapes_a: dict[str, tuple[int, ...]],
    shapes_b: dict[str, tuple[int, ...]],
    layers: Sequence[str] | None = None,
    mapping: dict[str, str] | None = None,
) -> tuple[list[LayerPair], list[str]]:
    """The layer pairs to compare, in A's topological order, and notes on what was left out.

    Default: every conv/pool/fc alias when both models have as many layers of that kind (aliases
    number layers in topological order, so equal counts mean the same positions). ``layers``:
    names that resolve in both models; ``mapping``: A's name → B's name.
    """
    counts_a, counts_b = _kind_counts(graph_a), _kind_counts(graph_b)
    notes: list[str] = []
    wanted: list[tuple[str, str, str, bool]] = []  # (shown name, A's name, B's name, asked for)
    if layers is None and not mapping:
        for kind in PAIRED_KINDS:
            if counts_a.get(kind, 0) != counts_b.get(kind, 0):
                notes.append(
                    f"{kind} layers not paired: A has {counts_a.get(kind, 0)}, B has {counts_b.get(kind, 0)} "
                    "(pair them with --map A=B)"
                )
                continue
            wanted += [(la.alias, la.alias, la.alias, False) for la in graph_a.layers if _kind(la.alias) == kind]
    for name in layers or []:
        kind = _kind(name)
        alias_a = any(la.alias == name for la in graph_a.layers)
        if alias_a and counts_a.get(kind) != counts_b.get(kind):
            raise UsageError(
                f"'{name}' is an alias, and the models number their {kind} layers differently "
                f"(A has {counts_a.get(kind, 0)}, B has {counts_b.get(kind, 0)}): '{name}' may be another layer in B.",
                f"Pair the layer by its node or tensor names: --map {name}=<B's node>.",
            )
        wanted.append((name, name, name, True))
    for name_a, name_b in (mapping or {}).items():
        wanted.append((f"{name_a}={name_b}", name_a, name_b, True))

    pairs: list[LayerPair] = []
    seen: set[tuple[str, str]] = set()
    for shown, name_a, name_b, asked in wanted:
        tensor_a = read_tensor(graph_a, _resolve(graph_a, name_a, "A"))
        tensor_b = read_tensor(graph_b, _resolve(graph_b, name_b, "B"))
        if (tensor_a, tensor_b) in seen:
            continue
        seen.add((tensor_a, tensor_b))
        matched = _layouts(shapes_a[tensor_a], shapes_b[tensor_b])
        if matched is None:
            why = (
                f"'{shown}' is {'×'.join(map(str, shapes_a[tensor_a]))} in A but "
                f"{'×'.join(map(str, shapes_b[tensor_b]))} in B, not the same tensor in another layout"
            )
            if asked:
                raise UsageError(f"Cannot compare: {why}.", "Pair layers that compute the same tensor (--map A=B).")
            notes.append(f"{why}: not compared")
            continue
        shape, nhwc_a, nhwc_b = matched
        pairs.append(LayerPair(shown, tensor_a, tensor_b, shape, nhwc_a, nhwc_b))
    order = {o: i for i, node in enumerate(graph_a.nodes) for o in node.output}
    pairs.sort(key=lambda p: order.get(p.tensor_a, -1))
    if not pairs:
        raise UsageError(
            "The two models have no layer in common to compare" + (f" ({'; '.join(notes)})." if notes else "."),
            "Name the layers of each model to pair with --map A=B (see `onnxviz layers MODEL`).",
        )
    return pairs, notes


def _resolve(graph: ModelGraph, name: str, which: str) -> str:
    try:
        return graph.resolve(name).tensor
    except UnknownNodeError as exc:
        raise UnknownNodeError(f"Model {which}: {exc.message}", exc.hint) from None


# -- running --------------------------------------------------------------------------------------


def _channels_first(values: np.ndarray, nhwc: bool) -> np.ndarray:
    return values.transpose(NHWC_TO_NCHW) if nhwc else values


def _in_layout(tensor: np.ndarray, source: str, target: str) -> np.ndarray:
    """A batch of input tensors moved from layout ``source`` to ``target``."""
    if source == target:
        return tensor
    return np.ascontiguousarray(tensor.transpose((0, 2, 3, 1) if target == "nhwc" else NHWC_TO_NCHW))


def _input_dtype(session) -> type:
    return np.float16 if session.get_inputs()[0].type == "tensor(float16)" else np.float32


class _Forward:
    """One session exposing every compared tensor of one model; images run through it in batches."""

    def __init__(self, model: Model, tensors: list[str], shape: tuple[int, ...]) -> None:
        self.model = model
        self.tensors = tensors
        graph = model.graph
        self.session = create_session(
            forward_model(graph, tensors, {}, graph.shapes(shape)), model.device, "forward graph of the comparison"
        )
        self.dtype = _input_dtype(self.session)
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
            self.session, {self.model.graph.input_name: batch.astype(self.dtype)}, self.model.device, "forward graph"
        )
        return {t: values[t].numpy().astype(np.float64) for t in self.tensors}


def compare(
    model_a: Model,
    model_b: Model,
    images: Sequence[str | Path | np.ndarray],
    layers: Sequence[str] | None = None,
    mapping: dict[str, str] | None = None,
    rule: str = "deconvnet",
    top: int = 4,
    occlusion: bool = False,
    tolerance: float = 1.0,
    precision: str | None = None,
    patch: int | None = None,
    stride: int | None = None,
    progress: Progress | None = None,
) -> Comparison:
    """Compare ``model_b`` (a conversion) with ``model_a`` (the original) on ``images``.

    ``top``: channels projected per layer (0: no projections); ``patch``/``stride``: the
    occlusion grid (default: a quarter of the input side, at most 32, and half of that).
    """
    note = progress or (lambda _: None)
    if len(images) == 0:
        raise UsageError("Give at least one image to compare the models on.")
    if rule not in MODES:
        raise UsageError(f"Unknown rule '{rule}'.", f"Use one of: {', '.join(MODES)}.")
    if top < 0:
        raise UsageError(f"--top must be 0 (no projections) or more; got {top}.")
    limits = tolerance_for(model_a.graph, model_b.graph, precision, tolerance)
    logits_a, logits_b = _check_compatible(model_a, model_b)
    shapes_a = model_a.graph.shapes(model_a.input_shape())
    shapes_b = model_b.graph.shapes(model_b.input_shape())
    pairs, notes = pair_layers(model_a.graph, model_b.graph, shapes_a, shapes_b, layers, mapping)
    names, inputs_a, inputs_b = _prepare(model_a, model_b, images)

    note("forward runs")
    outputs_a, outputs_b, layer_results, strongest = _measure_activations(
        model_a, model_b, (logits_a, logits_b), pairs, inputs_a, inputs_b, top
    )
    results = _image_results(names, outputs_a, outputs_b)
    if top > 0:
        for result, channels in zip(layer_results, strongest, strict=True):
            note(f"projections of {result.pair.name}")
            _project(model_a, model_b, result, inputs_a, inputs_b, channels, rule)
    if occlusion:
        for result, x_a, x_b in zip(results, inputs_a, inputs_b, strict=True):
            note(f"occlusion of {result.image}")
            _occlude(model_a, model_b, result, x_a, x_b, patch, stride)

    _judge(results, layer_results, limits)
    return Comparison(
        model_a=str(model_a.graph.path or "A"),
        model_b=str(model_b.graph.path or "B"),
        tolerance=limits,
        rule=rule,
        top=top,
        images=results,
        layers=layer_results,
        notes=notes + [f"{la.pair.name}: {la.note}" for la in layer_results if la.note],
    )


def _check_compatible(model_a: Model, model_b: Model) -> tuple[str, str]:
    """The two logits tensors, once the models are known to take one input and give one output."""
    shape_a, shape_b = model_a.input_shape(), model_b.input_shape()
    if _in_layout(np.zeros(shape_b), model_b.layout, model_a.layout).shape != shape_a:
        raise UsageError(
            f"The models take different inputs: A {list(shape_a)} ({model_a.layout.upper()}), "
            f"B {list(shape_b)} ({model_b.layout.upper()}).",
            "Compare a model with a conversion of itself; give --size for models with a free input size.",
        )
    logits = []
    for model, shape in ((model_a, shape_a), (model_b, shape_b)):
        tensor = seeded_tensor(model.graph, model.graph.output_names[0])
        logits.append((tensor, int(np.prod(model.graph.shapes(shape)[tensor][1:]))))
    (logits_a, classes_a), (logits_b, classes_b) = logits
    if classes_a != classes_b:
        raise UsageError(
            f"The models have different outputs: A has {classes_a} classes, B has {classes_b}.",
            "Compare a model with a conversion of itself.",
        )
    return logits_a, logits_b


def _prepare(
    model_a: Model, model_b: Model, images: Sequence[str | Path | np.ndarray]
) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """Names and each model's input tensors: a picture is preprocessed by each model (its own
    preprocessing and layout); a ready tensor is only moved to B's layout."""
    names, inputs_a, inputs_b = [], [], []
    for index, image in enumerate(images):
        x_a, picture, _ = model_a.prepare(image)
        x_b = model_b.prepare(image)[0] if picture is not None else _in_layout(x_a, model_a.layout, model_b.layout)
        names.append(str(image) if isinstance(image, (str, Path)) else f"array {index}")
        inputs_a.append(x_a)
        inputs_b.append(x_b)
    return names, inputs_a, inputs_b


def _measure_activations(
    model_a: Model,
    model_b: Model,
    logits: tuple[str, str],
    pairs: list[LayerPair],
    inputs_a: list[np.ndarray],
    inputs_b: list[np.ndarray],
    top: int,
) -> tuple[np.ndarray, np.ndarray, list[LayerResult], list[np.ndarray]]:
    """Both models' logits, the per-layer measures, and per layer A's ``top`` strongest channels
    per image: one session per model, every compared tensor exposed, images in batches."""
    logits_a, logits_b = logits
    tensors_a = list(dict.fromkeys([logits_a, *(p.tensor_a for p in pairs)]))
    tensors_b = list(dict.fromkeys([logits_b, *(p.tensor_b for p in pairs)]))
    forward_a = _Forward(model_a, tensors_a, model_a.input_shape())
    forward_b = _Forward(model_b, tensors_b, model_b.input_shape())
    shapes_a = model_a.graph.shapes(model_a.input_shape())
    per_image = 2 * 8 * sum(int(np.prod(shapes_a[t])) for t in tensors_a)  # float64, both models
    size = int(max(1, min(MAX_BATCH, MEMORY_BUDGET // max(per_image, 1))))
    outputs_a, outputs_b = [], []
    errors: list[list[np.ndarray]] = [[] for _ in pairs]
    cosine_values: list[list[np.ndarray]] = [[] for _ in pairs]
    strongest: list[list[np.ndarray]] = [[] for _ in pairs]
    for start in range(0, len(inputs_a), size):
        values_a = forward_a.run(np.concatenate(inputs_a[start : start + size]))
        values_b = forward_b.run(np.concatenate(inputs_b[start : start + size]))
        count = len(values_a[logits_a])
        outputs_a.append(values_a[logits_a].reshape(count, -1))
        outputs_b.append(values_b[logits_b].reshape(count, -1))
        for k, pair in enumerate(pairs):
            a = _channels_first(values_a[pair.tensor_a], pair.nhwc_a)
            b = _channels_first(values_b[pair.tensor_b], pair.nhwc_b)
            errors[k].append(relative_errors(a.reshape(count, -1), b.reshape(count, -1)))
            cosine_values[k].append(cosines(a.reshape(count, -1), b.reshape(count, -1)))
            channel_maps = a.reshape(count, a.shape[1], -1) if a.ndim > 2 else a[:, :, None]
            strongest[k].append(np.argsort(-channel_maps.max(axis=2), axis=1, kind="stable")[:, :top])
    results = [
        LayerResult(pair, np.concatenate(errors[k]), np.concatenate(cosine_values[k])) for k, pair in enumerate(pairs)
    ]
    return (
        np.concatenate(outputs_a),
        np.concatenate(outputs_b),
        results,
        [np.concatenate(channels) for channels in strongest],
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
    model_a: Model,
    model_b: Model,
    result: LayerResult,
    inputs_a: list[np.ndarray],
    inputs_b: list[np.ndarray],
    channels: np.ndarray,
    rule: str,
) -> None:
    """Project A's strongest channels in both models; keep per image the smallest cosine.

    A layer A itself cannot project is noted and skipped; one that only B cannot project is a
    failure: the conversion put something on the path that onnxviz cannot invert.
    """
    pair = result.pair
    if pair.transposed:
        result.note = "not projected: the activation is channel-last in one model"
        return
    try:
        projected_a = [
            model_a.project(x, pair.tensor_a, channels=chosen.tolist(), rule=rule).projections
            for x, chosen in zip(inputs_a, channels, strict=True)
        ]
    except OnnxvizError as exc:
        result.note = f"not projected: A cannot be projected here ({exc.message})"
        return
    try:
        projected_b = [
            model_b.project(x, pair.tensor_b, channels=chosen.tolist(), rule=rule).projections
            for x, chosen in zip(inputs_b, channels, strict=True)
        ]
    except OnnxvizError as exc:
        result.projection_error = exc.message
        return
    per_image = []
    for a, b in zip(projected_a, projected_b, strict=True):
        moved = _in_layout(b, model_b.layout, model_a.layout)
        per_image.append(cosines(a.reshape(len(a), -1), moved.reshape(len(a), -1)))
    result.channels = channels
    result.channel_cosines = np.stack(per_image)
    result.projection_cosine = result.channel_cosines.min(axis=1)


def _occlude(
    model_a: Model,
    model_b: Model,
    result: ImageResult,
    x_a: np.ndarray,
    x_b: np.ndarray,
    patch: int | None,
    stride: int | None,
) -> None:
    """Correlate the occlusion maps of A's top-1 class in the two models."""
    h_axis = 1 if model_a.layout == "nhwc" else 2
    side = min(x_a.shape[h_axis], x_a.shape[h_axis + 1])
    patch = patch if patch is not None else max(1, min(32, side // 4))
    stride = stride if stride is not None else max(1, patch // 2)
    scores_a = model_a.occlude(x_a, patch=patch, stride=stride, target_class=result.top_a).scores
    scores_b = model_b.occlude(x_b, patch=patch, stride=stride, target_class=result.top_a).scores
    a = scores_a.astype(np.float64).reshape(1, -1)
    b = scores_b.astype(np.float64).reshape(1, -1)
    result.occlusion_max_difference = float(np.abs(a - b).max())
    result.occlusion_range_a = float(a.max() - a.min())
    result.occlusion_correlation = float(cosines(a - a.mean(), b - b.mean())[0])


def _judge(images: list[ImageResult], layers: list[LayerResult], limits: Tolerance) -> None:
    """Fill in every result's list of measures beyond tolerance."""
    for image in images:
        if not image.agree and _beyond(image.margin_a, 2 * limits.probability):
            image.failed["top-1"] = (
                f"top-1 {image.top_a} became {image.top_b} (A's margin {image.margin_a:.3g} > 2×{limits.probability:g})"
            )
        if _beyond(image.max_dp, limits.probability):
            image.failed["max |Δp|"] = f"max|Δp| {image.max_dp:.3g} > {limits.probability:g}"
        if image.occlusion_correlation is not None:
            # A map that varies less than the probability tolerance (a saturated class: occlusion
            # changes nothing) has a meaningless correlation; it is judged by max |Δscore| instead.
            if not _beyond(image.occlusion_range_a or 0.0, limits.probability):
                if _beyond(image.occlusion_max_difference or 0.0, limits.probability):
                    image.failed["occlusion"] = (
                        f"occlusion max|Δscore| {image.occlusion_max_difference:.3g} > {limits.probability:g} "
                        "(A's map is flat)"
                    )
            elif _beyond(1.0 - image.occlusion_correlation, limits.occlusion):
                image.failed["occlusion"] = (
                    f"occlusion correlation {image.occlusion_correlation:.4f} < {1 - limits.occlusion:.4f}"
                )
    for la in layers:
        worst_error = float(la.relative_error.max())
        worst_cosine = float(la.cosine.min())
        if _beyond(worst_error, limits.relative_error):
            la.failed["rel. error"] = f"relative error {worst_error:.3g} > {limits.relative_error:g}"
        if _beyond(1.0 - worst_cosine, limits.cosine):
            la.failed["cosine"] = f"cosine {worst_cosine:.6f} < {1 - limits.cosine:.6f}"
        if la.projection_error:
            la.failed["projection"] = f"B cannot be projected here: {la.projection_error}"
        if la.projection_cosine is not None:
            worst_projection = float(la.projection_cosine.min())
            if _beyond(1.0 - worst_projection, limits.projection):
                la.failed["projection"] = f"projection cosine {worst_projection:.4f} < {1 - limits.projection:.4f}"


def _beyond(distance: float, limit: float) -> bool:
    """Beyond tolerance; a NaN (B overflowed, say in fp16) is beyond any."""
    return not distance <= limit
