"""The machinery of the rule property test: a drawn one-node ``Case`` made into a model, its
forward evaluated in float64 where the operator allows, and the inverse graph checked against it.

The model's one input ``x`` is flat, ``(1, n)``; each operand on the image path is a Slice of it
reshaped to its own shape (leading axis 1: the batch), so a rule with several operands on the
path (MatMul, SwiGLU, Attention's Q, K and V) gets independent values in each. Constant operands
are initializers.

J·u and the coordinate derivatives are central differences of the *forward* model alone: run by
onnxruntime in float64 where its kernels take doubles, else by the ONNX reference evaluator in
float64 (operators newer than onnxruntime's opsets), else by onnxruntime in float32 with a larger
step and tolerance. Jᵀ·v is the inverse graph, run by onnxruntime (it must run there), fed the
forward tensors it reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import InverseSpec, build_inverse
from onnxviz.passes.rewrite import forward_model

IR_VERSION = 9
KINK_MARGIN = 0.02
FIRST_SLICE_INPUTS_OPSET = 10
ORT_OPSETS = range(7, 27)  # the default-domain opsets onnxruntime runs


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the one-node models leave unused shape initializers
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


class NoKernel(Exception):
    """No implementation runs this operator version: there is nothing to check the rule against."""


@dataclass(frozen=True)
class Signal:
    """An operand on the image path: its shape (axis 0 the batch of 1) and the range its values
    are drawn from. ``gap`` > 0 instead spaces all values about that far apart around 0, each
    within gap/8 of a midpoint between multiples of ``gap`` (maxima, sorts, kinks): no two tie and
    none is near a threshold that is a multiple of ``gap`` (0, λ…), so central differences never
    cross a switch."""

    shape: tuple[int, ...]
    low: float = -2.0
    high: float = 2.0
    gap: float = 0.0
    kinks: tuple[float, ...] = ()  # values where the operator switches: drawn values keep 0.02 away


@dataclass
class Case:
    """One node: ``inputs`` per slot a ``Signal``, a constant array, None (omitted), or the name
    of a comparison of the next two slots' operands (a condition computed from the image); the
    target is output ``target`` of ``outputs``."""

    op_type: str
    inputs: list
    opset: int
    attrs: dict = field(default_factory=dict)
    outputs: int = 1
    target: int = 0


def build(case: Case, dtype: int = TensorProto.FLOAT) -> tuple[onnx.ModelProto, tuple[int, ...], str]:
    """(model, input shape, target tensor) for ``case``; float constants in ``dtype``."""
    signals = [s for s in case.inputs if isinstance(s, Signal)]
    total = sum(math.prod(s.shape) for s in signals)
    floats = np.float64 if dtype == TensorProto.DOUBLE else np.float32
    nodes, inits, names, offset = [], [], [], 0
    for slot, operand in enumerate(case.inputs):
        if operand is None:
            names.append("")
        elif isinstance(operand, str):  # a comparison of the two operands after it (a Where's condition)
            names.append(f"condition{slot}")
            later = [f"operand{later}" for later in (slot + 1, slot + 2)]
            compared = helper.make_node(operand, later, [names[-1]], name=f"compare{slot}")
        elif isinstance(operand, Signal):
            size, name = math.prod(operand.shape), f"operand{slot}"
            nodes += _slice(f"flat{slot}", offset, offset + size, case.opset, inits)
            shape = numpy_helper.from_array(np.asarray(operand.shape, np.int64), f"shape{slot}")
            inits.append(shape)
            nodes.append(helper.make_node("Reshape", [f"flat{slot}", shape.name], [name], name=f"reshape{slot}"))
            names.append(name)
            offset += size
        else:
            value = np.asarray(operand)
            value = value.astype(floats) if value.dtype.kind == "f" else value
            inits.append(numpy_helper.from_array(value, f"constant{slot}"))
            names.append(f"constant{slot}")
    nodes += [compared] if any(isinstance(o, str) for o in case.inputs) else []
    outputs = [f"y{i}" for i in range(case.outputs)]
    nodes.append(helper.make_node(case.op_type, names, outputs, name="node", **case.attrs))
    target = outputs[case.target]
    graph = helper.make_graph(
        nodes,
        "case",
        [helper.make_tensor_value_info("x", dtype, [1, 1, 1, total])],
        [helper.make_tensor_value_info(target, dtype, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", case.opset)])
    model.ir_version = IR_VERSION
    inferred = onnx.shape_inference.infer_shapes(model)
    declared = next((v for v in [*inferred.graph.value_info, *inferred.graph.output] if v.name == target), None)
    if declared is not None and declared.type.tensor_type.HasField("shape"):
        model.graph.output[0].CopyFrom(declared)
    else:  # a shape that depends on values (Compress): the reference tells it
        value = ReferenceEvaluator(model).run(None, {"x": np.zeros((1, 1, 1, total), floats)})[0]
        model.graph.output[0].CopyFrom(helper.make_tensor_value_info(target, dtype, list(np.shape(value))))
    return model, (1, 1, 1, total), target


def _slice(output: str, start: int, stop: int, opset: int, inits: list) -> list[onnx.NodeProto]:
    if opset < FIRST_SLICE_INPUTS_OPSET:
        return [helper.make_node("Slice", ["x"], [output], starts=[start], ends=[stop], axes=[3], name=f"s{output}")]
    bounds = [
        numpy_helper.from_array(np.asarray([v], np.int64), f"{output}_{k}") for k, v in (("a", start), ("b", stop))
    ]
    axis = numpy_helper.from_array(np.asarray([3], np.int64), f"{output}_axis")
    inits += [*bounds, axis]
    return [helper.make_node("Slice", ["x", bounds[0].name, bounds[1].name, axis.name], [output], name=f"s{output}")]


def draw_input(case: Case, rng: np.random.Generator) -> np.ndarray:
    parts = []
    for operand in case.inputs:
        if not isinstance(operand, Signal):
            continue
        size = math.prod(operand.shape)
        if operand.gap > 0:
            grid = rng.permutation(size) - size // 2 + 0.5
            values = operand.gap * (grid + rng.uniform(-0.125, 0.125, size))
        else:
            values = rng.uniform(operand.low, operand.high, size)
        for kink in operand.kinks:
            near = np.abs(values - kink) < KINK_MARGIN
            values[near] = kink + np.where(values[near] < kink, -KINK_MARGIN, KINK_MARGIN)
        parts.append(values)
    return np.concatenate(parts).reshape(1, 1, 1, -1)


Runner = Callable[[np.ndarray], np.ndarray]


def runner(model: onnx.ModelProto, outputs: list[str] | None = None) -> Runner:
    """Evaluate ``model`` (input ``x``): onnxruntime where it takes the model, else the ONNX
    reference evaluator. Returns every output, stacked in a list, or the first one."""
    try:
        session = _session(model)
        elem = model.graph.input[0].type.tensor_type.elem_type
        dtype = np.float64 if elem == TensorProto.DOUBLE else np.float32
        return lambda x: session.run(outputs, {"x": x.astype(dtype)})
    except Exception:
        evaluator = ReferenceEvaluator(model)
        return lambda x: evaluator.run(outputs, {"x": x.astype(np.float64)})


def precise_forward(case: Case) -> tuple[Runner, bool]:
    """The target as a function of ``x`` in float64 where possible: (run, is_double)."""
    double, _, _ = build(case, TensorProto.DOUBLE)
    for model, is_double in ((double, True), (build(case)[0], False)):
        try:
            session = _session(model)
        except Exception:
            continue
        cast = np.float64 if is_double else np.float32
        return (lambda x, s=session, c=cast: s.run(None, {"x": x.astype(c)})[0].astype(np.float64)), is_double
    try:
        evaluator = ReferenceEvaluator(double)
        evaluator.run(None, {"x": np.zeros(build(case)[1])})
    except Exception as exc:  # a version neither onnxruntime nor the reference implements
        raise NoKernel(f"neither onnxruntime nor the ONNX reference runs {case.op_type} at opset {case.opset}") from exc
    return (lambda x: np.asarray(evaluator.run(None, {"x": x.astype(np.float64)})[0], np.float64)), True


@dataclass
class Inverse:
    """Jᵀ·v for ``case`` at ``x`` in one emitted form."""

    vjp: Callable[[np.ndarray], np.ndarray]
    target_shape: tuple[int, ...]
    model: bytes  # the inverse graph: forms that emit the same one need not run twice


def inverse(case: Case, x: np.ndarray, form: str) -> Inverse:
    model, _, target = build(case)
    graph = ModelGraph.from_proto(model)
    built = build_inverse(graph, InverseSpec(target, x.shape, rule="saliency", form=form))
    emitted = built.model.SerializeToString()
    shapes = graph.shapes(x.shape)
    outputs = [target, *(t for t in built.forward_tensors if t != target)]
    target_shape = tuple(shapes[target])

    def once(seeds: np.ndarray) -> np.ndarray:
        if not state:  # the sessions, made when the form's graph is first run
            forward = runner(forward_model(graph, outputs, built.switches, shapes, built.masks))
            state["values"] = dict(zip(outputs, forward(x), strict=True))
            state["session"] = _session(built.model)
        values, session = state["values"], state["session"]
        feeds = {"seed": seeds.astype(np.float32)}
        for tensor in built.forward_tensors:
            declared = next(i for i in built.model.graph.input if i.name == tensor)
            elem = helper.tensor_dtype_to_np_dtype(declared.type.tensor_type.elem_type)
            feeds[tensor] = np.asarray(values[tensor]).astype(elem)
        return session.run(None, feeds)[0].astype(np.float64)

    def vjp(seeds: np.ndarray) -> np.ndarray:
        if built.single:
            return np.concatenate([once(seed[None]) for seed in seeds], axis=0)
        return once(seeds)

    state: dict = {}
    return Inverse(vjp, target_shape, emitted)


def _differences(f: Runner, x: np.ndarray, step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(central difference, its noise) of ``f`` along ``step`` (divided by the step's size 1):
    the noise is half the gap between the forward and backward one-sided differences, which bounds
    what curvature and rounding do to the central one (a norm over two nearly equal values bends
    sharply; some double kernels compute in float)."""
    centre = f(x)
    plus, minus = f(x + step) - centre, centre - f(x - step)
    return ((plus + minus) / 2)[0], (np.abs(plus - minus) / 2)[0]


def check(case: Case, seed: int, coordinates: int = 3) -> None:
    """The adjoint identity and coordinate finite differences, in both emitted forms, which must
    agree with each other."""
    rng = np.random.default_rng(seed)
    x = draw_input(case, rng)
    f, is_double = precise_forward(case)
    # A step of 1e-3 keeps the rounding of kernels that take doubles but compute in float small.
    eps, tolerance = (1e-3, 2e-3) if is_double else (1e-2, 3e-2)
    u = rng.standard_normal(x.shape)
    seeds = rng.standard_normal((2, *f(x).shape[1:]))
    moved, noise = _differences(f, x, eps * u)
    ju, ju_noise = moved / eps, noise / eps
    picked = rng.choice(x.size, size=min(coordinates, x.size), replace=False)
    results: dict[str, np.ndarray] = {}
    checked: dict[bytes, np.ndarray] = {}
    for form in ("cpu", "portable"):
        inv = inverse(case, x, form)
        if inv.model in checked:  # the same graph as the other form's, already checked
            results[form] = checked[inv.model]
            continue
        jtv = checked[inv.model] = inv.vjp(seeds)
        assert jtv.shape == (2, *x.shape[1:]), jtv.shape
        for k in range(2):
            left, right = float(np.sum(ju * seeds[k])), float(np.sum(u[0] * jtv[k]))
            # Relative to both sides, with a floor for Jacobians that cancel to about 0 in float32
            # (a norm over two elements), and the central difference's own noise.
            norms = np.sqrt([np.sum(ju**2) * np.sum(seeds[k] ** 2), np.sum(u**2) * np.sum(jtv[k] ** 2)])
            scale = float(norms.sum() + 1e-4 * np.sqrt(np.sum(u**2) * np.sum(seeds[k] ** 2)))
            allowed = tolerance * scale + float(np.sum(ju_noise * np.abs(seeds[k])))
            assert abs(left - right) <= allowed, f"{form}: ⟨Ju, v⟩ = {left}, ⟨u, Jᵀv⟩ = {right}"
        for i in picked:
            step = np.zeros(x.size)
            step[i] = eps
            moved, noise = _differences(f, x, step.reshape(x.shape))
            fd = float(np.sum(moved * seeds[0])) / eps
            mine = float(jtv[0].reshape(-1)[i])
            allowed = tolerance * (float(np.abs(jtv[0]).max()) + 1e-3) + float(np.sum(noise * np.abs(seeds[0]))) / eps
            assert abs(fd - mine) <= allowed, f"{form}: ∂/∂x[{i}] = {fd}, inverse {mine}"
        results[form] = jtv
    np.testing.assert_allclose(results["cpu"], results["portable"], rtol=1e-4, atol=1e-5)
