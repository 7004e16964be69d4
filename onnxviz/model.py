"""ModelGraph: the one in-memory view of an ONNX file that every pipeline works from.

Loading does the work that differs between exporters once, so that the rest of onnxviz sees
one kind of graph:

* external data is resolved next to the file, and its absence is a clear error;
* graphs older than opset 8 are upgraded, since MaxPool only gained its ``Indices`` output then;
  an IR version newer than onnxruntime loads is lowered where the opset allows, an opset newer
  than it runs is refused naming both, and a custom-domain op it does not know is refused by name;
* fp16 graphs are run in float32 and QOperator graphs are rewritten in QDQ form
  (``precision.py``);
* constant subgraphs are folded (old model-zoo graphs make weights with ConstantOfShape/Mul
  chains, exporters put pads and shapes in Constant nodes), so rules read weights as arrays;
* the *signal* tensors (those that depend differentiably on the image) are marked, which is what
  separates the path a projection travels from shape arithmetic such as tf2onnx's
  Shape→Gather→Concat→Reshape flatten;
* shapes come from ONNX shape inference, and from one real run where inference gives up.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from onnxviz.composite import find_composites
from onnxviz.errors import (
    InvalidModelError,
    ModelLoadError,
    UnknownNodeError,
    UnsupportedOpError,
    UsageError,
    runtime_message,
)
from onnxviz.precision import half_to_float, operators_to_qdq, restore_fused_relus

# Ops whose output does not carry the image's signal even when an input does.
NON_DIFFERENTIABLE_OPS = frozenset(
    {
        "Shape",
        "Size",
        "NonZero",
        "ArgMax",
        "ArgMin",
        "ConstantOfShape",
        "EyeLike",
        "RandomNormalLike",
        "RandomUniformLike",
        "Greater",
        "Less",
        "Equal",
        "GreaterOrEqual",
        "LessOrEqual",
        "Not",
        "And",
        "Or",
        "Xor",
        "IsNaN",
        "IsInf",
        "Sign",
        "Round",
        "Floor",
        "Ceil",
    }
)
# Ops whose output is (part of) their input's shape: evaluated from static shapes when folding.
SHAPE_READER_OPS = frozenset({"Shape", "Size"})
# Ops never folded even when all inputs are constant.
NON_FOLDABLE_OPS = frozenset(
    {
        "RandomNormal",
        "RandomUniform",
        "RandomNormalLike",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
        "If",
        "Loop",
        "Scan",
    }
)
ACTIVATION_OPS = frozenset(
    {
        "Relu",
        "LeakyRelu",
        "PRelu",
        "Clip",
        "Sigmoid",
        "HardSigmoid",
        "HardSwish",
        "Tanh",
        "Elu",
        "Selu",
        "Softplus",
        "Celu",
        "ThresholdedRelu",
        "Mish",
        "Gelu",
        "Softsign",
    }
)
PASS_THROUGH_OPS = frozenset({"Identity", "Dropout", "BatchNormalization"})
CEIL_MODE_OPS = frozenset({"MaxPool", "AveragePool", "LpPool"})
WINDOW_OPS = frozenset({"Conv", "MaxPool", "AveragePool", "LpPool"})
MIN_OPSET_FOR_SWITCHES = 8
UPGRADE_OPSET = 13


@dataclass(frozen=True)
class Layer:
    """A named place in the graph a user can point ``--node`` at."""

    alias: str
    node: str
    op_type: str
    tensor: str


@dataclass
class ModelGraph:
    """A loaded, validated, constant-folded ONNX model with lookup tables for the pipelines."""

    model: onnx.ModelProto
    path: Path | None = None
    original_opset: int = 0
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    producer: dict[str, onnx.NodeProto] = field(default_factory=dict)
    consumers: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    signal: set[str] = field(default_factory=set)
    input_name: str = ""
    input_dims: tuple[int | str | None, ...] = ()
    output_names: list[str] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)
    custom_ops: tuple[str, ...] = ()  # custom-op libraries every onnxruntime session registers
    notes: list[str] = field(default_factory=list)  # one line each on what loading changed
    half_precision: bool = False  # the file computes in fp16 (loading made it float32)
    _shape_cache: dict[tuple[int, ...], dict[str, tuple[int, ...]]] = field(default_factory=dict)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, custom_ops: tuple[str, ...] = ()) -> ModelGraph:
        path = Path(path)
        if not path.exists():
            raise ModelLoadError(f"Model file not found: {path}", "Check the path.")
        if path.is_dir():
            raise ModelLoadError(f"{path} is a folder, not an ONNX file.")
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:
            raise ModelLoadError(
                f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc}).",
                "The file may be truncated or corrupt; export it again.",
            ) from None
        if not model.graph.node:
            raise ModelLoadError(f"{path} holds no graph nodes; it is not an ONNX model or it is empty.")
        _load_external_data(model, path)
        return cls.from_proto(model, path, custom_ops)

    @classmethod
    def from_proto(
        cls, model: onnx.ModelProto, path: Path | None = None, custom_ops: tuple[str, ...] = ()
    ) -> ModelGraph:
        try:
            onnx.checker.check_model(model)
        except Exception as exc:
            # onnx deprecates ops (GroupNormalization-18) that onnxruntime still runs as specified
            if not _only_deprecated(exc):
                raise ModelLoadError(
                    f"The model does not pass onnx.checker: {str(exc).splitlines()[0]}",
                    "Re-export the model, or fix the graph with onnx tools.",
                ) from None
        original_opset = default_opset(model)
        if original_opset < MIN_OPSET_FOR_SWITCHES:
            model = _upgrade_opset(model)
        for tensor in model.graph.initializer:  # before any pass reads them: a view each, no copy
            _tensor_array(tensor, f"initializer '{tensor.name}'")
        notes = _fit_versions(model)
        _check_custom_ops(model, custom_ops)
        half_precision = half_to_float(model)
        if half_precision:
            notes.append("fp16 model: running in float32")
        converted = operators_to_qdq(model)
        if converted:
            notes.append(f"QOperator model: {', '.join(converted)} converted to their QDQ form")
        restore_fused_relus(model)
        graph = cls(
            model=model,
            path=path,
            original_opset=original_opset,
            custom_ops=tuple(custom_ops),
            notes=notes,
            half_precision=half_precision,
        )
        graph._index()
        return graph

    def _index(self) -> None:
        g = self.model.graph
        self.nodes = _topological_order(g)
        for i, node in enumerate(self.nodes):
            if not node.name:
                node.name = f"{node.op_type}_{i}"
        self.producer = {o: n for n in self.nodes for o in n.output if o}
        self.consumers = {}
        for n in self.nodes:
            for t in n.input:
                if t:
                    self.consumers.setdefault(t, []).append(n)
        initializer_names = {t.name for t in g.initializer}
        inputs = [i for i in g.input if i.name not in initializer_names]
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs) or "none"
            raise UsageError(
                f"onnxviz needs a model with exactly one image input; this one has {len(inputs)}: {names}.",
                "Export the model with the image as its only input.",
            )
        self.input_name = inputs[0].name
        dims = inputs[0].type.tensor_type.shape.dim
        self.input_dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims)
        if len(self.input_dims) != 4:
            raise UsageError(
                f"The model input '{self.input_name}' has rank {len(self.input_dims)}; onnxviz works on "
                "image models with a 4-D input (NCHW or NHWC).",
            )
        self.output_names = [o.name for o in g.output]
        self.constants = {t.name: _tensor_array(t, f"initializer '{t.name}'") for t in g.initializer}
        self._fold_constants()
        self._mark_signal()
        if self._fold_shape_arithmetic():
            self._mark_signal()
        self._make_pads_explicit()
        self.layers = _name_layers(self)

    def _make_pads_explicit(self) -> None:
        """Replace ``auto_pad`` by the explicit pads the spec defines, where sizes are static.

        onnxruntime departs from the spec on some auto_pad combinations (it refuses Conv with
        SAME_* and dilations, pads pools with SAME_* as if undilated, and keeps windows that
        overhang the input under VALID + ceil_mode); with explicit pads it follows the spec,
        and so the forward run, the shapes and the inverse all agree.
        """
        from onnxviz.inverse.geometry import explicit_pads, window_attrs

        padded = [n for n in self.nodes if n.op_type in WINDOW_OPS and node_attr(n, "auto_pad", "NOTSET") != "NOTSET"]
        if not padded or not all(isinstance(d, int) and d > 0 for d in self.input_dims[1:]):
            return
        shapes = _inferred_shapes(self.model, self.input_name, self.concrete_input_shape())
        shapes[self.input_name] = self.concrete_input_shape()
        for node in padded:
            weights = self.constants.get(node.input[1]) if len(node.input) > 1 else None
            kernel = node_attr(node, "kernel_shape") or (weights.shape[2:] if weights is not None else None)
            if node.input[0] not in shapes or kernel is None:
                continue
            kernel = tuple(kernel)
            strides, dilations = window_attrs(node, kernel)
            begins, ends = explicit_pads(node, shapes[node.input[0]][2:], kernel, strides, dilations)
            valid_ceil = node_attr(node, "auto_pad") == "VALID" and node_attr(node, "ceil_mode", 0)
            kept = [a for a in node.attribute if a.name not in ("auto_pad", "pads", "ceil_mode" if valid_ceil else "")]
            del node.attribute[:]
            node.attribute.extend(kept)
            node.attribute.append(onnx.helper.make_attribute("pads", begins + ends))
        self._shape_cache.clear()

    def _fold_constants(self) -> None:
        """Evaluate every node whose inputs are all constant, so rules can read them as arrays."""
        from onnx.reference import ReferenceEvaluator

        for node in self.nodes:
            if node.op_type == "Constant":
                self.constants[node.output[0]] = _constant_node_value(node)
                continue
            if node.op_type in NON_FOLDABLE_OPS or node.domain not in ("", "ai.onnx"):
                continue
            if not all((not t) or t in self.constants for t in node.input):
                continue
            try:
                values = _evaluate_node(ReferenceEvaluator, node, self.constants, default_opset(self.model))
            except Exception:
                continue
            for name, value in zip(node.output, values, strict=False):
                if name:
                    self.constants[name] = np.asarray(value)

    def _fold_shape_arithmetic(self) -> bool:
        """Evaluate the arithmetic on ``Shape``/``Size`` of image tensors for the known input shape.

        TorchScript writes a channel split as Slice bounds computed from ``Shape → Gather → Div →
        Mul``; rules need those bounds as numbers. The forward graph keeps computing them at run
        time (so it still runs at any batch); only the values are recorded here, and only those
        that do not depend on the batch size: the arithmetic is evaluated twice, with the signal
        tensors' batch axis at 1 and at 2, and a value enters ``constants`` only if both agree.
        ``Shape(x)[0]`` and whatever is computed from it stay unknown, as they must.
        Returns whether anything was folded.
        """
        readers = [n for n in self.nodes if n.op_type in SHAPE_READER_OPS and n.input and n.input[0] in self.signal]
        if not readers or not all(isinstance(d, int) and d > 0 for d in self.input_dims[1:]):
            return False
        try:
            single = self.shapes(self.concrete_input_shape())
        except Exception:
            return False  # shapes are unknowable without a run that fails: leave the graph as it is
        from onnx.reference import ReferenceEvaluator

        batches = (1, 2)
        known: list[dict[str, np.ndarray]] = [{}, {}]
        folded = False
        opset = default_opset(self.model)
        for node in self.nodes:
            if node.op_type in SHAPE_READER_OPS and node.input[0] in self.signal:
                if node.input[0] not in single:
                    continue
                for values, batch in zip(known, batches, strict=True):
                    values[node.output[0]] = _shape_reader_value(node, (batch, *single[node.input[0]][1:]))
                continue
            if node.op_type in NON_FOLDABLE_OPS or node.domain not in ("", "ai.onnx") or not node.input:
                continue
            inputs = [t for t in node.input if t]
            if not any(t in known[0] for t in inputs) or any(t in self.signal for t in inputs):
                continue
            if not all(t in known[0] or t in self.constants for t in inputs):
                continue
            try:
                results = [
                    _evaluate_node(ReferenceEvaluator, node, {**self.constants, **values}, opset) for values in known
                ]
            except Exception:
                continue
            for i, name in enumerate(node.output):
                if not name or i >= len(results[0]):
                    continue
                at_one, at_two = (np.asarray(r[i]) for r in results)
                known[0][name], known[1][name] = at_one, at_two
                if at_one.shape == at_two.shape and np.array_equal(at_one, at_two) and name not in self.signal:
                    self.constants[name] = at_one
                    single[name] = tuple(at_one.shape)  # the cached shapes stay whole, and are kept
                    folded = True
        return folded

    def _mark_signal(self) -> None:
        self.signal = {self.input_name}
        for node in self.nodes:
            if node.op_type in NON_DIFFERENTIABLE_OPS:
                continue
            if any(t in self.signal for t in node.input if t):
                for o in node.output:
                    if o and o not in self.constants:
                        self.signal.add(o)
        for node in self.nodes:
            if node.op_type == "MaxPool" and len(node.output) > 1:
                self.signal.discard(node.output[1])  # argmax indices carry no signal

    # -- shapes ---------------------------------------------------------------------------------

    @property
    def layout(self) -> str:
        """'nhwc' when the input's last axis looks like colour channels, else 'nchw'."""
        c1, c3 = self.input_dims[1], self.input_dims[3]
        first_is_transpose = any(
            n.op_type == "Transpose" and list(node_attr(n, "perm", [])) == [0, 3, 1, 2]
            for n in self.consumers.get(self.input_name, [])
        )
        if first_is_transpose or (c3 in (1, 3, 4) and c1 not in (1, 3, 4)):
            return "nhwc"
        return "nchw"

    def concrete_input_shape(self, height: int | None = None, width: int | None = None) -> tuple[int, ...]:
        """The input shape for one image: batch 1, symbolic spatial dims filled in."""
        dims = list(self.input_dims)
        dims[0] = 1
        h_axis, w_axis = (1, 2) if self.layout == "nhwc" else (2, 3)
        c_axis = 3 if self.layout == "nhwc" else 1
        for axis, value in ((h_axis, height), (w_axis, width)):
            if not isinstance(dims[axis], int) or dims[axis] <= 0:
                if value is None:
                    raise UsageError(
                        f"The model input '{self.input_name}' has a free spatial size; give one with --size H,W."
                    )
                dims[axis] = value
        if not isinstance(dims[c_axis], int) or dims[c_axis] <= 0:
            dims[c_axis] = 3
        return tuple(int(d) for d in dims)  # type: ignore[arg-type]

    def shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Full static shapes (batch 1) of every tensor for this input shape, cached."""
        if input_shape in self._shape_cache:
            return self._shape_cache[input_shape]
        shapes = _inferred_shapes(self.model, self.input_name, input_shape)
        wanted = [t for t in self.signal if t not in shapes and t != self.input_name]
        if any(n.op_type in CEIL_MODE_OPS and node_attr(n, "ceil_mode", 0) for n in self.nodes):
            # ONNX shape inference keeps a ceil_mode window that starts in the right padding, which
            # onnxruntime (and the spec) drop: trust only real shapes downstream of such pools.
            wanted = sorted(self.signal - {self.input_name})
        if wanted:
            shapes.update(_shapes_from_run(self.model, self.input_name, input_shape, wanted, self.custom_ops))
        shapes[self.input_name] = input_shape
        for name, value in self.constants.items():
            shapes[name] = tuple(value.shape)
        self._shape_cache[input_shape] = shapes
        return shapes

    # -- lookup ---------------------------------------------------------------------------------

    def node_by_name(self, name: str) -> onnx.NodeProto | None:
        return next((n for n in self.nodes if n.name == name), None)

    def resolve(self, query: str) -> Layer:
        """Resolve ``--node``: exact node name, exact tensor name, alias, then unique substring."""
        node = self.node_by_name(query)
        if node is not None:
            return self._layer_for_tensor(node.output[0], node)
        if query in self.producer:
            return self._layer_for_tensor(query, self.producer[query])
        for layer in self.layers:
            if layer.alias == query:
                return layer
        lowered = query.lower()
        hits = [n for n in self.nodes if lowered in n.name.lower() and n.output[0] in self.signal]
        if len(hits) == 1:
            return self._layer_for_tensor(hits[0].output[0], hits[0])
        candidates = [layer.alias for layer in self.layers] + [n.name for n in self.nodes]
        if len(hits) > 1:
            shown = ", ".join(n.name for n in hits[:8]) + (" …" if len(hits) > 8 else "")
            raise UnknownNodeError(
                f"'{query}' matches {len(hits)} nodes: {shown}.",
                "Give the exact node name or an alias (see `onnxviz layers MODEL`).",
            )
        close = difflib.get_close_matches(query, candidates, n=5, cutoff=0.5)
        hint = f"Did you mean: {', '.join(close)}? " if close else ""
        raise UnknownNodeError(
            f"No node, tensor or alias named '{query}' in this model.",
            hint + "`onnxviz layers MODEL` lists every alias and node.",
        )

    def _layer_for_tensor(self, tensor: str, node: onnx.NodeProto) -> Layer:
        if tensor not in self.signal:
            raise UnknownNodeError(
                f"'{node.name}' ({node.op_type}) does not depend on the image input, so nothing can be "
                "projected from it.",
                "Pick a layer on the path from the input, see `onnxviz layers MODEL`.",
            )
        alias = next((la.alias for la in self.layers if la.tensor == tensor), node.name)
        return Layer(alias=alias, node=node.name, op_type=node.op_type, tensor=tensor)

    def signal_inputs(self, node: onnx.NodeProto) -> list[int]:
        return [i for i, t in enumerate(node.input) if t and t in self.signal]

    def ancestors(self, tensors: Iterable[str]) -> set[str]:
        """Names of nodes needed to compute ``tensors``."""
        return {node.name for node in upstream_nodes(self.producer, tensors)}


def upstream_nodes(
    producer: dict[str, onnx.NodeProto], tensors: Iterable[str], stop: frozenset[str] = frozenset()
) -> list[onnx.NodeProto]:
    """The nodes ``tensors`` depend on, walking back through producers but not past ``stop``."""
    found: dict[int, onnx.NodeProto] = {}
    stack = list(tensors)
    seen: set[str] = set()
    while stack:
        tensor = stack.pop()
        if tensor in seen or tensor in stop:
            continue
        seen.add(tensor)
        node = producer.get(tensor)
        if node is not None and id(node) not in found:
            found[id(node)] = node
            stack.extend(t for t in node.input if t)
    return list(found.values())


def default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def node_attr(node: onnx.NodeProto, name: str, default=None):
    """An attribute's Python value (bytes decoded), or ``default``."""
    value = next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)
    return value.decode() if isinstance(value, bytes) else value


def _only_deprecated(exc: Exception) -> bool:
    """Whether onnx.checker's only objection is an op it has deprecated for the model's opset."""
    return "is deprecated in domain_version" in str(exc)


def _load_external_data(model: onnx.ModelProto, path: Path) -> None:
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    missing = []
    for tensor in _all_tensors(model):
        if uses_external_data(tensor):
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            if not (path.parent / location).exists():
                missing.append((tensor.name, location))
    if missing:
        name, location = missing[0]
        raise ModelLoadError(
            f"The model keeps its weights in external data, and '{location}' (for tensor '{name}'"
            f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}) is not next to {path.name}.",
            f"Put the data file(s) in {path.parent.resolve()} beside the model.",
        )
    try:
        load_external_data_for_model(model, str(path.parent))
    except Exception as exc:
        raise ModelLoadError(
            f"The external data of {path} cannot be read ({exc}).", "The data file may be truncated."
        ) from None


def _all_tensors(model: onnx.ModelProto) -> Iterable[onnx.TensorProto]:
    yield from model.graph.initializer
    for node in model.graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                yield a.t


def _fit_versions(model: onnx.ModelProto) -> list[str]:
    """Make the model loadable by the installed onnxruntime where that changes nothing it means.

    A newer IR version (onnx's helper stamps its own, e.g. 14 for onnx 1.23) is lowered to the
    newest onnxruntime loads, if that IR may still carry the model's opset; an opset newer than
    onnxruntime runs cannot be lowered without rewriting ops, and is refused naming both.
    Returns the notes to show.
    """
    import onnxruntime as ort

    from onnxviz.runtime import ir_version_for, max_ir_version, max_opset

    opset = default_opset(model)
    if opset > max_opset():
        raise ModelLoadError(
            f"The model uses ONNX opset {opset}, and the installed onnxruntime {ort.__version__} runs opsets up "
            f"to {max_opset()}.",
            f"Upgrade onnxruntime, or re-export the model with opset {max_opset()} or older.",
        )
    newest = max_ir_version()
    if model.ir_version <= newest:
        return []
    if ir_version_for(opset) > newest:
        raise ModelLoadError(
            f"The model has IR version {model.ir_version} and opset {opset}; the installed onnxruntime "
            f"{ort.__version__} loads IR versions up to {newest}, too old for that opset.",
            "Upgrade onnxruntime, or re-export the model with an older opset.",
        )
    lowered_from, model.ir_version = model.ir_version, newest
    return [f"IR version {lowered_from} lowered to {newest}, the newest onnxruntime {ort.__version__} loads"]


def _check_custom_ops(model: onnx.ModelProto, custom_ops: tuple[str, ...]) -> None:
    """An op onnxruntime does not know is refused here, naming it, rather than deep inside a session.

    With custom-op libraries given, their ops cannot be listed beforehand: onnxruntime judges.
    """
    from onnxviz.runtime import known_ops

    if custom_ops:
        return
    local = {(f.domain, f.name) for f in model.functions}
    for node in model.graph.node:
        key = ("" if node.domain == "ai.onnx" else node.domain, node.op_type)
        if key in local or key in known_ops():
            continue
        if not node.domain or node.domain == "ai.onnx":
            continue  # a misspelt standard op: onnx.checker and onnxruntime say so themselves
        raise UnsupportedOpError(
            f"Node '{node.name}' uses the custom op {node.domain}::{node.op_type}, which the installed "
            "onnxruntime does not know.",
            "Register the library that implements it with --custom-ops LIBRARY (onnxruntime-extensions: "
            "`python -c 'import onnxruntime_extensions as e; print(e.get_library_path())'`).",
        )


def _upgrade_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnx import version_converter

    for target in (UPGRADE_OPSET, 11, MIN_OPSET_FOR_SWITCHES):
        try:
            converted = version_converter.convert_version(model, target)
            onnx.checker.check_model(converted)
            return converted
        except Exception:
            continue
    raise ModelLoadError(
        f"The model uses opset {default_opset(model)}, which has no MaxPool indices, and could not be "
        f"upgraded to opset {MIN_OPSET_FOR_SWITCHES}+.",
        "Upgrade it with onnx.version_converter, or re-export it with a newer opset.",
    )


def _topological_order(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    available = {t.name for t in graph.initializer} | {i.name for i in graph.input} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        progressed = []
        rest = []
        for node in pending:
            (progressed if all(t in available for t in node.input) else rest).append(node)
        if not progressed:
            missing = sorted({t for n in rest for t in n.input if t not in available})[:5]
            raise ModelLoadError(
                f"The graph is not a DAG or uses undefined tensors: {', '.join(missing)}.",
                "Re-export the model.",
            )
        for node in progressed:
            available.update(node.output)
        ordered.extend(progressed)
        pending = rest
    return ordered


def _constant_node_value(node: onnx.NodeProto) -> np.ndarray:
    for a in node.attribute:
        if a.name == "value":
            return _tensor_array(a.t, f"the value of Constant node '{node.name}'")
        if a.name == "value_float":
            return np.array(a.f, dtype=np.float32)
        if a.name == "value_floats":
            return np.array(list(a.floats), dtype=np.float32)
        if a.name == "value_int":
            return np.array(a.i, dtype=np.int64)
        if a.name == "value_ints":
            return np.array(list(a.ints), dtype=np.int64)
    raise ModelLoadError(f"Constant node '{node.name}' has no value onnxviz can read.")


def _shape_reader_value(node: onnx.NodeProto, shape: tuple[int, ...]) -> np.ndarray:
    """What ``Shape`` (with its ``start``/``end``) or ``Size`` returns for a tensor of ``shape``."""
    if node.op_type == "Size":
        return np.array(int(np.prod(shape)), np.int64)
    start, end = node_attr(node, "start", 0), node_attr(node, "end", None)
    return np.array(shape[start:end], np.int64)


def _tensor_array(tensor: onnx.TensorProto, what: str) -> np.ndarray:
    """A TensorProto's values; data that does not fill its dims (a truncated file) is an error."""
    try:
        return numpy_helper.to_array(tensor)
    except Exception as exc:  # numpy's reshape or onnx's dtype lookup, depending on the defect
        raise InvalidModelError(
            f"The data of {what} does not match its declared shape {list(tensor.dims)} ({exc}).",
            "The file is truncated or corrupt; export it again.",
        ) from None


def _evaluate_node(evaluator_cls, node: onnx.NodeProto, constants: dict[str, np.ndarray], opset: int):
    """The node's outputs for constant inputs: ONNX's reference evaluator, or onnxruntime for the
    ops the evaluator lacks at this opset (it has DequantizeLinear only from opset 19, so the
    weights of a QDQ model at opset 17 would otherwise stay unfolded)."""
    try:
        return _evaluate_with(evaluator_cls, node, constants, opset)
    except Exception:
        return _evaluate_with_onnxruntime(node, constants, opset)


def _evaluate_with_onnxruntime(node: onnx.NodeProto, constants: dict[str, np.ndarray], opset: int):
    import onnxruntime as ort

    from onnxviz.runtime import ir_version_for

    model = _single_node_model(node, constants, opset)
    model.ir_version = ir_version_for(opset)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {t: constants[t] for t in node.input if t})


def _single_node_model(node: onnx.NodeProto, constants: dict[str, np.ndarray], opset: int) -> onnx.ModelProto:
    helper = onnx.helper
    inputs = [
        helper.make_tensor_value_info(t, helper.np_dtype_to_tensor_dtype(constants[t].dtype), None)
        for t in dict.fromkeys(node.input)
        if t
    ]
    outputs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
    graph = helper.make_graph([node], "fold", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _evaluate_with(evaluator_cls, node: onnx.NodeProto, constants: dict[str, np.ndarray], opset: int):
    model = _single_node_model(node, constants, opset)
    return evaluator_cls(model).run(None, {t: constants[t] for t in node.input if t})


def _inferred_shapes(model: onnx.ModelProto, input_name: str, input_shape: tuple[int, ...]) -> dict:
    """ONNX shape inference with the input fixed; large weights enter as typed inputs, so the
    (possibly hundreds of MB) weight data is never copied or serialized for it."""
    light = onnx.ModelProto()
    light.CopyFrom(model) if _weight_bytes(model) < LIGHT_COPY_LIMIT else _copy_without_weights(model, light)
    del light.graph.value_info[:]
    for out in light.graph.output:
        out.type.tensor_type.ClearField("shape")
    for inp in light.graph.input:
        if inp.name == input_name:
            for dim, value in zip(inp.type.tensor_type.shape.dim, input_shape, strict=True):
                dim.Clear()
                dim.dim_value = value
    try:
        inferred = onnx.shape_inference.infer_shapes(light, strict_mode=False, data_prop=True)
    except Exception:
        return {}
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        known = vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims)
        if known and dims:
            shapes[vi.name] = tuple(d.dim_value for d in dims)
    return shapes


LIGHT_COPY_LIMIT = 1 << 20
SMALL_TENSOR_BYTES = 4096


def _weight_bytes(model: onnx.ModelProto) -> int:
    return sum(len(t.raw_data) for t in model.graph.initializer)


def _copy_without_weights(model: onnx.ModelProto, into: onnx.ModelProto) -> None:
    """Copy ``model`` into ``into`` with large initializers replaced by inputs of the same type."""
    into.CopyFrom(
        onnx.ModelProto(
            ir_version=model.ir_version, opset_import=model.opset_import, graph=onnx.GraphProto(name=model.graph.name)
        )
    )
    graph = into.graph
    graph.node.extend(model.graph.node)
    graph.output.extend(model.graph.output)
    listed = {i.name for i in model.graph.input}
    graph.input.extend(model.graph.input)
    for tensor in model.graph.initializer:
        if len(tensor.raw_data) <= SMALL_TENSOR_BYTES and not tensor.external_data:
            graph.initializer.append(tensor)
            continue
        typed = onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))
        (graph.value_info if tensor.name in listed else graph.input).append(typed)


def _shapes_from_run(
    model: onnx.ModelProto,
    input_name: str,
    input_shape: tuple[int, ...],
    wanted: list[str],
    custom_ops: tuple[str, ...] = (),
) -> dict[str, tuple[int, ...]]:
    """Real shapes from one onnxruntime run on zeros, for tensors shape inference left open."""
    import onnxruntime as ort

    from onnxviz.runtime import session_options

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in sorted(wanted))
    options = session_options(custom_ops)
    try:
        session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
        values = session.run(None, {input_name: np.zeros(input_shape, np.float32)})
    except Exception as exc:  # onnxruntime raises its own untyped exceptions for any invalid graph
        raise InvalidModelError(
            f"onnxruntime cannot run the model to infer its tensor shapes: {runtime_message(exc)}",
            "The graph is invalid as onnxruntime reads it (an attribute, a shape or a type that does not fit); "
            "re-export the model, or check that onnxruntime.InferenceSession loads and runs it.",
        ) from None
    return {t: tuple(v.shape) for t, v in zip(sorted(wanted), values, strict=True)}


ALIAS_PREFIX = {"Conv": "conv", "MaxPool": "pool", "AveragePool": "pool", "Gemm": "fc", "MatMul": "fc"}
ALIAS_FOLLOW_OPS = frozenset({"BatchNormalization", "Identity", "Dropout"})


def _name_layers(graph: ModelGraph) -> list[Layer]:
    """Aliases in topological order; ``convN`` names the rectified output, as in the paper."""
    counters: dict[str, int] = {}
    layers: list[Layer] = []
    activated = _composite_activations(graph)
    for node in graph.nodes:
        if not node.output or node.output[0] not in graph.signal:
            continue
        prefix = ALIAS_PREFIX.get(node.op_type) or ("relu" if node.op_type == "Relu" else None)
        if prefix is None:
            continue
        counters[prefix] = counters.get(prefix, 0) + 1
        tensor = node.output[0]
        if prefix == "conv":
            tensor = _follow_to_activation(graph, tensor, activated)
        elif prefix == "fc":
            tensor = _follow_bias_add(graph, tensor)
        layers.append(Layer(f"{prefix}{counters[prefix]}", node.name, node.op_type, tensor))
    return layers


def _single_consumer(graph: ModelGraph, tensor: str) -> onnx.NodeProto | None:
    users = graph.consumers.get(tensor, [])
    if len(users) == 1 and tensor not in graph.output_names:
        return users[0]
    return None


def _composite_activations(graph: ModelGraph) -> dict[str, str]:
    """Input -> output of each activation written as several nodes (SiLU as x·σ(x)…) that is the
    only use of its input, so ``convN`` means the activated output there too."""
    activated = {}
    for group in find_composites(graph):
        users = graph.consumers.get(group.input, [])
        if group.input not in graph.output_names and all(u.name in group.nodes for u in users):
            activated[group.input] = group.output
    return activated


def _follow_to_activation(graph: ModelGraph, tensor: str, activated: dict[str, str]) -> str:
    current = tensor
    for _ in range(4):
        if current in activated:
            return activated[current]
        user = _single_consumer(graph, current)
        if user is None:
            break
        if user.op_type in ACTIVATION_OPS:
            return user.output[0]
        if user.op_type not in ALIAS_FOLLOW_OPS:
            break
        current = user.output[0]
    return tensor


def _follow_bias_add(graph: ModelGraph, tensor: str) -> str:
    """tf2onnx writes a dense layer as MatMul + Add(bias): ``fcN`` means the biased output."""
    user = _single_consumer(graph, tensor)
    if user is not None and user.op_type == "Add" and any(t in graph.constants for t in user.input):
        return user.output[0]
    return tensor
