"""The small ONNX graphs that keep an activation-maximisation step on the device (``device.py``).

Each is the numpy path's step (``analysis._ascend``) written with ops every provider runs in
float32 (MatMul, GatherElements, ScatterElements with ``add``, TopK, Where, Pad, …), so the same
graphs run under CUDA, where their inputs and outputs never leave the GPU, and under the CPU
provider, where they are tested against numpy.

* **render**: parameters → the image x (``PixelImage.image`` / ``FourierImage.image``) → the
  model's input: x read by bilinear taps computed in the graph from each image's shift and
  cos/zoom, sin/zoom (``Transforms.draw``, ``bilinear_taps``), gray where a tap falls outside.
  ``irfft2`` is two real DFT matrices: with M = ifft(I_H) and the spectrum's real and imaginary
  parts stacked along the rows, [Zr; Zi] = [[Re M, −Im M], [Im M, Re M]] · [Sr; Si] is the inverse
  transform along the rows, and x = Zr·Dr + Zi·Di with Dr, Di the irfft of the unit real and
  imaginary bins is the half-spectrum one along the columns (bin 0's and W/2's imaginary parts
  drop out, as numpy drops them). The adjoint is the same matrices transposed.
* **objective**: the layer's value → each image's objective, and for ``class`` the seed
  2·one-hot − softmax (the other objectives' seeds are constants).
* **update**: the inverse's input gradient → the transform's adjoint (the bilinear weights
  scattered back with ``ScatterElements(reduction="add")``) → minus the regularisers' gradient at
  the untransformed image → the parameterisation's adjoint → Adam (bias correction from the step
  count the graph carries) → for pixels: clipped to [0, 1], blurred (a variant of the graph for the
  steps that blur: cv2's kernel, BORDER_REFLECT by index), and percentile clipping (the k-th
  smallest norms by TopK, np.percentile's linear interpolation between them).

The fft parameters live on the device as (K, C, 2H, W/2+1): real parts above imaginary parts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import onnx
from onnx import TensorProto

from onnxviz.analyses.maximize.parameterisations import SPECTRUM_DIVISOR
from onnxviz.graph.emit import GraphEmitter
from onnxviz.runtime.sessions import ir_version_for

OPSET = 17
ADAM_BETAS = (0.9, 0.999)
ADAM_EPSILON = 1e-8

# Graph input and output names, shared by the graphs and the loop that chains them.
PARAMS, DRAWS, MODEL_INPUT, IMAGE, SIGMOID = "params", "draws", "model_input", "image", "sigmoid"
INDEX, WEIGHTS, VALUE, OBJECTIVE, SEED = "tap_index", "tap_weights", "value", "objective", "seed"
GRADIENT, MOMENT, SECOND, STEP = "input_gradient", "moment", "second", "step"
NEW = "next_"  # the update's outputs: next_params, next_moment, next_second, next_step
LINEAR = "linear_image"  # the fft image before its sigmoid (named for the adjoint tests)
PARAMS_GRADIENT = "params_gradient"  # ∂objective/∂params before Adam (named for the adjoint tests)


@dataclass(frozen=True)
class AscentSpec:
    """What the graphs of one run compute: shapes, the input range, the parameterisation, the
    transforms and regularisers."""

    count: int
    channels: int
    height: int
    width: int
    layout: str  # the model's: "nchw" or "nhwc"
    gain: np.ndarray  # (C,) InputRange.gain
    offset: np.ndarray  # (C,) InputRange.offset
    order: tuple[int, ...]  # InputRange.order
    fourier_scale: np.ndarray | None  # (H, W/2+1) FourierImage.scale; None: pixel
    decorrelation: np.ndarray | None  # (3, 3) or None
    transformed: bool
    lr: float
    decay: float = 0.0
    tv: float = 0.0
    blur: float = 0.0
    clip_percentile: float = 0.0

    @property
    def regularised(self) -> bool:
        return bool(self.decay or self.tv)

    @property
    def params_shape(self) -> tuple[int, ...]:
        if self.fourier_scale is None:
            return (self.count, self.channels, self.height, self.width)
        return (self.count, self.channels, 2 * self.height, self.fourier_scale.shape[1])


# The names the chaining loop feeds and reads: no generated name may take one.
INTERFACE = frozenset(
    {PARAMS, DRAWS, MODEL_INPUT, IMAGE, SIGMOID, INDEX, WEIGHTS, VALUE, OBJECTIVE, SEED, GRADIENT, MOMENT, SECOND}
    | {STEP, LINEAR, PARAMS_GRADIENT}
    | {NEW + name for name in (PARAMS, MOMENT, SECOND, STEP)}
)


class Graph(GraphEmitter):
    """An ascent graph: constants are float32 unless told (the step computes in float32 throughout),
    and the reshapes, slices and named outputs the step writes often."""

    def __init__(self, name: str) -> None:
        super().__init__(name, opset=OPSET, reserved=INTERFACE)

    def const(self, value: np.ndarray | Sequence | float, hint: str = "c", dtype: type | None = np.float32) -> str:
        return super().const(value, hint, dtype)

    def reshape(self, x: str, shape: tuple[int, ...]) -> str:
        return self.op("Reshape", [x, self.const(shape, dtype=np.int64)])

    def slice(self, x: str, axis: int, start: int, end: int) -> str:
        return self.op("Slice", [x, *(self.const([v], dtype=np.int64) for v in (start, end, axis))])

    def expose(self, tensor: str, name: str, elem: int = TensorProto.FLOAT) -> str:
        """Graph output ``name``, a copy of ``tensor`` (left unshaped: the runner knows its shapes)."""
        return self.output(self.op("Identity", [tensor], outputs=[name]), elem=elem)


def dft_matrices(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(L, Dr, Di): the rows' inverse DFT on [real; imag] (2H × 2H) and the columns' half-spectrum
    inverse DFT of real and imaginary bins ((W/2+1) × W each), all from numpy's own transforms."""
    rows = np.fft.ifft(np.eye(height), axis=0)
    rows_matrix = np.block([[rows.real, -rows.imag], [rows.imag, rows.real]])
    bins = np.eye(width // 2 + 1)
    return rows_matrix, np.fft.irfft(bins, n=width, axis=1), np.fft.irfft(1j * bins, n=width, axis=1)


def render_graph(spec: AscentSpec) -> onnx.ModelProto:
    """params (+ draws (K, 4): shift y, shift x, cos/zoom, sin/zoom) → the model's input (and what
    the update reads: the taps, the untransformed image, the sigmoid)."""
    g = Graph("render")
    params = g.input(PARAMS, spec.params_shape)
    sigmoid = None
    if spec.fourier_scale is None:
        x = _to_input(g, spec, params)
    else:
        sigmoid = g.op("Sigmoid", [_spectrum_image(g, spec, params)])
        x = _to_input(g, spec, sigmoid)
        g.expose(sigmoid, SIGMOID)
    model_x = x
    if spec.transformed:
        index, weights, outside = _taps(g, spec, g.input(DRAWS, (spec.count, 4)))
        model_x = _transform(g, spec, x, index, weights, outside)
        g.expose(index, INDEX, TensorProto.INT64)
        g.expose(weights, WEIGHTS)
    if spec.layout == "nhwc":
        model_x = g.op("Transpose", [model_x], perm=[0, 2, 3, 1])
    g.expose(model_x, MODEL_INPUT)
    if spec.regularised:
        g.expose(x, IMAGE)
    return g.model(ir_version=ir_version_for(OPSET))


def _to_input(g: Graph, spec: AscentSpec, rgb: str) -> str:
    """InputRange.to_input: the model's channel order, gain and offset."""
    if spec.order != tuple(range(spec.channels)):
        rgb = g.op("Gather", [rgb, g.const(spec.order, dtype=np.int64)], axis=1)
    gained = g.op("Mul", [rgb, g.const(spec.gain.reshape(1, -1, 1, 1))])
    return g.op("Add", [gained, g.const(spec.offset.reshape(1, -1, 1, 1))])


def _to_rgb_gradient(g: Graph, spec: AscentSpec, grad: str) -> str:
    """InputRange.to_rgb_gradient: the gain, then the channels back to RGB order."""
    scaled = g.op("Mul", [grad, g.const(spec.gain.reshape(1, -1, 1, 1))])
    if spec.order == tuple(range(spec.channels)):
        return scaled
    return g.op("Gather", [scaled, g.const(np.argsort(spec.order), dtype=np.int64)], axis=1)


def _colour(g: Graph, spec: AscentSpec, x: str, matrix: np.ndarray) -> str:
    """A 3 × 3 colour matrix applied to every pixel: einsum("ij,kjhw->kihw")."""
    flat = g.reshape(x, (spec.count, spec.channels, spec.height * spec.width))
    mixed = g.op("MatMul", [g.const(matrix), flat])
    return g.reshape(mixed, (spec.count, spec.channels, spec.height, spec.width))


def _spectrum_image(g: Graph, spec: AscentSpec, params: str) -> str:
    """FourierImage._linear and its colour decorrelation: the image before the sigmoid."""
    rows, real_bins, imag_bins = dft_matrices(spec.height, spec.width)
    scaled = g.op("Mul", [params, g.const(np.tile(spec.fourier_scale, (2, 1)))])
    stacked = g.op("MatMul", [g.const(rows), scaled])
    top = g.slice(stacked, 2, 0, spec.height)
    bottom = g.slice(stacked, 2, spec.height, 2 * spec.height)
    real = g.op("MatMul", [top, g.const(real_bins / SPECTRUM_DIVISOR)])
    linear = g.op("Add", [real, g.op("MatMul", [bottom, g.const(imag_bins / SPECTRUM_DIVISOR)])])
    if spec.decorrelation is not None:
        linear = _colour(g, spec, linear, spec.decorrelation)
    return g.op("Identity", [linear], outputs=[LINEAR])


def _spectrum_adjoint(g: Graph, spec: AscentSpec, grad: str) -> str:
    """The adjoint of ``_spectrum_image``: the decorrelation and DFT matrices transposed."""
    if spec.decorrelation is not None:
        grad = _colour(g, spec, grad, spec.decorrelation.T)
    rows, real_bins, imag_bins = dft_matrices(spec.height, spec.width)
    real = g.op("MatMul", [grad, g.const(real_bins.T / SPECTRUM_DIVISOR)])
    imag = g.op("MatMul", [grad, g.const(imag_bins.T / SPECTRUM_DIVISOR)])
    stacked = g.op("MatMul", [g.const(rows.T), g.op("Concat", [real, imag], axis=2)])
    return g.op("Mul", [stacked, g.const(np.tile(spec.fourier_scale, (2, 1)))])


def _taps(g: Graph, spec: AscentSpec, draws: str) -> tuple[str, str, str]:
    """bilinear_taps of Transforms.draw's reads: (index (K, 4, HW) int64, weights (K, 4, HW),
    outside (K, HW))."""
    height, width = spec.height, spec.width
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    centre_y, centre_x = (height - 1) / 2, (width - 1) / 2
    shift_y, shift_x, cos, sin = (g.slice(draws, 1, i, i + 1) for i in range(4))
    dy = g.op("Add", [g.const(rows.reshape(1, -1) - centre_y), shift_y])
    dx = g.op("Add", [g.const(cols.reshape(1, -1) - centre_x), shift_x])
    source_y = g.op("Add", [g.op("Sub", [g.op("Mul", [cos, dy]), g.op("Mul", [sin, dx])]), g.const(centre_y)])
    source_x = g.op("Add", [g.op("Add", [g.op("Mul", [sin, dy]), g.op("Mul", [cos, dx])]), g.const(centre_x)])
    taps_y, weights_y = _axis_taps(g, source_y, [0, 0, 1, 1])
    taps_x, weights_x = _axis_taps(g, source_x, [0, 1, 0, 1])
    weights = g.op("Mul", [weights_y, weights_x])
    inside_y = g.op("And", [g.op("Greater", [taps_y, g.const(-0.5)]), g.op("Less", [taps_y, g.const(height - 0.5)])])
    inside_x = g.op("And", [g.op("Greater", [taps_x, g.const(-0.5)]), g.op("Less", [taps_x, g.const(width - 0.5)])])
    inside = g.op("And", [inside_y, inside_x])
    flat = g.op("Add", [g.op("Mul", [taps_y, g.const(float(width))]), taps_x])
    index = g.op("Cast", [g.op("Where", [inside, flat, g.const(0.0)])], to=TensorProto.INT64)
    kept = g.op("Where", [inside, weights, g.const(0.0)])
    axis = g.const([1], dtype=np.int64)
    outside = g.op("Sub", [g.op("ReduceSum", [weights, axis], keepdims=0), g.op("ReduceSum", [kept, axis], keepdims=0)])
    return index, kept, outside


def _axis_taps(g: Graph, source: str, steps: list[int]) -> tuple[str, str]:
    """Along one axis, the four taps' coordinates floor(s) + step and weights (1 − f or f)."""
    floor = g.op("Floor", [source])
    fraction = g.op("Unsqueeze", [g.op("Sub", [source, floor]), g.const([1], dtype=np.int64)])
    unsqueezed = g.op("Unsqueeze", [floor, g.const([1], dtype=np.int64)])
    taps = g.op("Add", [unsqueezed, g.const(np.reshape(steps, (1, 4, 1)))])
    starts, signs = np.reshape([1 - s for s in steps], (1, 4, 1)), np.reshape([2 * s - 1 for s in steps], (1, 4, 1))
    return taps, g.op("Add", [g.const(starts), g.op("Mul", [g.const(signs), fraction])])


def _channel_index(g: Graph, spec: AscentSpec, index: str) -> str:
    """The taps' indices for every channel: (K, C, 4·HW)."""
    size = spec.height * spec.width
    flat = g.reshape(index, (spec.count, 1, 4 * size))
    return g.op("Expand", [flat, g.const((spec.count, spec.channels, 4 * size), dtype=np.int64)])


def _transform(g: Graph, spec: AscentSpec, x: str, index: str, weights: str, outside: str) -> str:
    """transforms.transform: each output the weighted sum of its four taps, gray outside."""
    count, channels, size = spec.count, spec.channels, spec.height * spec.width
    flat = g.reshape(x, (count, channels, size))
    taps = g.reshape(g.op("GatherElements", [flat, _channel_index(g, spec, index)], axis=2), (count, channels, 4, size))
    weighted = g.op("Mul", [taps, g.reshape(weights, (count, 1, 4, size))])
    read = g.op("ReduceSum", [weighted, g.const([2], dtype=np.int64)], keepdims=0)
    gray = (spec.offset + 0.5 * spec.gain).reshape(1, channels, 1)
    filled = g.op("Add", [read, g.op("Mul", [g.reshape(outside, (count, 1, size)), g.const(gray)])])
    return g.reshape(filled, (count, channels, spec.height, spec.width))


def _transform_adjoint(g: Graph, spec: AscentSpec, grad: str, index: str, weights: str) -> str:
    """transforms.transform_adjoint: each output's gradient added back to its four taps."""
    count, channels, size = spec.count, spec.channels, spec.height * spec.width
    spread = g.op("Mul", [g.reshape(grad, (count, channels, 1, size)), g.reshape(weights, (count, 1, 4, size))])
    zeros = g.op("ConstantOfShape", [g.const((count, channels, size), dtype=np.int64)])
    contributions = g.reshape(spread, (count, channels, 4 * size))
    added = g.op("ScatterElements", [zeros, _channel_index(g, spec, index), contributions], axis=2, reduction="add")
    return g.reshape(added, (count, channels, spec.height, spec.width))


def objective_graph(seeds: np.ndarray, class_objective: bool) -> onnx.ModelProto:
    """The layer's value → each image's objective (Target.values); ``class`` also gives its seed
    2·one-hot − softmax (Target.gradient_seeds), so the value never leaves the device."""
    g = Graph("objective")
    value = g.input(VALUE, seeds.shape)
    count = len(seeds)
    ones = g.const(seeds)
    axis = g.const([1], dtype=np.int64)
    linear = g.op("ReduceSum", [g.reshape(g.op("Mul", [value, ones]), (count, -1)), axis], keepdims=0)
    if class_objective:
        shifted = g.op("Sub", [value, g.op("ReduceMax", [value], axes=[1], keepdims=1)])
        total = g.op("ReduceSum", [g.op("Exp", [shifted]), axis], keepdims=1)
        log_p = g.op("Sub", [shifted, g.op("Log", [total])])
        linear = g.op("Add", [linear, g.op("ReduceSum", [g.op("Mul", [log_p, ones]), axis], keepdims=0)])
        g.expose(g.op("Sub", [g.const(2 * seeds), g.op("Exp", [log_p])]), SEED)
    g.expose(linear, OBJECTIVE)
    return g.model(ir_version=ir_version_for(OPSET))


def update_graph(spec: AscentSpec, blur: bool = False) -> onnx.ModelProto:
    """The input gradient (in the model's layout) → the next parameters and Adam moments:
    transform adjoint, regularisers, parameterisation adjoint, Adam, the pixel constraints."""
    g = Graph("update")
    grad = g.input(GRADIENT, _model_shape(spec))
    if spec.layout == "nhwc":
        grad = g.op("Transpose", [grad], perm=[0, 3, 1, 2])
    if spec.transformed:
        index = g.input(INDEX, (spec.count, 4, spec.height * spec.width), TensorProto.INT64)
        grad = _transform_adjoint(g, spec, grad, index, g.input(WEIGHTS, (spec.count, 4, spec.height * spec.width)))
    if spec.regularised:
        grad = g.op("Sub", [grad, _regulariser_gradient(g, spec, g.input(IMAGE, _image_shape(spec)))])
    rgb = _to_rgb_gradient(g, spec, grad)
    if spec.fourier_scale is not None:
        sigmoid = g.input(SIGMOID, _image_shape(spec))
        slope = g.op("Mul", [sigmoid, g.op("Sub", [g.const(1.0), sigmoid])])
        rgb = _spectrum_adjoint(g, spec, g.op("Mul", [rgb, slope]))
    params_gradient = g.op("Identity", [rgb], outputs=[PARAMS_GRADIENT])
    params = _adam(g, spec, params_gradient)
    if spec.fourier_scale is None:
        params = g.op("Clip", [params, g.const(0.0), g.const(1.0)])
        if blur:
            params = _blur(g, spec, params)
        if spec.clip_percentile:
            params = _clip_small_norms(g, spec, params)
    g.expose(params, NEW + PARAMS)
    return g.model(ir_version=ir_version_for(OPSET))


def _model_shape(spec: AscentSpec) -> tuple[int, ...]:
    if spec.layout == "nhwc":
        return (spec.count, spec.height, spec.width, spec.channels)
    return _image_shape(spec)


def _image_shape(spec: AscentSpec) -> tuple[int, ...]:
    return (spec.count, spec.channels, spec.height, spec.width)


def _adam(g: Graph, spec: AscentSpec, grad: str) -> str:
    """maximize.Adam.ascend; the step count is an input and comes out incremented."""
    beta1, beta2 = ADAM_BETAS
    params = g.input(PARAMS, spec.params_shape)
    step = g.op("Add", [g.input(STEP, (1,)), g.const([1.0])])
    decayed = g.op("Mul", [g.input(MOMENT, spec.params_shape), g.const(beta1)])
    moment = g.op("Add", [decayed, g.op("Mul", [grad, g.const(1 - beta1)])])
    squared = g.op("Mul", [g.op("Mul", [grad, grad]), g.const(1 - beta2)])
    second = g.op("Add", [g.op("Mul", [g.input(SECOND, spec.params_shape), g.const(beta2)]), squared])
    corrected = g.op("Div", [moment, g.op("Sub", [g.const(1.0), g.op("Pow", [g.const(beta1), step])])])
    variance = g.op("Div", [second, g.op("Sub", [g.const(1.0), g.op("Pow", [g.const(beta2), step])])])
    spread = g.op("Add", [g.op("Sqrt", [variance]), g.const(ADAM_EPSILON)])
    g.expose(moment, NEW + MOMENT)
    g.expose(second, NEW + SECOND)
    g.expose(step, NEW + STEP)
    return g.op("Add", [params, g.op("Div", [g.op("Mul", [corrected, g.const(spec.lr)]), spread])])


def _regulariser_gradient(g: Graph, spec: AscentSpec, x: str) -> str:
    """transforms.regulariser_gradient: decay·x + tv·(the squared neighbour differences' gradient)."""
    gradient = g.op("Mul", [x, g.const(spec.decay)])
    if not spec.tv:
        return gradient
    for axis, size in ((2, spec.height), (3, spec.width)):
        twice = g.op("Mul", [g.op("Sub", [g.slice(x, axis, 1, size), g.slice(x, axis, 0, size - 1)]), g.const(2.0)])
        before, after = [0] * 8, [0] * 8
        before[axis], after[4 + axis] = 1, 1
        shifted_down = g.op("Pad", [twice, g.const(before, dtype=np.int64)])
        step = g.op("Sub", [shifted_down, g.op("Pad", [twice, g.const(after, dtype=np.int64)])])
        gradient = g.op("Add", [gradient, g.op("Mul", [step, g.const(spec.tv)])])
    return gradient


def _blur(g: Graph, spec: AscentSpec, params: str) -> str:
    """transforms.blur on the pixels: cv2's Gaussian kernel, BORDER_REFLECT (edge repeated) by
    gathering the padded rows and columns, then a depthwise convolution along each axis."""
    radius = max(1, math.ceil(3 * spec.blur))
    kernel = cv2.getGaussianKernel(2 * radius + 1, spec.blur, ktype=cv2.CV_64F).ravel()
    rows = np.pad(np.arange(spec.height), radius, mode="symmetric")
    cols = np.pad(np.arange(spec.width), radius, mode="symmetric")
    padded_rows = g.op("Gather", [params, g.const(rows, dtype=np.int64)], axis=2)
    padded = g.op("Gather", [padded_rows, g.const(cols, dtype=np.int64)], axis=3)
    channels = spec.channels
    vertical = g.const(np.tile(kernel.reshape(1, 1, -1, 1), (channels, 1, 1, 1)))
    horizontal = g.const(np.tile(kernel.reshape(1, 1, 1, -1), (channels, 1, 1, 1)))
    return g.op("Conv", [g.op("Conv", [padded, vertical], group=channels), horizontal], group=channels)


def _clip_small_norms(g: Graph, spec: AscentSpec, params: str) -> str:
    """transforms.clip_small_norms on the pixels: the norm of x − gray per pixel, its percentile
    interpolated between the two order statistics np.percentile's linear method reads (TopK),
    and the pixels below it set to gray (0.5 in every RGB channel)."""
    size = spec.height * spec.width
    position = (size - 1) * (spec.clip_percentile / 100)
    below = math.floor(position)
    fraction = position - below
    rgb_gain = spec.gain[np.argsort(spec.order)].reshape(1, -1, 1, 1)  # x − gray = (p − ½)·gain per model channel
    distance = g.op("Mul", [g.op("Sub", [params, g.const(0.5)]), g.const(rgb_gain)])
    squares = g.op("ReduceSum", [g.op("Mul", [distance, distance]), g.const([1], dtype=np.int64)], keepdims=0)
    norms = g.reshape(g.op("Sqrt", [squares]), (spec.count, size))
    smallest = g.op("TopK", [norms, g.const([below + 2], dtype=np.int64)], outputs=2, axis=1, largest=0, sorted=1)
    low, high = g.slice(smallest, 1, below, below + 1), g.slice(smallest, 1, below + 1, below + 2)
    threshold = g.op("Add", [low, g.op("Mul", [g.op("Sub", [high, low]), g.const(fraction)])])
    small = g.reshape(g.op("Less", [norms, threshold]), (spec.count, 1, spec.height, spec.width))
    return g.op("Where", [small, g.const(0.5), params])
