"""Independent pure-numpy reference for onnxviz: an ONNX interpreter plus reverse-mode signals.

This module is deliberately slow and literal. It exists so the test-suite can check the
inverse graphs that onnxviz generates against something written from the ONNX spec alone:
it imports neither onnxruntime nor anything from ``onnxviz``.

* :func:`forward` interprets the graph node by node (float tensors in float64, integer
  tensors kept as integers so that shape arithmetic such as the tf2onnx flatten pattern
  ``Shape -> Gather -> Unsqueeze -> Concat -> Reshape`` evaluates exactly).
* :func:`backward` walks the nodes in reverse and propagates a signal ``g`` from each op's
  outputs to its inputs. ``rule`` picks the signal:

  - ``"saliency"``: the exact vector-Jacobian product of every op;
  - ``"deconvnet"``: like saliency, except that every ReLU-family op passes ``relu(g)``;
  - ``"guided"``: like saliency, except that a ReLU-family op passes ``relu(g) * (f'(X) > 0)``
    (``relu(g) * (X > 0)`` for Relu).

  MaxPool routes ``g`` to the first maximum (row-major) of each window in every rule;
  padded positions never win and windows that pick the same input position add up.
  Softmax is only accepted as the op producing ``target``; its signal is the identity, i.e.
  the seed is taken at the Softmax input.

Convolutions and pooling are explicit loops over output positions; only the product over one
window is vectorised. Windows never read padding: for each output position the taps that fall
inside the input are found per axis (``_Geometry.taps``), so zero/-inf padding is never
materialised.

Spec readings where implementations differ (the self-check tests pin each one):

* ``ceil_mode`` drops a last window that would start in the right padding (spec text,
  onnxruntime, PyTorch). ``onnx.shape_inference`` does not drop it.
* ``auto_pad=VALID`` ignores ``ceil_mode`` (the spec's ceil formula equals the floor one);
  onnxruntime applies it. ``auto_pad=SAME_*`` pads with the dilated kernel extent (spec);
  onnxruntime's pools ignore the dilation there and its Conv refuses the combination.
* AveragePool ``count_include_pad=1`` counts the explicit pads but not the ceil_mode overhang
  past them (onnxruntime, PyTorch).
* Kinks: Relu/LeakyRelu/PRelu use ``X > 0``; Clip passes the signal strictly inside
  ``(min, max)`` (so Clip(0, inf) masks like Relu); HardSigmoid/HardSwish likewise use the open
  interval ``0 < alpha*X + beta < 1``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["RULES", "backward", "forward", "graph_input_name", "supported_ops"]

RULES = ("saliency", "deconvnet", "guided")

Array = np.ndarray
Attrs = dict[str, Any]

# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _internal(a: Array) -> Array:
    """Floating tensors are computed in float64; everything else keeps its dtype."""
    a = np.asarray(a)
    return a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a


def _is_float(a: Array | None) -> bool:
    return a is not None and np.issubdtype(np.asarray(a).dtype, np.floating)


def _attrs(node: onnx.NodeProto) -> Attrs:
    out: Attrs = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, onnx.TensorProto):
            v = _internal(numpy_helper.to_array(v))
        out[a.name] = v
    return out


def _ints(a: Array | Sequence[int]) -> list[int]:
    return [int(v) for v in np.asarray(a).reshape(-1)]


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def _opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise ValueError("model has no default-domain opset import")


def graph_input_name(model: onnx.ModelProto) -> str:
    """Name of the single real graph input (old models also list initializers as inputs)."""
    inits = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    if len(names) != 1:
        raise ValueError(f"expected exactly one non-initializer graph input, got {names}")
    return names[0]


def _unbroadcast(g: Array, shape: Sequence[int]) -> Array:
    """Sum ``g`` over the axes along which a tensor of ``shape`` was broadcast to ``g.shape``."""
    shape = tuple(shape)
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    axes = tuple(i for i, (n, m) in enumerate(zip(shape, g.shape, strict=True)) if n == 1 != m)
    return g.sum(axis=axes, keepdims=True) if axes else g


def _index_vjp(fn: Callable[[Array], Array], x_shape: Sequence[int], g: Array) -> Array:
    """VJP of a pure data-movement op ``fn``: run ``fn`` on the flat indices of the input, then
    scatter-add ``g`` back to the indices it picked (negative index = element not from ``x``)."""
    idx = np.arange(math.prod(x_shape), dtype=np.int64).reshape(x_shape)
    src = fn(idx)
    gx = np.zeros(math.prod(x_shape), dtype=np.float64)
    keep = src >= 0
    np.add.at(gx, src[keep], g[keep])
    return gx.reshape(x_shape)


# --------------------------------------------------------------------------------------------
# sliding-window geometry (Conv, MaxPool, AveragePool)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Geometry:
    """Output spatial shape and resolved padding of a sliding-window op."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    begin: tuple[int, ...]  # pads before each spatial axis
    end: tuple[int, ...]  # pads after each spatial axis (not counting the ceil_mode overhang)

    def positions(self) -> Iterator[tuple[int, ...]]:
        """All output positions, row-major."""
        return itertools.product(*(range(o) for o in self.out_shape))

    def window(self, o: Sequence[int], lo: Sequence[int], hi: Sequence[int]) -> list[tuple[int, int]]:
        """Per axis, the kernel tap range ``[j0, j1)`` of output position ``o`` whose input
        coordinate ``o*s - begin + j*d`` lies in ``[lo, hi)``."""
        out = []
        for i, oi in enumerate(o):
            base, d, k = oi * self.strides[i] - self.begin[i], self.dilations[i], self.kernel[i]
            j0 = max(0, _ceil_div(lo[i] - base, d))
            j1 = min(k, _ceil_div(hi[i] - base, d))
            out.append((j0, max(j0, j1)))
        return out

    def taps(self, o: Sequence[int]) -> tuple[tuple[slice, ...], tuple[slice, ...], tuple[int, ...]]:
        """For output position ``o``: slices into the kernel and into the input selecting the taps
        that fall inside the (unpadded) input, plus the first input coordinate per axis."""
        ranges = self.window(o, [0] * len(o), self.in_shape)
        k_sl, x_sl, first = [], [], []
        for i, (j0, j1) in enumerate(ranges):
            base, d = o[i] * self.strides[i] - self.begin[i], self.dilations[i]
            start = base + j0 * d
            k_sl.append(slice(j0, j1))
            x_sl.append(slice(start, start + (j1 - j0 - 1) * d + 1 if j1 > j0 else start, d))
            first.append(start)
        return tuple(k_sl), tuple(x_sl), tuple(first)

    def padded_count(self, o: Sequence[int]) -> int:
        """Number of taps of window ``o`` inside the explicitly padded input (count_include_pad)."""
        lo = [-b for b in self.begin]
        hi = [n + e for n, e in zip(self.in_shape, self.end, strict=True)]
        return math.prod(j1 - j0 for j0, j1 in self.window(o, lo, hi))


def _geometry(x_shape: Sequence[int], kernel: Sequence[int], a: Attrs, ceil_ok: bool) -> _Geometry:
    """Resolve ``auto_pad``/``pads``/``ceil_mode`` per the ONNX Conv/MaxPool/AveragePool spec."""
    in_sp = tuple(int(v) for v in x_shape[2:])
    n = len(in_sp)
    kernel = tuple(int(v) for v in kernel)
    strides = tuple(a.get("strides", [1] * n))
    dil = tuple(a.get("dilations", [1] * n))
    pads = list(a.get("pads", [0] * 2 * n))
    auto_pad = a.get("auto_pad", "NOTSET")
    ceil_mode = bool(a.get("ceil_mode", 0)) and ceil_ok
    out, begin, end = [], [], []
    for i in range(n):
        eff = dil[i] * (kernel[i] - 1) + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):  # ceil_mode makes no difference here
            o = _ceil_div(in_sp[i], strides[i])
            total = max(0, (o - 1) * strides[i] + eff - in_sp[i])
            b = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            e = total - b
        elif auto_pad == "VALID":  # the spec's ceil_mode formula gives the same value
            o, b, e = (in_sp[i] - eff) // strides[i] + 1, 0, 0
        elif auto_pad in ("NOTSET", ""):
            b, e = int(pads[i]), int(pads[i + n])
            span = in_sp[i] + b + e - eff
            if ceil_mode:
                o = _ceil_div(span, strides[i]) + 1
                if (o - 1) * strides[i] >= in_sp[i] + b:  # window would start in the right padding
                    o -= 1
            else:
                o = span // strides[i] + 1
        else:
            raise ValueError(f"bad auto_pad {auto_pad!r}")
        out.append(o)
        begin.append(b)
        end.append(e)
    return _Geometry(in_sp, tuple(out), kernel, strides, dil, tuple(begin), tuple(end))


# --------------------------------------------------------------------------------------------
# Conv / pooling / LRN kernels (forward and input-gradient)
# --------------------------------------------------------------------------------------------


def _conv_groups(x: Array, w: Array, group: int) -> tuple[int, int]:
    c_in, m = x.shape[1], w.shape[0]
    if c_in % group or m % group or w.shape[1] != c_in // group:
        raise ValueError(f"Conv: bad group={group} for X{x.shape} W{w.shape}")
    return c_in // group, m // group


def conv_forward(x: Array, w: Array, b: Array | None, a: Attrs) -> Array:
    """Conv: loop over output positions; each window is a tensordot with the kernel taps."""
    group = int(a.get("group", 1))
    geo = _geometry(x.shape, a.get("kernel_shape", w.shape[2:]), a, ceil_ok=False)
    cg, mg = _conv_groups(x, w, group)
    y = np.zeros((x.shape[0], w.shape[0], *geo.out_shape))
    for o in geo.positions():
        k_sl, x_sl, _ = geo.taps(o)
        for gi in range(group):
            win = x[(slice(None), slice(gi * cg, (gi + 1) * cg), *x_sl)]  # (N, cg, *taps)
            ker = w[(slice(gi * mg, (gi + 1) * mg), slice(None), *k_sl)]  # (mg, cg, *taps)
            axes = list(range(1, win.ndim))
            y[(slice(None), slice(gi * mg, (gi + 1) * mg), *o)] = np.tensordot(win, ker, (axes, axes))
    if b is not None:
        y += b.reshape(1, -1, *([1] * len(geo.out_shape)))
    return y


def conv_backward(x: Array, w: Array, g: Array, a: Attrs) -> Array:
    """Gradient of Conv w.r.t. X: each output position scatters ``g * W`` onto its window."""
    group = int(a.get("group", 1))
    geo = _geometry(x.shape, a.get("kernel_shape", w.shape[2:]), a, ceil_ok=False)
    cg, mg = _conv_groups(x, w, group)
    gx = np.zeros(x.shape)
    for o in geo.positions():
        k_sl, x_sl, _ = geo.taps(o)
        for gi in range(group):
            ker = w[(slice(gi * mg, (gi + 1) * mg), slice(None), *k_sl)]  # (mg, cg, *taps)
            go = g[(slice(None), slice(gi * mg, (gi + 1) * mg), *o)]  # (N, mg)
            gx[(slice(None), slice(gi * cg, (gi + 1) * cg), *x_sl)] += np.tensordot(go, ker, (1, 0))
    return gx


def _pool_geometry(x: Array, a: Attrs) -> _Geometry:
    if int(a.get("storage_order", 0)) != 0:
        raise NotImplementedError("MaxPool storage_order=1")
    return _geometry(x.shape, a["kernel_shape"], a, ceil_ok=True)


def _maxpool_argmax(x: Array, geo: _Geometry, o: Sequence[int]) -> tuple[Array, ...]:
    """Index arrays (n, c, *spatial), each of shape (N, C), of every window's first maximum."""
    _, x_sl, first = geo.taps(o)
    win = x[(slice(None), slice(None), *x_sl)]
    if win.size == 0:
        raise ValueError(f"MaxPool window {tuple(o)} lies entirely in the padding")
    flat = win.reshape(*win.shape[:2], -1)
    offs = np.unravel_index(flat.argmax(axis=-1), win.shape[2:])  # argmax: first max, row-major
    n_idx, c_idx = np.meshgrid(np.arange(x.shape[0]), np.arange(x.shape[1]), indexing="ij")
    spatial = tuple(f + off * d for f, off, d in zip(first, offs, geo.dilations, strict=True))
    return (n_idx, c_idx, *spatial)


def maxpool_forward(x: Array, a: Attrs) -> tuple[Array, Array]:
    """MaxPool values and (storage_order 0) flat Indices."""
    geo = _pool_geometry(x, a)
    y = np.zeros((*x.shape[:2], *geo.out_shape))
    ind = np.zeros(y.shape, dtype=np.int64)
    for o in geo.positions():
        where = _maxpool_argmax(x, geo, o)
        y[(slice(None), slice(None), *o)] = x[where]
        ind[(slice(None), slice(None), *o)] = np.ravel_multi_index(where, x.shape)
    return y, ind


def maxpool_backward(x: Array, g: Array, a: Attrs) -> Array:
    """Route each output's signal to its window's argmax; overlapping picks add up."""
    geo = _pool_geometry(x, a)
    gx = np.zeros(x.shape)
    for o in geo.positions():
        np.add.at(gx, _maxpool_argmax(x, geo, o), g[(slice(None), slice(None), *o)])
    return gx


def _avg_divisor(geo: _Geometry, o: Sequence[int], x_sl: tuple[slice, ...], include_pad: bool) -> int:
    if include_pad:  # taps inside the explicitly padded extent (not the ceil_mode overhang)
        return geo.padded_count(o)
    return math.prod(len(range(s.start, s.stop, s.step)) for s in x_sl)


def avgpool_forward(x: Array, a: Attrs) -> Array:
    geo = _pool_geometry(x, a)
    include_pad = bool(a.get("count_include_pad", 0))
    y = np.zeros((*x.shape[:2], *geo.out_shape))
    for o in geo.positions():
        _, x_sl, _ = geo.taps(o)
        win = x[(slice(None), slice(None), *x_sl)]
        axes = tuple(range(2, win.ndim))
        y[(slice(None), slice(None), *o)] = win.sum(axis=axes) / _avg_divisor(geo, o, x_sl, include_pad)
    return y


def avgpool_backward(x: Array, g: Array, a: Attrs) -> Array:
    geo = _pool_geometry(x, a)
    include_pad = bool(a.get("count_include_pad", 0))
    gx = np.zeros(x.shape)
    extra = (np.newaxis,) * len(geo.out_shape)
    for o in geo.positions():
        _, x_sl, _ = geo.taps(o)
        share = g[(slice(None), slice(None), *o)] / _avg_divisor(geo, o, x_sl, include_pad)
        gx[(slice(None), slice(None), *x_sl)] += share[(..., *extra)]
    return gx


def _lrn_window(c: int, channels: int, size: int) -> slice:
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2  # floor / ceil of (size-1)/2
    return slice(max(0, c - lo), min(channels, c + hi + 1))


def _lrn_denominator(x: Array, a: Attrs) -> Array:
    """``bias + alpha/size * square_sum`` per the ONNX LRN spec."""
    size = int(a["size"])
    alpha, bias = float(a.get("alpha", 1e-4)), float(a.get("bias", 1.0))
    sq = np.zeros(x.shape)
    for c in range(x.shape[1]):
        sq[:, c] = (x[:, _lrn_window(c, x.shape[1], size)] ** 2).sum(axis=1)
    return bias + alpha / size * sq


def lrn_forward(x: Array, a: Attrs) -> Array:
    return x * _lrn_denominator(x, a) ** -float(a.get("beta", 0.75))


def lrn_backward(x: Array, g: Array, a: Attrs) -> Array:
    """Exact gradient: Y_c = X_c D_c^-b, dD_c/dX_i = 2 alpha/size X_i for i in window(c)."""
    size, alpha, beta = int(a["size"]), float(a.get("alpha", 1e-4)), float(a.get("beta", 0.75))
    d = _lrn_denominator(x, a)
    gx = g * d**-beta
    t = g * x * d ** (-beta - 1.0)
    for c in range(x.shape[1]):
        w = _lrn_window(c, x.shape[1], size)  # output channel c depends on input channels w
        gx[:, w] -= 2.0 * beta * alpha / size * x[:, w] * t[:, c : c + 1]
    return gx


# --------------------------------------------------------------------------------------------
# forward interpreter
# --------------------------------------------------------------------------------------------


@dataclass
class _Node:
    """A node with its resolved inputs (None for absent optional inputs)."""

    node: onnx.NodeProto
    attrs: Attrs
    ins: list[Array | None]
    opset: int

    def inp(self, i: int) -> Array | None:
        return self.ins[i] if i < len(self.ins) else None

    def arg(self, name: str, i: int) -> Array | None:
        """An operand that moved from attribute to input across opsets."""
        v = self.inp(i)
        if v is None and name in self.attrs:
            return np.asarray(self.attrs[name])
        return v


_FORWARD: dict[str, Callable[[_Node], list[Array]]] = {}
_BACKWARD: dict[str, Callable[[_Bw], list[Array | None]]] = {}


def _fw(*ops: str) -> Callable:
    def deco(fn: Callable[[_Node], Array | list[Array]]) -> Callable:
        def run(n: _Node) -> list[Array]:
            out = fn(n)
            return out if isinstance(out, list) else [out]

        for op in ops:
            _FORWARD[op] = run
        return fn

    return deco


def supported_ops() -> tuple[list[str], list[str]]:
    """(ops with a forward, ops with a backward)."""
    return sorted(_FORWARD), sorted(_BACKWARD)


def _onnx_dtype_to_numpy(to: int) -> np.dtype:
    return np.dtype(helper.tensor_dtype_to_np_dtype(to))


# -- constants and shape arithmetic ----------------------------------------------------------


@_fw("Constant")
def _f_constant(n: _Node) -> Array:
    a = n.attrs
    for key in ("value", "value_float", "value_int"):
        if key in a:
            return _internal(np.asarray(a[key]))
    if "value_floats" in a:
        return np.asarray(a["value_floats"], dtype=np.float64)
    if "value_ints" in a:
        return np.asarray(a["value_ints"], dtype=np.int64)
    raise NotImplementedError(f"Constant with attributes {sorted(a)}")


@_fw("ConstantOfShape")
def _f_constant_of_shape(n: _Node) -> Array:
    value = n.attrs.get("value", np.zeros(1, dtype=np.float64))
    return np.full(_ints(n.ins[0]), np.asarray(value).reshape(-1)[0], dtype=np.asarray(value).dtype)


@_fw("Shape")
def _f_shape(n: _Node) -> Array:
    shape = n.ins[0].shape  # start/end (opset 15) clamp like Python slicing
    return np.asarray(shape[n.attrs.get("start", 0) : n.attrs.get("end")], dtype=np.int64)


@_fw("Size")
def _f_size(n: _Node) -> Array:
    return np.asarray(n.ins[0].size, dtype=np.int64)


@_fw("Cast")
def _f_cast(n: _Node) -> Array:
    to = _onnx_dtype_to_numpy(int(n.attrs["to"]))
    if np.issubdtype(to, np.floating):  # stays float64: no rounding in the reference
        return n.ins[0].astype(np.float64)
    return n.ins[0].astype(to)


@_fw("Range")
def _f_range(n: _Node) -> Array:
    start, limit, delta = (np.asarray(v).item() for v in n.ins)
    return _internal(np.arange(start, limit, delta, dtype=np.asarray(n.ins[0]).dtype))


@_fw("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")
def _f_compare(n: _Node) -> Array:
    fn = {
        "Equal": np.equal,
        "Less": np.less,
        "Greater": np.greater,
        "LessOrEqual": np.less_equal,
        "GreaterOrEqual": np.greater_equal,
    }[n.node.op_type]
    return fn(n.ins[0], n.ins[1])


@_fw("Not")
def _f_not(n: _Node) -> Array:
    return np.logical_not(n.ins[0])


@_fw("Where")
def _f_where(n: _Node) -> Array:
    return np.where(n.ins[0], n.ins[1], n.ins[2])


@_fw("Floor", "Ceil", "Neg", "Abs", "Sqrt", "Exp", "Log")
def _f_unary_math(n: _Node) -> Array:
    fn = {
        "Floor": np.floor,
        "Ceil": np.ceil,
        "Neg": np.negative,
        "Abs": np.abs,
        "Sqrt": np.sqrt,
        "Exp": np.exp,
        "Log": np.log,
    }[n.node.op_type]
    return fn(n.ins[0])


@_fw("Min", "Max")
def _f_minmax(n: _Node) -> Array:
    fn = np.minimum if n.node.op_type == "Min" else np.maximum
    out = n.ins[0]
    for v in n.ins[1:]:
        out = fn(out, v)
    return out


def _reduce_axes(n: _Node) -> tuple[int, ...] | None:
    axes = n.arg("axes", 1)
    if axes is None or np.asarray(axes).size == 0:
        return () if n.attrs.get("noop_with_empty_axes", 0) else None
    return tuple(int(v) % n.ins[0].ndim for v in _ints(axes))


@_fw("ReduceProd", "ReduceSum", "ReduceMean")
def _f_reduce(n: _Node) -> Array:
    fn = {"ReduceProd": np.prod, "ReduceSum": np.sum, "ReduceMean": np.mean}[n.node.op_type]
    axes = _reduce_axes(n)
    if axes == ():
        return n.ins[0]
    return np.asarray(fn(n.ins[0], axis=axes, keepdims=bool(n.attrs.get("keepdims", 1))))


# -- elementwise arithmetic ------------------------------------------------------------------


def _int_div(a: Array, b: Array) -> Array:
    """ONNX integer Div truncates toward zero."""
    return (np.sign(a) * np.sign(b) * (np.abs(a) // np.abs(b))).astype(np.result_type(a, b))


@_fw("Add", "Sub", "Mul", "Div", "Sum")
def _f_arith(n: _Node) -> Array:
    op = n.node.op_type
    if op == "Sum":
        out = n.ins[0]
        for v in n.ins[1:]:
            out = out + v
        return out
    a, b = n.ins[0], n.ins[1]
    if op == "Div" and not _is_float(a) and not _is_float(b):
        return _int_div(a, b)
    return {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op](a, b)


# -- activations -----------------------------------------------------------------------------


def _clip_bounds(n: _Node) -> tuple[float, float]:
    lo = n.arg("min", 1)
    hi = n.arg("max", 2)
    return (
        -np.inf if lo is None else float(np.asarray(lo).item()),
        np.inf if hi is None else float(np.asarray(hi).item()),
    )


def _hard_sigmoid_params(n: _Node) -> tuple[float, float]:
    if n.node.op_type == "HardSwish":
        return 1.0 / 6.0, 0.5
    return float(n.attrs.get("alpha", 0.2)), float(n.attrs.get("beta", 0.5))


@_fw("Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh")
def _f_activation(n: _Node) -> Array:
    x, op = n.ins[0], n.node.op_type
    if op == "Relu":
        return np.maximum(x, 0.0)
    if op == "LeakyRelu":
        return np.where(x >= 0, x, float(n.attrs.get("alpha", 0.01)) * x)
    if op == "PRelu":
        return np.where(x >= 0, x, n.ins[1] * x)
    if op == "Clip":
        lo, hi = _clip_bounds(n)
        return np.minimum(np.maximum(x, lo), hi)
    if op == "Sigmoid":
        return _sigmoid(x)
    if op == "Tanh":
        return np.tanh(x)
    alpha, beta = _hard_sigmoid_params(n)
    hs = np.clip(alpha * x + beta, 0.0, 1.0)
    return hs if op == "HardSigmoid" else x * hs


def _sigmoid(x: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def _activation_derivative(n: _Node, x: Array) -> Array:
    """f'(X) of the non-Relu activations (one-sided choices at kinks: see comments)."""
    op = n.node.op_type
    if op == "LeakyRelu":
        return np.where(x > 0, 1.0, float(n.attrs.get("alpha", 0.01)))
    if op == "PRelu":
        return np.where(x > 0, 1.0, np.broadcast_to(n.ins[1], x.shape))
    if op == "Clip":  # strictly inside (min, max): Clip(0, inf) has the same mask as Relu
        lo, hi = _clip_bounds(n)
        return ((x > lo) & (x < hi)).astype(np.float64)
    if op == "Sigmoid":
        return _sigmoid(x) * (1.0 - _sigmoid(x))
    if op == "Tanh":
        return 1.0 - np.tanh(x) ** 2
    alpha, beta = _hard_sigmoid_params(n)
    v = alpha * x + beta
    inside = (v > 0) & (v < 1)
    if op == "HardSigmoid":
        return np.where(inside, alpha, 0.0)
    return np.where(inside, 2.0 * alpha * x + beta, np.where(v >= 1, 1.0, 0.0))  # HardSwish


@_fw("Softmax", "LogSoftmax")
def _f_softmax(n: _Node) -> Array:
    x = n.ins[0]
    if n.opset < 13:  # coerced to 2-D at `axis` (default 1)
        axis = int(n.attrs.get("axis", 1)) % max(x.ndim, 1)
        x2 = x.reshape(math.prod(x.shape[:axis]), -1)
        return _softmax(x2, 1, n.node.op_type == "LogSoftmax").reshape(x.shape)
    return _softmax(x, int(n.attrs.get("axis", -1)), n.node.op_type == "LogSoftmax")


def _softmax(x: Array, axis: int, log: bool) -> Array:
    z = x - x.max(axis=axis, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=axis, keepdims=True))
    return z - lse if log else np.exp(z - lse)


# -- layers ----------------------------------------------------------------------------------


@_fw("Conv")
def _f_conv(n: _Node) -> Array:
    return conv_forward(n.ins[0], n.ins[1], n.inp(2), n.attrs)


@_fw("MaxPool")
def _f_maxpool(n: _Node) -> list[Array]:
    y, ind = maxpool_forward(n.ins[0], n.attrs)
    return [y, ind][: len(n.node.output)]


@_fw("AveragePool")
def _f_avgpool(n: _Node) -> Array:
    return avgpool_forward(n.ins[0], n.attrs)


@_fw("GlobalAveragePool", "GlobalMaxPool")
def _f_global_pool(n: _Node) -> Array:
    x = n.ins[0]
    axes = tuple(range(2, x.ndim))
    fn = np.mean if n.node.op_type == "GlobalAveragePool" else np.max
    return fn(x, axis=axes, keepdims=True)


def _bn_scale_shift(n: _Node) -> tuple[Array, Array]:
    """Per-channel (multiplier, offset) of inference BatchNormalization, shaped (1, C, 1, ...)."""
    if n.attrs.get("training_mode", 0):
        raise NotImplementedError("BatchNormalization training_mode=1")
    scale, bias, mean, var = n.ins[1:5]
    mult = scale / np.sqrt(var + float(n.attrs.get("epsilon", 1e-5)))
    shape = (1, -1, *([1] * (n.ins[0].ndim - 2)))
    return mult.reshape(shape), (bias - mean * mult).reshape(shape)


@_fw("BatchNormalization")
def _f_batchnorm(n: _Node) -> Array:
    mult, shift = _bn_scale_shift(n)
    return n.ins[0] * mult + shift


@_fw("LRN")
def _f_lrn(n: _Node) -> Array:
    return lrn_forward(n.ins[0], n.attrs)


def _gemm_operands(n: _Node) -> tuple[Array, Array]:
    a, b = n.ins[0], n.ins[1]
    return (a.T if n.attrs.get("transA", 0) else a), (b.T if n.attrs.get("transB", 0) else b)


@_fw("Gemm")
def _f_gemm(n: _Node) -> Array:
    a, b = _gemm_operands(n)
    y = float(n.attrs.get("alpha", 1.0)) * (a @ b)
    c = n.inp(2)
    return y + float(n.attrs.get("beta", 1.0)) * c if c is not None else y


@_fw("MatMul")
def _f_matmul(n: _Node) -> Array:
    return np.matmul(n.ins[0], n.ins[1])


@_fw("Identity", "Dropout")
def _f_identity(n: _Node) -> list[Array]:
    x = n.ins[0]
    return [x, np.ones(x.shape, dtype=bool)][: len(n.node.output)]


# -- data movement ---------------------------------------------------------------------------


@_fw("Concat")
def _f_concat(n: _Node) -> Array:
    ins = [v for v in n.ins if v is not None]
    if all(np.issubdtype(v.dtype, np.integer) for v in ins):
        return np.concatenate(ins, axis=int(n.attrs["axis"]))
    return np.concatenate([_internal(v) for v in ins], axis=int(n.attrs["axis"]))


def _split_sizes(n: _Node) -> list[int]:
    axis = int(n.attrs.get("axis", 0))
    dim = n.ins[0].shape[axis]
    split = n.arg("split", 1)
    if split is not None and np.asarray(split).size:
        return _ints(split)
    parts = int(n.attrs.get("num_outputs", len(n.node.output)))
    chunk = _ceil_div(dim, parts)
    return [min(chunk, dim - i * chunk) for i in range(parts)]


@_fw("Split")
def _f_split(n: _Node) -> list[Array]:
    axis = int(n.attrs.get("axis", 0))
    cuts = np.cumsum(_split_sizes(n))[:-1]
    return list(np.split(n.ins[0], cuts, axis=axis))


def _slice_fn(n: _Node) -> Callable[[Array], Array]:
    starts, ends = _ints(n.arg("starts", 1)), _ints(n.arg("ends", 2))
    axes_v, steps_v = n.arg("axes", 3), n.arg("steps", 4)
    ndim = n.ins[0].ndim
    axes = _ints(axes_v) if axes_v is not None else list(range(len(starts)))
    steps = _ints(steps_v) if steps_v is not None else [1] * len(starts)
    index = [slice(None)] * ndim
    for s, e, ax, st in zip(starts, ends, axes, steps, strict=True):
        index[ax % ndim] = slice(s, e, st)  # Python slice clamping == ONNX Slice clamping
    return lambda v: v[tuple(index)]


@_fw("Slice")
def _f_slice(n: _Node) -> Array:
    return _slice_fn(n)(n.ins[0])


def _pad_fn(n: _Node) -> Callable[[Array, float], Array]:
    """Pad (any opset) as ``fn(array, constant)``; negative pads crop."""
    x = n.ins[0]
    pads_v = n.inp(1)
    # opset < 11: an attribute (named "paddings" in opset 1)
    pads = _ints(pads_v) if pads_v is not None else list(n.attrs.get("pads", n.attrs.get("paddings")))
    axes_v = n.inp(3)
    axes = [a % x.ndim for a in _ints(axes_v)] if axes_v is not None else list(range(x.ndim))
    k = len(axes)
    width = [(0, 0)] * x.ndim
    for i, ax in enumerate(axes):
        width[ax] = (pads[i], pads[i + k])
    mode = n.attrs.get("mode", "constant")

    def fn(v: Array, const: float) -> Array:
        crop = tuple(slice(max(0, -b), v.shape[i] - max(0, -e)) for i, (b, e) in enumerate(width))
        v = v[crop]
        grow = [(max(0, b), max(0, e)) for b, e in width]
        if mode == "constant":
            return np.pad(v, grow, mode="constant", constant_values=const)
        return np.pad(v, grow, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])

    return fn


@_fw("Pad")
def _f_pad(n: _Node) -> Array:
    const = n.inp(2)
    value = float(np.asarray(const).item()) if const is not None and const.size else 0.0
    return _pad_fn(n)(n.ins[0], n.attrs.get("value", value))


def _reshape_target(n: _Node) -> list[int]:
    x = n.ins[0]
    shape = _ints(n.arg("shape", 1))
    if not n.attrs.get("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return shape


def _flatten_target(n: _Node) -> list[int]:
    x = n.ins[0]
    axis = int(n.attrs.get("axis", 1))
    axis = axis + x.ndim if axis < 0 else axis
    return [math.prod(x.shape[:axis]), math.prod(x.shape[axis:])]


def _squeeze_target(n: _Node) -> list[int]:
    x = n.ins[0]
    axes_v = n.arg("axes", 1)
    if axes_v is None:
        return [d for d in x.shape if d != 1]
    axes = {a % x.ndim for a in _ints(axes_v)}
    return [d for i, d in enumerate(x.shape) if i not in axes]


def _unsqueeze_target(n: _Node) -> list[int]:
    x = n.ins[0]
    axes_v = n.arg("axes", 1)
    rank = x.ndim + len(_ints(axes_v))
    axes = sorted(a % rank for a in _ints(axes_v))
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return shape


_RESHAPES: dict[str, Callable[[_Node], list[int]]] = {
    "Reshape": _reshape_target,
    "Flatten": _flatten_target,
    "Squeeze": _squeeze_target,
    "Unsqueeze": _unsqueeze_target,
}


@_fw(*_RESHAPES)
def _f_reshape(n: _Node) -> Array:
    return n.ins[0].reshape(_RESHAPES[n.node.op_type](n))


def _transpose_perm(n: _Node) -> list[int]:
    return list(n.attrs.get("perm", range(n.ins[0].ndim)[::-1]))


@_fw("Transpose")
def _f_transpose(n: _Node) -> Array:
    return np.transpose(n.ins[0], _transpose_perm(n))


@_fw("Gather")
def _f_gather(n: _Node) -> Array:
    return np.take(n.ins[0], n.ins[1].astype(np.int64), axis=int(n.attrs.get("axis", 0)))


@_fw("Expand")
def _f_expand(n: _Node) -> Array:
    x = n.ins[0]
    return np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(_ints(n.ins[1])))).copy()


@_fw("Tile")
def _f_tile(n: _Node) -> Array:
    return np.tile(n.ins[0], _ints(n.ins[1]))


# -- the interpreter -------------------------------------------------------------------------


def _initial_values(model: onnx.ModelProto, x: Array) -> dict[str, Array]:
    values = {t.name: _internal(numpy_helper.to_array(t)) for t in model.graph.initializer}
    values[graph_input_name(model)] = np.asarray(x, dtype=np.float64)
    return values


def _resolve(node: onnx.NodeProto, values: dict[str, Array], opset: int) -> _Node:
    ins = [values[name] if name else None for name in node.input]
    return _Node(node, _attrs(node), ins, opset)


def forward(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    """Interpret ``model`` on ``x``; return every tensor (input, initializers, outputs) by name."""
    opset = _opset(model)
    values = _initial_values(model, x)
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise NotImplementedError(f"op {node.domain}::{node.op_type}")
        if node.op_type not in _FORWARD:
            raise NotImplementedError(f"forward of {node.op_type} ({node.name})")
        outs = _FORWARD[node.op_type](_resolve(node, values, opset))
        for name, v in zip(node.output, outs, strict=False):
            if name:
                values[name] = np.asarray(v)
    return values


# --------------------------------------------------------------------------------------------
# backward
# --------------------------------------------------------------------------------------------

# Ops whose outputs never carry a signal (their outputs are indices, masks or shapes).
_NON_DIFFERENTIABLE = frozenset(
    {
        "Shape", "Size", "ConstantOfShape", "Constant", "Range", "Equal", "Less", "Greater",
        "LessOrEqual", "GreaterOrEqual", "Not", "Floor", "Ceil",
    }
)  # fmt: skip


def _active_tensors(model: onnx.ModelProto, values: dict[str, Array]) -> set[str]:
    """Float tensors that depend on the graph input through differentiable ops."""
    active = {graph_input_name(model)}
    for node in model.graph.node:
        if node.op_type in _NON_DIFFERENTIABLE or not any(i in active for i in node.input if i):
            continue
        active.update(o for o in node.output if o and _is_float(values.get(o)))
    return active


@dataclass
class _Bw:
    """Everything an op's backward needs: the resolved node, its outputs, their signals."""

    n: _Node
    outs: list[Array]
    gouts: list[Array]  # zeros where an output received no signal
    need: list[bool]  # which inputs are active (want a signal)
    rule: str

    @property
    def x(self) -> Array:
        return self.n.ins[0]

    @property
    def g(self) -> Array:
        return self.gouts[0]

    def only_first(self, gx: Array) -> list[Array | None]:
        """Signal for input 0; refuse if another input (a weight, a bound) is active."""
        if any(self.need[1:]):
            raise NotImplementedError(f"{self.n.node.op_type}: signal to a non-data input")
        return [gx] + [None] * (len(self.need) - 1)


def _bw(*ops: str) -> Callable:
    def deco(fn: Callable[[_Bw], list[Array | None]]) -> Callable:
        for op in ops:
            _BACKWARD[op] = fn
        return fn

    return deco


@_bw("Relu")
def _b_relu(b: _Bw) -> list[Array | None]:
    g, on = b.g, b.x > 0
    gx = {"saliency": g * on, "deconvnet": np.maximum(g, 0.0), "guided": np.maximum(g, 0.0) * on}
    return b.only_first(gx[b.rule])


@_bw("LeakyRelu", "PRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh")
def _b_activation(b: _Bw) -> list[Array | None]:
    g, fprime = b.g, _activation_derivative(b.n, b.x)
    if b.rule == "saliency":
        return b.only_first(g * fprime)
    if b.rule == "deconvnet":
        return b.only_first(np.maximum(g, 0.0))
    return b.only_first(np.maximum(g, 0.0) * (fprime > 0))


@_bw("Conv")
def _b_conv(b: _Bw) -> list[Array | None]:
    return b.only_first(conv_backward(b.x, b.n.ins[1], b.g, b.n.attrs))


@_bw("MaxPool")
def _b_maxpool(b: _Bw) -> list[Array | None]:
    return b.only_first(maxpool_backward(b.x, b.g, b.n.attrs))


@_bw("AveragePool")
def _b_avgpool(b: _Bw) -> list[Array | None]:
    return b.only_first(avgpool_backward(b.x, b.g, b.n.attrs))


@_bw("GlobalAveragePool")
def _b_gap(b: _Bw) -> list[Array | None]:
    count = math.prod(b.x.shape[2:])
    return b.only_first(np.broadcast_to(b.g / count, b.x.shape).copy())


@_bw("GlobalMaxPool")
def _b_gmp(b: _Bw) -> list[Array | None]:
    x = b.x
    flat = x.reshape(*x.shape[:2], -1)
    gx = np.zeros(flat.shape)
    n_idx, c_idx = np.meshgrid(np.arange(x.shape[0]), np.arange(x.shape[1]), indexing="ij")
    gx[n_idx, c_idx, flat.argmax(axis=-1)] = b.g.reshape(*x.shape[:2])
    return b.only_first(gx.reshape(x.shape))


@_bw("BatchNormalization")
def _b_batchnorm(b: _Bw) -> list[Array | None]:
    mult, _ = _bn_scale_shift(b.n)
    return b.only_first(b.g * mult)


@_bw("LRN")
def _b_lrn(b: _Bw) -> list[Array | None]:
    return b.only_first(lrn_backward(b.x, b.g, b.n.attrs))


@_bw("Add", "Sub", "Sum", "Mul", "Div")
def _b_arith(b: _Bw) -> list[Array | None]:
    op, ins, g = b.n.node.op_type, b.n.ins, b.g
    if op in ("Add", "Sum"):
        grads = [g for _ in ins]
    elif op == "Sub":
        grads = [g, -g]
    elif op == "Mul":
        grads = [g * ins[1], g * ins[0]]
    else:  # Div
        grads = [g / ins[1], -g * ins[0] / ins[1] ** 2]
    return [_unbroadcast(gi, v.shape) if need else None for gi, v, need in zip(grads, ins, b.need, strict=True)]


@_bw("Neg")
def _b_neg(b: _Bw) -> list[Array | None]:
    return b.only_first(-b.g)


@_bw("Gemm")
def _b_gemm(b: _Bw) -> list[Array | None]:
    a_, b_ = _gemm_operands(b.n)
    alpha, g = float(b.n.attrs.get("alpha", 1.0)), b.g
    out: list[Array | None] = [None] * len(b.need)
    if b.need[0]:
        ga = alpha * g @ b_.T
        out[0] = ga.T if b.n.attrs.get("transA", 0) else ga
    if b.need[1]:
        gb = alpha * a_.T @ g
        out[1] = gb.T if b.n.attrs.get("transB", 0) else gb
    if len(b.need) > 2 and b.need[2]:
        out[2] = _unbroadcast(float(b.n.attrs.get("beta", 1.0)) * g, b.n.ins[2].shape)
    return out


@_bw("MatMul")
def _b_matmul(b: _Bw) -> list[Array | None]:
    a, m, g = b.n.ins[0], b.n.ins[1], b.g
    a2 = a[np.newaxis, :] if a.ndim == 1 else a  # numpy 1-D promotion rules
    m2 = m[:, np.newaxis] if m.ndim == 1 else m
    g2 = g.reshape(np.matmul(a2, m2).shape)
    ga = _unbroadcast(g2 @ np.swapaxes(m2, -1, -2), a2.shape).reshape(a.shape)
    gm = _unbroadcast(np.swapaxes(a2, -1, -2) @ g2, m2.shape).reshape(m.shape)
    return [ga if b.need[0] else None, gm if b.need[1] else None]


@_bw("Identity", "Dropout", "Cast")
def _b_identity(b: _Bw) -> list[Array | None]:
    return b.only_first(b.g)


@_bw("Softmax", "LogSoftmax")
def _b_softmax(b: _Bw) -> list[Array | None]:
    return b.only_first(b.g)  # only reached at the target: see backward()


@_bw("ReduceSum", "ReduceMean")
def _b_reduce(b: _Bw) -> list[Array | None]:
    x, axes = b.x, _reduce_axes(b.n)
    if axes == ():
        return b.only_first(b.g)
    axes = tuple(range(x.ndim)) if axes is None else axes
    g = b.g if b.n.attrs.get("keepdims", 1) else np.expand_dims(b.g, axes)
    if b.n.node.op_type == "ReduceMean":
        g = g / math.prod(x.shape[a] for a in axes)
    return b.only_first(np.broadcast_to(g, x.shape).copy())


@_bw("Concat")
def _b_concat(b: _Bw) -> list[Array | None]:
    axis = int(b.n.attrs["axis"]) % b.g.ndim
    out: list[Array | None] = []
    start = 0
    for v, need in zip(b.n.ins, b.need, strict=True):
        size = 0 if v is None else v.shape[axis]
        sl = [slice(None)] * b.g.ndim
        sl[axis] = slice(start, start + size)
        out.append(b.g[tuple(sl)] if need else None)
        start += size
    return out


@_bw("Split")
def _b_split(b: _Bw) -> list[Array | None]:
    return b.only_first(np.concatenate(b.gouts, axis=int(b.n.attrs.get("axis", 0))))


def _movement_fn(n: _Node) -> Callable[[Array], Array]:
    """The op as a function of its data input alone (the other inputs are fixed)."""
    op = n.node.op_type
    if op in _RESHAPES:
        shape = _RESHAPES[op](n)
        return lambda v: v.reshape(shape)
    if op == "Transpose":
        perm = _transpose_perm(n)
        return lambda v: np.transpose(v, perm)
    if op == "Slice":
        return _slice_fn(n)
    if op == "Pad":
        pad = _pad_fn(n)
        return lambda v: pad(v, -1)  # index -1: element comes from the constant, not from X
    if op == "Gather":
        idx, axis = n.ins[1].astype(np.int64), int(n.attrs.get("axis", 0))
        return lambda v: np.take(v, idx, axis=axis)
    if op == "Expand":
        shape = np.broadcast_shapes(n.ins[0].shape, tuple(_ints(n.ins[1])))
        return lambda v: np.broadcast_to(v, shape)
    if op == "Tile":
        reps = _ints(n.ins[1])
        return lambda v: np.tile(v, reps)
    raise NotImplementedError(op)


_MOVEMENT = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Pad", "Gather")


@_bw(*_MOVEMENT, "Expand", "Tile")
def _b_movement(b: _Bw) -> list[Array | None]:
    return b.only_first(_index_vjp(_movement_fn(b.n), b.x.shape, b.g))


def _backward_one(
    model: onnx.ModelProto,
    values: dict[str, Array],
    active: set[str],
    target: str,
    seed: Array,
    rule: str,
) -> Array:
    """One reverse sweep from ``target`` (seeded with ``seed``) to the graph input."""
    opset = _opset(model)
    x_name = graph_input_name(model)
    grads: dict[str, Array] = {target: np.asarray(seed, dtype=np.float64)}
    for node in reversed(model.graph.node):
        if not any(o in grads for o in node.output if o):
            continue
        if not any(i in active for i in node.input if i):
            continue
        op = node.op_type
        if op in ("Softmax", "LogSoftmax") and list(node.output) != [target]:
            raise NotImplementedError(f"{op} is only supported as the target ({node.name})")
        if op not in _BACKWARD:
            raise NotImplementedError(f"backward of {op} ({node.name})")
        n = _resolve(node, values, opset)
        outs = [values[o] for o in node.output if o]
        gouts = [grads.get(o, np.zeros(values[o].shape)) for o in node.output if o]
        need = [bool(i) and i in active for i in node.input]
        gins = _BACKWARD[op](_Bw(n, outs, gouts, need, rule))
        for name, gi in zip(node.input, gins, strict=True):
            if gi is None or not name or name not in active:
                continue
            if gi.shape != values[name].shape:
                raise AssertionError(f"{op}: signal {gi.shape} for {name}{values[name].shape}")
            grads[name] = grads[name] + gi if name in grads else gi
    return grads.get(x_name, np.zeros(values[x_name].shape))


def backward(model: onnx.ModelProto, x: np.ndarray, target: str, seed: np.ndarray, rule: str) -> np.ndarray:
    """Propagate ``seed`` (shape of tensor ``target``) back to the graph input under ``rule``.

    If ``x`` has batch 1 and ``seed`` has batch K, the forward is shared and K sweeps run;
    the result has shape ``(K, *x.shape[1:])``.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    values = forward(model, x)
    if target not in values:
        raise KeyError(f"no tensor named {target!r}")
    active = _active_tensors(model, values)
    if target not in active:
        raise ValueError(f"{target!r} does not depend (differentiably) on the input")
    seed = np.asarray(seed, dtype=np.float64)
    t_shape = values[target].shape
    if seed.shape == t_shape:
        return _backward_one(model, values, active, target, seed, rule)
    if np.shape(x)[0] == 1 and t_shape[:1] == (1,) and seed.shape[1:] == t_shape[1:]:
        sweeps = [_backward_one(model, values, active, target, seed[k : k + 1], rule) for k in range(seed.shape[0])]
        return np.concatenate(sweeps, axis=0)
    raise ValueError(f"seed shape {seed.shape} does not match {target!r} of shape {t_shape}")
