"""One-node cases for every inverse rule, drawn by hypothesis over shapes, attributes and opset
versions: what ``test_rule_properties.py`` checks, and the "test" column of the operator support
table (``scripts/operator_coverage.py``, the docs).

A case function takes hypothesis' ``draw`` and the opset, and returns a ``properties.Case``.
Operands on the image path are ``Signal``s; a ``gap`` keeps values apart where the operator
switches (maxima, sorting, kinks), so central differences never cross a switch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import onnx.defs
from hypothesis import strategies as st

from tests.inverse.properties import ORT_OPSETS, Case, Signal

Draw = Callable[[st.SearchStrategy], object]
CaseFn = Callable[[Draw, int], Case]
PROPERTY_TEST = "tests/inverse/test_rule_properties.py"
GAP = 0.125  # thresholds of the kinked cases (0, ±0.5, ±1, 1.5, 2.5, 3) are multiples of it
CASES: dict[str, CaseFn] = {}

# Rules whose ops cannot be one node with a float output (a quantiser's output is an integer) or
# need a composed graph: checked by their own module's adjoint tests.
OTHER_TESTS = {
    "QuantizeLinear": "tests/graph/test_loading.py",
    "DequantizeLinear": "tests/graph/test_loading.py",
    "Resize": "tests/inverse/test_resize.py",
    "Upsample": "tests/inverse/test_resize.py",
}


def case(*op_types: str) -> Callable[[CaseFn], CaseFn]:
    def register(fn: CaseFn) -> CaseFn:
        for op_type in op_types:
            CASES[op_type] = lambda draw, opset, fn=fn, op_type=op_type: fn(draw, opset, op_type)  # type: ignore[misc]
        return fn

    return register


# Cases that check another case's operator in another setting.
CASE_OPS = {"WhereOfComparison": "Where"}


def checked_by(op_type: str) -> str:
    """The tests that check ``op_type``'s rule, or "-"."""
    cases = [name for name in CASES if CASE_OPS.get(name, name) == op_type]
    if cases:
        return ", ".join(f"{PROPERTY_TEST}::{name}" for name in cases)
    return OTHER_TESTS.get(op_type, "-")


def opsets(op_type: str) -> list[int]:
    """The opsets the versions of ``op_type`` start at (7, onnxruntime's first, for older ones),
    without those where the operator is deprecated or that onnxruntime does not run yet (onnxviz
    refuses to load those models)."""
    op_type = CASE_OPS.get(op_type, op_type)
    versions = sorted(
        {s.since_version for s in onnx.defs.get_all_schemas_with_history() if s.name == op_type and s.domain == ""}
    )
    picked = sorted({max(v, ORT_OPSETS.start) for v in versions if v < ORT_OPSETS.stop})
    return [v for v in picked if not onnx.defs.get_schema(op_type, v).deprecated]


def shape(draw: Draw, rank: tuple[int, int] = (2, 4), size: tuple[int, int] = (2, 4)) -> tuple[int, ...]:
    """A shape with the batch of 1 first."""
    n = draw(st.integers(*rank))
    return (1, *(draw(st.integers(*size)) for _ in range(n - 1)))


def normal(draw: Draw, dims: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    seed = draw(st.integers(0, 2**16))
    return (np.random.default_rng(seed).standard_normal(dims) * scale).astype(np.float32)


# -- element-wise ------------------------------------------------------------------------------

DOMAINS = {
    "Acos": (-0.9, 0.9), "Asin": (-0.9, 0.9), "Atanh": (-0.9, 0.9), "Acosh": (1.2, 3.0), "Log": (0.3, 3.0),
    "Sqrt": (0.3, 3.0), "Reciprocal": (0.3, 3.0), "Tan": (-1.2, 1.2),
}  # fmt: skip
SMOOTH_UNARY = ("Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh")
SMOOTH_UNARY += ("Exp", "Log", "Sqrt", "Reciprocal", "Neg", "Erf", "Sigmoid", "Tanh", "Softplus", "Softsign")
SMOOTH_UNARY += ("Mish", "Identity")
KINKED_UNARY = ("Relu", "Abs", "LeakyRelu", "Elu", "Selu", "Celu", "ThresholdedRelu", "HardSigmoid", "HardSwish")


@case(*SMOOTH_UNARY)
def _smooth_unary(draw: Draw, opset: int, op_type: str) -> Case:
    low, high = DOMAINS.get(op_type, (-2.0, 2.0))
    return Case(op_type, [Signal(shape(draw), low, high)], opset)


@case(*KINKED_UNARY)
def _kinked_unary(draw: Draw, opset: int, op_type: str) -> Case:
    return Case(op_type, [Signal(shape(draw), gap=GAP)], opset)


@case("Swish")
def _swish(draw: Draw, opset: int, op_type: str) -> Case:
    alpha = draw(st.sampled_from([1.0, 0.5, 1.702]))
    return Case(op_type, [Signal(shape(draw))], opset, {"alpha": alpha})


@case("Gelu")
def _gelu(draw: Draw, opset: int, op_type: str) -> Case:
    return Case(op_type, [Signal(shape(draw))], opset, {"approximate": draw(st.sampled_from(["none", "tanh"]))})


@case("Shrink")
def _shrink(draw: Draw, opset: int, op_type: str) -> Case:
    attrs = {"lambd": draw(st.sampled_from([0.5, 1.0])), "bias": draw(st.sampled_from([0.0, 0.3]))}
    return Case(op_type, [Signal(shape(draw), gap=GAP)], opset, attrs)


@case("Clip")
def _clip(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw)
    if opset < 11:
        return Case(op_type, [Signal(dims, gap=GAP)], opset, {"min": -1.0, "max": 1.5})
    return Case(op_type, [Signal(dims, gap=GAP), np.float32(-1.0), np.float32(1.5)], opset)


@case("PRelu")
def _prelu(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw, (3, 4))
    slope = normal(draw, (dims[1],) + (1,) * (len(dims) - 2), 0.3)
    return Case(op_type, [Signal(dims, gap=GAP), slope], opset)


@case("Pow")
def _pow(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw)
    if draw(st.booleans()):
        return Case(op_type, [Signal(dims, 0.5, 2.0), np.float32(draw(st.sampled_from([2.0, 0.5, -1.5, 3.0])))], opset)
    return Case(op_type, [Signal(dims, 0.5, 2.0), Signal(dims, -1.5, 1.5)], opset)


@case("Add", "Sub", "Mul", "Div")
def _binary(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw)
    other = dims if draw(st.booleans()) else (1, *dims[1:-1], 1)
    low = 0.5 if op_type == "Div" else -2.0
    second = Signal(other, low, 2.0) if draw(st.booleans()) else normal(draw, other) ** 2 + 0.5
    return Case(op_type, [Signal(dims), second], opset)


@case("Mean", "Sum")
def _variadic(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw)
    n = draw(st.integers(1, 3))
    other = (1, *dims[1:-1], 1) if opset >= 8 else dims  # broadcasting from opset 8
    operands: list = [Signal(dims)] + [Signal(other) for _ in range(n - 1)]
    if draw(st.booleans()):
        operands.append(normal(draw, dims[1:] if opset >= 8 else dims))
    return Case(op_type, operands, opset)


@case("Max", "Min")
def _extremum(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw)
    if draw(st.booleans()):
        bound = np.float32(0.25) if opset >= 8 else np.full(dims, 0.25, np.float32)  # broadcasting from opset 8
        return Case(op_type, [Signal(dims, gap=GAP), bound], opset)
    return Case(op_type, [Signal(dims, gap=GAP), Signal(dims, -2.0, 2.0)], opset)


@case("Where")
def _where(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw)
    condition = np.random.default_rng(draw(st.integers(0, 99))).random(dims[1:]) > 0.5
    return Case(op_type, [condition, Signal(dims), Signal(dims)], opset)


@case("WhereOfComparison")
def _where_of_comparison(draw: Draw, opset: int, op_type: str) -> Case:
    """Where(a > b, a, b) and the like: the condition computed from the image, by comparisons."""
    dims = shape(draw)
    compare = draw(st.sampled_from(["Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Equal"]))
    # Operands from different grids: no pair ties, so no difference crosses the comparison.
    return Case("Where", [compare, Signal(dims, gap=GAP), Signal(dims, -2.0, 2.0)], max(opset, 12))


@case("SwiGLU")
def _swiglu(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw)
    return Case(op_type, [Signal(dims), Signal(dims)], opset, {"alpha": draw(st.sampled_from([1.0, 1.702]))})


@case("Mod")
def _mod(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw)
    divisor = np.float32(draw(st.sampled_from([0.5, 1.0, -0.75])))
    return Case(op_type, [Signal(dims, gap=GAP), divisor], opset, {"fmod": 1})


# -- reductions and norms -------------------------------------------------------------------------

REDUCE_DOMAINS = {"ReduceLogSum": (0.3, 2.0), "ReduceProd": (0.5, 1.5)}
FIRST_AXES_INPUT = {"ReduceSum": 13}
AXES_INPUT_OPSET = 18


@case("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceProd", "ReduceSumSquare", "ReduceMean")
@case("ReduceSum", "ReduceMax", "ReduceMin")
def _reduce(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw, (2, 4), (2, 4))
    axes = sorted(draw(st.sets(st.integers(1, len(dims) - 1), min_size=1)))
    low, high = REDUCE_DOMAINS.get(op_type, (-2.0, 2.0))
    signal = Signal(dims, gap=GAP) if op_type in ("ReduceMax", "ReduceMin", "ReduceL1") else Signal(dims, low, high)
    attrs = {"keepdims": draw(st.sampled_from([0, 1]))}
    if opset >= FIRST_AXES_INPUT.get(op_type, AXES_INPUT_OPSET):
        return Case(op_type, [signal, np.asarray(axes, np.int64)], opset, attrs)
    return Case(op_type, [signal], opset, {**attrs, "axes": axes})


@case("LpNormalization")
def _lp_normalization(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw, (2, 4), (2, 4))
    attrs = {"axis": draw(st.integers(1, len(dims) - 1)), "p": draw(st.sampled_from([1, 2]))}
    return Case(op_type, [Signal(dims, gap=GAP)], opset, attrs)


@case("MeanVarianceNormalization")
def _mvn(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw, (4, 4), (2, 4))
    axes = draw(st.sampled_from([[0, 2, 3], [2, 3], [1, 2, 3], [3]]))
    if math.prod(dims[a] for a in axes) < 2:
        dims = (1, 2, 3, 3)
    return Case(op_type, [Signal(dims)], opset, {"axes": axes})


@case("RMSNormalization")
def _rms(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw, (2, 4), (2, 4))
    axis = draw(st.integers(1, len(dims) - 1))
    scale = normal(draw, dims[axis:]) + 1.0
    return Case(op_type, [Signal(dims), scale], opset, {"axis": axis, "epsilon": 1e-3})


@case("LayerNormalization")
def _layer_norm(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw, (2, 4), (2, 4))
    axis = draw(st.integers(1, len(dims) - 1))
    return Case(
        op_type, [Signal(dims), normal(draw, dims[axis:]) + 1.0, normal(draw, dims[axis:])], opset, {"axis": axis}
    )


@case("InstanceNormalization")
def _instance_norm(draw: Draw, opset: int, op_type: str) -> Case:
    dims = (1, draw(st.integers(1, 3)), draw(st.integers(2, 4)), draw(st.integers(2, 4)))
    return Case(op_type, [Signal(dims), normal(draw, dims[1:2]) + 1.0, normal(draw, dims[1:2])], opset)


@case("Softmax", "LogSoftmax")
def _softmax(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw, (2, 4), (2, 4))
    return Case(
        op_type, [Signal(dims)], opset, {"axis": draw(st.integers(1, len(dims) - 1)) if opset >= 13 else len(dims) - 1}
    )


# -- convolutions and pools -----------------------------------------------------------------------


@case("ConvTranspose")
def _conv_transpose(draw: Draw, opset: int, op_type: str) -> Case:
    group = draw(st.sampled_from([1, 2]))
    channels, out_per_group = 2 * draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    strides = [draw(st.integers(1, 3)), draw(st.integers(1, 2))]
    dilations = [draw(st.integers(1, 2)), 1]
    pads = [draw(st.integers(0, (k - 1) * d // 2)) for k, d in zip(kernel, dilations, strict=True) for _ in (0, 1)]
    pads = pads[0::2] + pads[1::2]
    output_padding = [draw(st.integers(0, s - 1)) for s in strides]  # onnxruntime: below the stride
    weights = normal(draw, (channels, out_per_group, *kernel), 0.5)
    attrs = {"group": group, "strides": strides, "dilations": dilations, "pads": pads, "output_padding": output_padding}
    if draw(st.booleans()):  # the crop split by auto_pad (output n·stride)
        del attrs["pads"], attrs["output_padding"]  # onnx and onnxruntime size SAME + output_padding apart
        attrs["auto_pad"] = draw(st.sampled_from(["SAME_UPPER", "SAME_LOWER"]))
    dims = (1, channels, draw(st.integers(2, 4)), draw(st.integers(2, 4)))
    bias = normal(draw, (out_per_group * group,))
    return Case(op_type, [Signal(dims), weights, bias if draw(st.booleans()) else None], opset, attrs)


@case("Conv")
def _conv(draw: Draw, opset: int, op_type: str) -> Case:
    kernel = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    weights = normal(draw, (3, 2, *kernel), 0.5)
    attrs = {"strides": [draw(st.integers(1, 2))] * 2, "pads": [draw(st.integers(0, 1))] * 4}
    return Case(op_type, [Signal((1, 2, draw(st.integers(3, 5)), 4)), weights], opset, attrs)


@case("LpPool")
def _lp_pool(draw: Draw, opset: int, op_type: str) -> Case:
    kernel = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    attrs: dict = {"kernel_shape": kernel, "p": draw(st.sampled_from([1, 2, 3]))}
    attrs["strides"] = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    attrs["pads"] = [draw(st.integers(0, k - 1)) for k in kernel] * 2
    if opset >= 18:
        attrs["dilations"] = [draw(st.integers(1, 2)), 1]
        attrs["ceil_mode"] = 0
    dims = (1, draw(st.integers(1, 3)), draw(st.integers(4, 6)), draw(st.integers(3, 5)))
    return Case(op_type, [Signal(dims, gap=GAP)], opset, attrs)


@case("GlobalLpPool")
def _global_lp_pool(draw: Draw, opset: int, op_type: str) -> Case:
    dims = (1, draw(st.integers(1, 3)), draw(st.integers(2, 4)), draw(st.integers(2, 4)))
    return Case(op_type, [Signal(dims, gap=GAP)], opset, {"p": draw(st.sampled_from([1, 2, 3]))})


@case("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(draw: Draw, opset: int, op_type: str) -> Case:
    dims = (1, draw(st.integers(1, 3)), draw(st.integers(2, 4)), draw(st.integers(2, 4)))
    return Case(op_type, [Signal(dims, gap=GAP)], opset)


# -- data movement ----------------------------------------------------------------------------------


@case("CumSum")
def _cumsum(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw, (2, 4), (2, 4))
    axis = np.asarray(draw(st.integers(1, len(dims) - 1)), np.int64)
    attrs = {"exclusive": draw(st.sampled_from([0, 1])), "reverse": draw(st.sampled_from([0, 1]))}
    return Case(op_type, [Signal(dims), axis], opset, attrs)


@case("Trilu")
def _trilu(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw, (3, 4), (2, 5))
    k = np.asarray(draw(st.integers(-2, 2)), np.int64)
    return Case(op_type, [Signal(dims), k], opset, {"upper": draw(st.sampled_from([0, 1]))})


@case("TopK")
def _topk(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw, (2, 4), (2, 5))
    axis = draw(st.integers(1, len(dims) - 1))
    k = draw(st.integers(1, dims[axis]))
    attrs: dict = {"axis": axis}
    if opset >= 11:
        attrs["largest"] = draw(st.sampled_from([0, 1]))
    signal = Signal(dims, gap=GAP)
    if opset < 10:
        return Case(op_type, [signal], opset, {**attrs, "k": k}, outputs=2)
    return Case(op_type, [signal, np.asarray([k], np.int64)], opset, attrs, outputs=2)


@case("GatherND")
def _gather_nd(draw: Draw, opset: int, op_type: str) -> Case:
    dims = (1, draw(st.integers(2, 4)), draw(st.integers(2, 4)), draw(st.integers(1, 3)))
    batch_dims = draw(st.sampled_from([0, 1])) if opset >= 12 else 0
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    n = draw(st.integers(1, 4))
    # Indices (1, n, depth): with batch_dims 0 they start with the batch's index 0, so the output
    # keeps the one image on axis 0.
    depth = draw(st.integers(1, 3 - batch_dims)) if batch_dims else draw(st.integers(2, 4))
    limits = dims[batch_dims : batch_dims + depth]
    indices = np.stack([rng.integers(0, m, (1, n)) for m in limits], axis=-1)
    attrs = {"batch_dims": batch_dims} if opset >= 12 else {}
    return Case(op_type, [Signal(dims), indices.astype(np.int64)], opset, attrs)


@case("ScatterElements", "Scatter")
def _scatter_elements(draw: Draw, opset: int, op_type: str) -> Case:
    dims = (1, draw(st.integers(2, 4)), draw(st.integers(2, 4)))
    axis = draw(st.integers(1, 2))
    count = draw(st.integers(1, dims[axis]))
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    other = 3 - axis  # distinct positions along the axis in each line
    lines = [rng.permutation(dims[axis])[:count] for _ in range(dims[other])]
    indices = np.stack(lines, axis=0 if axis == 2 else 1)[None].astype(np.int64)
    attrs: dict = {"axis": axis}
    if opset >= 16:
        attrs["reduction"] = draw(st.sampled_from(["none", "add", "mul"]))
    return Case(op_type, [Signal(dims), indices, Signal(indices.shape, 0.5, 2.0)], opset, attrs)


@case("ScatterND")
def _scatter_nd(draw: Draw, opset: int, op_type: str) -> Case:
    dims = (1, draw(st.integers(2, 4)), draw(st.integers(2, 4)), 2)
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    depth = draw(st.integers(2, 3))
    flat = rng.permutation(math.prod(dims[1:depth]))[: draw(st.integers(1, 3))]
    where = np.stack(np.unravel_index(flat, dims[1:depth]), axis=-1)
    indices = np.concatenate([np.zeros((len(flat), 1), np.int64), where], axis=-1)
    updates = (len(flat), *dims[depth:])
    attrs: dict = {}
    if opset >= 16:
        attrs["reduction"] = draw(st.sampled_from(["none", "add", "mul"]))
    return Case(op_type, [Signal(dims), indices.astype(np.int64), Signal(updates, 0.5, 2.0)], opset, attrs)


@case("Compress")
def _compress(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw, (2, 4), (2, 4))
    axis = draw(st.integers(1, len(dims) - 1))
    keep = np.random.default_rng(draw(st.integers(0, 99))).random(dims[axis]) > 0.4
    keep[0] = True
    return Case(op_type, [Signal(dims), keep], opset, {"axis": axis})


@case("CenterCropPad")
def _center_crop_pad(draw: Draw, opset: int, op_type: str) -> Case:
    dims = (1, 2, draw(st.integers(2, 6)), draw(st.integers(2, 6)))
    target = np.asarray([draw(st.integers(1, 7)), draw(st.integers(1, 7))], np.int64)
    return Case(op_type, [Signal(dims), target], opset, {"axes": [2, 3]})


@case("CastLike")
def _cast_like(draw: Draw, opset: int, op_type: str) -> Case:
    return Case(op_type, [Signal(shape(draw)), np.zeros(1, np.float32)], opset)


# -- sampling ----------------------------------------------------------------------------------------


def _pixel_switches(sizes: tuple[int, ...], align: int, mode: str) -> tuple[float, ...]:
    """Grid coordinates whose pixel coordinate is an integer (a half-integer for nearest)."""
    offset = 0.5 if mode == "nearest" else 0.0
    found = set()
    for size in sizes:
        for pixel in np.arange(-2, size + 2) + offset:
            found.add(float(2 * pixel / (size - 1) - 1) if align and size > 1 else float((2 * pixel + 1) / size - 1))
    return tuple(sorted(found))


@case("GridSample")
def _grid_sample(draw: Draw, opset: int, op_type: str) -> Case:
    dims = (1, draw(st.integers(1, 2)), draw(st.integers(2, 4)), draw(st.integers(2, 4)))
    out = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    linear = "bilinear" if opset < 20 else "linear"
    attrs = {
        "mode": draw(st.sampled_from([linear, linear, "nearest"])),
        "padding_mode": draw(st.sampled_from(["zeros", "border"])),
        "align_corners": draw(st.sampled_from([0, 1])),
    }
    # Grid values a little beyond [-1, 1] reach the padding; none sits where sampling switches pixels.
    grid = Signal((1, *out, 2), -1.2, 1.2, kinks=_pixel_switches(dims[2:], attrs["align_corners"], attrs["mode"]))
    if not draw(st.booleans()):  # the simplest draw (False) takes the grid from the image too
        return Case(op_type, [Signal(dims), grid], opset, attrs)
    fixed = np.random.default_rng(draw(st.integers(0, 99))).uniform(-1.2, 1.2, (1, *out, 2)).astype(np.float32)
    return Case(op_type, [Signal(dims), fixed], opset, attrs)


@case("AffineGrid")
def _affine_grid(draw: Draw, opset: int, op_type: str) -> Case:
    size = np.asarray([1, 1, draw(st.integers(1, 4)), draw(st.integers(1, 4))], np.int64)
    return Case(op_type, [Signal((1, 2, 3)), size], opset, {"align_corners": draw(st.sampled_from([0, 1]))})


# -- the rules that came before this module: data movement, linear maps, pools ------------------------


@case("Identity", "Dropout", "Cast")
def _pass_through(draw: Draw, opset: int, op_type: str) -> Case:
    attrs = {"to": onnx.TensorProto.FLOAT} if op_type == "Cast" else {}
    return Case(op_type, [Signal(shape(draw))], opset, attrs)


@case("Transpose")
def _transpose(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw, (3, 4), (2, 4))
    perm = [0, *draw(st.permutations(range(1, len(dims))))]
    return Case(op_type, [Signal(dims)], opset, {"perm": perm})


@case("Reshape", "Flatten")
def _reshape(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw, (3, 4), (2, 4))
    if op_type == "Flatten":
        return Case(op_type, [Signal(dims)], opset, {"axis": 1})
    return Case(op_type, [Signal(dims), np.asarray([1, -1, dims[-1]], np.int64)], opset)


@case("Squeeze", "Unsqueeze")
def _squeeze(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw, (3, 4), (2, 4))
    axes = [1]
    dims = (*dims[:1], 1, *dims[1:]) if op_type == "Squeeze" else dims
    if opset >= 13:
        return Case(op_type, [Signal(dims), np.asarray(axes, np.int64)], opset)
    return Case(op_type, [Signal(dims)], opset, {"axes": axes})


@case("Concat")
def _concat(draw: Draw, opset: int, op_type: str) -> Case:
    dims = shape(draw, (2, 4), (2, 4))
    axis = draw(st.integers(1, len(dims) - 1))
    other = list(dims)
    other[axis] = draw(st.integers(1, 3))
    # A constant operand only from opset 15: onnxviz's forward graph gives it the batch with a
    # Shape(start, end) that older opsets lack.
    middle = [normal(draw, tuple(other))] if opset >= 15 else []
    return Case(op_type, [Signal(dims), *middle, Signal(tuple(other))], opset, {"axis": axis})


@case("Split")
def _split(draw: Draw, opset: int, op_type: str) -> Case:
    dims = (1, draw(st.integers(2, 4)), draw(st.integers(1, 3)))
    first = draw(st.integers(1, dims[1] - 1))
    sizes = [first, dims[1] - first]
    target = draw(st.integers(0, 1))
    if opset >= 13:
        return Case(op_type, [Signal(dims), np.asarray(sizes, np.int64)], opset, {"axis": 1}, outputs=2, target=target)
    return Case(op_type, [Signal(dims)], opset, {"axis": 1, "split": sizes}, outputs=2, target=target)


@case("Slice")
def _slice(draw: Draw, opset: int, op_type: str) -> Case:
    dims = (1, draw(st.integers(2, 6)), draw(st.integers(2, 6)))
    start, stop = draw(st.integers(0, 1)), draw(st.integers(2, 6))
    if opset < 10:
        return Case(op_type, [Signal(dims)], opset, {"starts": [start], "ends": [stop], "axes": [2]})
    step = draw(st.sampled_from([1, 2]))
    ints = [np.asarray([v], np.int64) for v in (start, stop, 2, step)]
    return Case(op_type, [Signal(dims), *ints], opset)


@case("Expand", "Tile")
def _copies(draw: Draw, opset: int, op_type: str) -> Case:
    dims = (1, draw(st.integers(1, 3)), 1)
    if op_type == "Expand":
        return Case(op_type, [Signal(dims), np.asarray([1, dims[1], draw(st.integers(2, 3))], np.int64)], opset)
    return Case(
        op_type, [Signal(dims), np.asarray([1, draw(st.integers(1, 3)), draw(st.integers(2, 3))], np.int64)], opset
    )


@case("Gather", "GatherElements")
def _gather(draw: Draw, opset: int, op_type: str) -> Case:
    dims = (1, draw(st.integers(2, 4)), draw(st.integers(2, 4)))
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    if op_type == "Gather":
        return Case(op_type, [Signal(dims), rng.integers(-dims[2], dims[2], 3).astype(np.int64)], opset, {"axis": 2})
    return Case(op_type, [Signal(dims), rng.integers(0, dims[2], dims).astype(np.int64)], opset, {"axis": 2})


@case("DepthToSpace", "SpaceToDepth")
def _depth_space(draw: Draw, opset: int, op_type: str) -> Case:
    block = 2
    if op_type == "DepthToSpace":
        attrs = {"blocksize": block, **({"mode": draw(st.sampled_from(["DCR", "CRD"]))} if opset >= 11 else {})}
        return Case(op_type, [Signal((1, 4 * draw(st.integers(1, 2)), 2, 3))], opset, attrs)
    return Case(op_type, [Signal((1, draw(st.integers(1, 2)), 4, 2))], opset, {"blocksize": block})


@case("Pad")
def _pad(draw: Draw, opset: int, op_type: str) -> Case:
    dims = (1, 2, draw(st.integers(3, 5)), draw(st.integers(3, 5)))
    widths = [
        0,
        0,
        draw(st.integers(0, 2)),
        draw(st.integers(0, 2)),
        0,
        0,
        draw(st.integers(0, 2)),
        draw(st.integers(0, 2)),
    ]
    mode = draw(st.sampled_from(["constant", "reflect", "edge"]))
    if opset < 11:
        return Case(op_type, [Signal(dims)], opset, {"pads": widths, "mode": mode})
    return Case(op_type, [Signal(dims), np.asarray(widths, np.int64)], opset, {"mode": mode})


@case("Gemm", "MatMul")
def _matrix(draw: Draw, opset: int, op_type: str) -> Case:
    k, n = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    if op_type == "MatMul":
        rows = draw(st.integers(1, 3))
        right = Signal((1, k, n)) if draw(st.booleans()) else normal(draw, (k, n))
        return Case(op_type, [Signal((1, rows, k)), right], opset)
    trans = draw(st.sampled_from([0, 1]))
    weights = normal(draw, (n, k) if trans else (k, n))
    return Case(op_type, [Signal((1, k)), weights, normal(draw, (n,))], opset, {"transB": trans, "alpha": 0.7})


@case("BatchNormalization", "GroupNormalization")
def _channel_norm(draw: Draw, opset: int, op_type: str) -> Case:
    channels = 2 * draw(st.integers(1, 2))
    dims = (1, channels, draw(st.integers(2, 3)), draw(st.integers(2, 3)))
    if op_type == "GroupNormalization":
        groups = draw(st.sampled_from([1, 2]))
        per = channels if opset >= 21 else groups
        return Case(
            op_type, [Signal(dims), normal(draw, (per,)) + 1.0, normal(draw, (per,))], opset, {"num_groups": groups}
        )
    stats = [
        normal(draw, (channels,)) + 1.0,
        normal(draw, (channels,)),
        normal(draw, (channels,)),
        normal(draw, (channels,)) ** 2 + 0.5,
    ]
    return Case(op_type, [Signal(dims), *stats], opset, {"epsilon": 1e-3})


@case("LRN")
def _lrn(draw: Draw, opset: int, op_type: str) -> Case:
    dims = (1, draw(st.integers(2, 5)), draw(st.integers(1, 3)), 2)
    size = draw(st.sampled_from([1, 3, 5]))  # onnxruntime runs odd windows only
    return Case(op_type, [Signal(dims)], opset, {"size": size, "alpha": 0.3, "beta": 0.75, "bias": 1.0})


@case("AveragePool", "MaxPool")
def _pool(draw: Draw, opset: int, op_type: str) -> Case:
    kernel = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    attrs: dict = {"kernel_shape": kernel, "strides": [draw(st.integers(1, 2)), draw(st.integers(1, 2))]}
    attrs["pads"] = [draw(st.integers(0, k - 1)) for k in kernel] * 2
    if op_type == "AveragePool":
        attrs["count_include_pad"] = draw(st.sampled_from([0, 1]))
    dims = (1, draw(st.integers(1, 2)), draw(st.integers(3, 5)), draw(st.integers(3, 5)))
    return Case(op_type, [Signal(dims, gap=GAP)], opset, attrs)


@case("Attention")
def _attention(draw: Draw, opset: int, op_type: str) -> Case:
    heads, size, queries = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    keys = queries if draw(st.booleans()) else draw(st.integers(1, 3))
    attrs: dict = {}
    if draw(st.booleans()):
        attrs["scale"] = 0.7
    if keys == queries and draw(st.booleans()):
        attrs["is_causal"] = 1
    if draw(st.booleans()):  # 3-D: (batch, sequence, heads·size)
        attrs.update(q_num_heads=heads, kv_num_heads=heads)
        shapes = [(1, queries, heads * size), (1, keys, heads * size), (1, keys, heads * size)]
    else:
        shapes = [(1, heads, queries, size), (1, heads, keys, size), (1, heads, keys, size)]
    operands: list = [Signal(s) for s in shapes]
    kind = draw(st.sampled_from(["none", "bool", "float"]))
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    if kind == "bool":
        allowed = rng.random((queries, keys)) > 0.3
        allowed[:, 0] = True  # every query attends to some key
        operands.append(allowed)
    elif kind == "float":
        operands.append(rng.standard_normal((queries, keys)).astype(np.float32))
    return Case(op_type, operands, opset, attrs)


@case("Col2Im")
def _col2im(draw: Draw, opset: int, op_type: str) -> Case:
    image = [draw(st.integers(2, 5)), draw(st.integers(2, 5))]
    block = [draw(st.integers(1, 2)), draw(st.integers(1, 3))]
    strides, dilations = [draw(st.integers(1, 2)), 1], [1, draw(st.integers(1, 2))]
    pads = [draw(st.integers(0, 1)) for _ in range(4)]
    if any(image[a] + pads[a] + pads[a + 2] < dilations[a] * (block[a] - 1) + 1 for a in (0, 1)):
        block = [1, 1]  # the dilated block does not fit the padded image
    grid = [
        (size + pads[a] + pads[a + 2] - dilations[a] * (block[a] - 1) - 1) // strides[a] + 1
        for a, size in enumerate(image)
    ]
    channels = draw(st.integers(1, 2))
    dims = (1, channels * block[0] * block[1], grid[0] * grid[1])
    attrs = {"strides": strides, "dilations": dilations, "pads": pads}
    return Case(op_type, [Signal(dims), np.asarray(image, np.int64), np.asarray(block, np.int64)], opset, attrs)


@case("MaxUnpool")
def _max_unpool(draw: Draw, opset: int, op_type: str) -> Case:
    """Constant indices: distinct positions of the unpooled map, as a MaxPool's switches are."""
    channels, height, width = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = [2, 2]
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    rows = np.arange(height)[:, None] * 2 + rng.integers(0, 2, (height, width))
    cols = np.arange(width)[None, :] * 2 + rng.integers(0, 2, (height, width))
    plane = rows * (2 * width) + cols
    indices = (np.arange(channels)[:, None, None] * 4 * height * width + plane[None])[None].astype(np.int64)
    return Case(
        op_type, [Signal((1, channels, height, width)), indices], opset, {"kernel_shape": kernel, "strides": kernel}
    )


@case("Einsum")
def _einsum(draw: Draw, opset: int, op_type: str) -> Case:
    rows, inner, cols = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if draw(st.booleans()):  # both operands from the image (attention's scores)
        return Case(op_type, [Signal((1, rows, inner)), Signal((1, inner, cols))], opset, {"equation": "bij,bjk->bik"})
    weights = normal(draw, (cols, inner))
    return Case(op_type, [Signal((1, rows, inner)), weights], opset, {"equation": "bij,kj->bki"})


@case("DeformConv")
def _deform_conv(draw: Draw, opset: int, op_type: str) -> Case:
    """Offsets (and a mask) from the image, as a deformable network computes them."""
    channels, out_channels = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = [draw(st.integers(1, 2)), draw(st.integers(1, 3))]
    size = (draw(st.integers(kernel[0], 4)), draw(st.integers(kernel[1], 4)))  # at least one output
    strides, pads = [draw(st.integers(1, 2)), 1], [draw(st.integers(0, 1)), 0, draw(st.integers(0, 1)), 0]
    out = [(size[a] + pads[a] + pads[a + 2] - kernel[a]) // strides[a] + 1 for a in (0, 1)]
    taps = kernel[0] * kernel[1]
    # Offsets keep every sampling point away from pixel rows and columns (where bilinear switches).
    offsets = Signal((1, 2 * taps, *out), -0.9, 0.9, kinks=(-1.0, 0.0, 1.0))
    operands: list = [Signal((1, channels, *size)), normal(draw, (out_channels, channels, *kernel), 0.5), offsets]
    if not draw(st.booleans()):  # deformable v2: a modulation mask from the image
        operands += [normal(draw, (out_channels,)), Signal((1, taps, *out), 0.2, 1.0)]
    attrs = {"kernel_shape": kernel, "strides": strides, "pads": pads}
    return Case(op_type, operands, opset, attrs)


@case("RoiAlign")
def _roi_align(draw: Draw, opset: int, op_type: str) -> Case:
    size = (draw(st.integers(2, 5)), draw(st.integers(2, 5)))
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    corner = rng.uniform(-1.5, 3.0, 2)
    box = np.concatenate([corner, corner + rng.uniform(0.3, 4.0, 2)]).astype(np.float32)[None]  # x1, y1, x2, y2
    attrs: dict = {
        "output_height": draw(st.integers(1, 3)),
        "output_width": draw(st.integers(1, 3)),
        "sampling_ratio": draw(st.sampled_from([0, 1, 2])),
        "spatial_scale": draw(st.sampled_from([1.0, 0.5])),
    }
    if opset >= 16:
        attrs["coordinate_transformation_mode"] = draw(st.sampled_from(["half_pixel", "output_half_pixel"]))
    operands = [Signal((1, draw(st.integers(1, 2)), *size)), box, np.zeros(1, np.int64)]
    return Case(op_type, operands, opset, attrs)
