"""Which layers of two models are one layer, and how far apart they may be: the pairing and the
tolerances of ``compare``.

A layer is compared where the next layer reads it: after the activation, batch norm, Cast and
quantize→dequantize round trip that follow it. So a conversion that fuses Conv+ReLU (int8 QDQ
does), inserts Q/DQ pairs or Casts, still pairs tensor for tensor with the original. The
tolerances are per precision of the looser model (fp32, fp16, int8), scaled by the option
``tolerance``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from onnxviz.errors import OptionError, UnknownNodeError
from onnxviz.graph.model import ModelGraph
from onnxviz.graph.ops import ACTIVATION_OPS, PASS_THROUGH_OPS
from onnxviz.graph.precision import is_quantized_operator

PRECISIONS = ("fp32", "fp16", "int8")  # from strictest to loosest
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})
# What a layer's output passes through before the next layer reads it (a lone DequantizeLinear: a
# QOperator model's integer output, read by the next layer dequantized).
FOLLOWED_OPS = ACTIVATION_OPS | PASS_THROUGH_OPS | {"Cast", "DequantizeLinear"}
# Alias kinds paired by default; reluN is left out since convN already names the rectified output.
PAIRED_KINDS = ("conv", "pool", "fc")
MEASURES = ("relative_error", "projection", "probability", "occlusion")  # the tolerances ``tolerance`` scales


@dataclass(frozen=True)
class Tolerance:
    """The largest distance each measure may show before the comparison fails.

    ``scale`` (the ``tolerance`` option) multiplies every field of the precision's defaults.
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
        return replace(self, scale=scale, **{name: getattr(self, name) * scale for name in MEASURES})

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
# the reasoning are in the README's "compare" section): each default is 3× the worst value an honest
# conversion showed, rounded up to a 1-2-5 step, except where that would reach what one negated conv
# filter does to its layer (int8: 1.6–2.1×). fp32 conversions measured exactly 0: its defaults allow
# for reassociated float32 sums in deeper networks.
DEFAULT_TOLERANCES = {
    "fp32": Tolerance("fp32", relative_error=1e-4, projection=1e-3, probability=1e-4, occlusion=1e-4),
    "fp16": Tolerance("fp16", relative_error=2e-3, projection=0.02, probability=5e-3, occlusion=5e-4),
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


# -- precision ------------------------------------------------------------------------------------


def precision_of(graph: ModelGraph) -> str:
    """'int8' for quantized graphs, 'fp16' for half-precision files, else 'fp32'. Loading runs fp16
    files in float32 and QOperator ones as QDQ, so the file's precision is read from what loading did."""
    if any(node.op_type in QDQ_OPS or is_quantized_operator(node) for node in graph.nodes):
        return "int8"
    return "fp16" if graph.half_precision else "fp32"


def tolerance_for(graph_a: ModelGraph, graph_b: ModelGraph, precision: str | None, scale: float) -> Tolerance:
    """The defaults of the looser of the two models' precisions (or of ``precision``, one of
    ``PRECISIONS``), × ``scale`` (≥ 0: both checked by ``CompareOptions``)."""
    if precision is None:
        precision = max(precision_of(graph_a), precision_of(graph_b), key=PRECISIONS.index)
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


def _kind_counts(graph: ModelGraph) -> Counter[str]:
    return Counter(_kind(layer.alias) for layer in graph.layers)


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
    notes: list[str] = []
    pairs: list[LayerPair] = []
    seen: set[tuple[str, str]] = set()
    for shown, name_a, name_b, asked in _wanted(graph_a, graph_b, layers, mapping, notes):
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
                hint = "Pair layers that compute the same tensor ({mapping} A=B)."
                raise OptionError("layers" if name_a == name_b else "mapping", f"Cannot compare: {why}.", hint)
            notes.append(f"{why}: not compared")
            continue
        pairs.append(LayerPair(shown, tensor_a, tensor_b, *matched))
    order = {o: i for i, node in enumerate(graph_a.nodes) for o in node.output}
    pairs.sort(key=lambda p: order.get(p.tensor_a, -1))
    if not pairs:
        raise OptionError(
            "mapping",
            "The two models have no layer in common to compare" + (f" ({'; '.join(notes)})." if notes else "."),
            "Name the layers of each model to pair with {option} A=B (each model's layers lists them).",
        )
    return pairs, notes


def _wanted(
    graph_a: ModelGraph,
    graph_b: ModelGraph,
    layers: Sequence[str] | None,
    mapping: dict[str, str] | None,
    notes: list[str],
) -> list[tuple[str, str, str, bool]]:
    """(shown name, A's name, B's name, asked for by the user) of each layer to pair; the default
    pairing notes in ``notes`` the kinds it leaves out."""
    counts_a, counts_b = _kind_counts(graph_a), _kind_counts(graph_b)
    wanted: list[tuple[str, str, str, bool]] = []
    if layers is None and not mapping:
        for kind in PAIRED_KINDS:
            if counts_a.get(kind, 0) != counts_b.get(kind, 0):
                notes.append(
                    f"{kind} layers not paired: A has {counts_a.get(kind, 0)}, B has {counts_b.get(kind, 0)} "
                    "(pair them by name, A's layer = B's layer)"
                )
                continue
            wanted += [(la.alias, la.alias, la.alias, False) for la in graph_a.layers if _kind(la.alias) == kind]
    for name in layers or []:
        kind = _kind(name)
        alias_a = any(la.alias == name for la in graph_a.layers)
        if alias_a and counts_a.get(kind) != counts_b.get(kind):
            raise OptionError(
                "layers",
                f"'{name}' is an alias, and the models number their {kind} layers differently "
                f"(A has {counts_a.get(kind, 0)}, B has {counts_b.get(kind, 0)}): '{name}' may be another layer in B.",
                f"Pair the layer by its node or tensor names: {{mapping}} {name}=<B's node>.",
            )
        wanted.append((name, name, name, True))
    wanted += [(f"{name_a}={name_b}", name_a, name_b, True) for name_a, name_b in (mapping or {}).items()]
    return wanted


def _resolve(graph: ModelGraph, name: str, which: str) -> str:
    try:
        return graph.resolve(name).tensor
    except UnknownNodeError as exc:
        raise UnknownNodeError(f"Model {which}: {exc.message}", exc.hint) from None
