"""ModelGraph: the one in-memory view of an ONNX file that every pipeline works from.

Loading does the work that differs between exporters once, so that the rest of onnxviz sees
one kind of graph. Each step is a module of its own: ``loading`` (file, external data, versions,
custom ops, fp16/QOperator), ``folding`` (constant subgraphs and shape arithmetic), ``signal``
(which tensors depend on the image), ``geometry`` (explicit pads), ``shapes`` (static shapes)
and ``aliases`` (``conv3``…). This module keeps the graph, its indexes and its lookups.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from onnxviz.errors import UnknownNodeError, UsageError
from onnxviz.graph.aliases import Layer, name_layers
from onnxviz.graph.attributes import default_opset, node_attr, tensor_array
from onnxviz.graph.folding import fold_constants, fold_shape_arithmetic
from onnxviz.graph.geometry import auto_padded, make_pads_explicit
from onnxviz.graph.loading import normalise, read_model
from onnxviz.graph.ops import (
    SHAPE_READER_OPS,
)
from onnxviz.graph.shapes import inferred_shapes, static_shapes
from onnxviz.graph.signal import mark_signal
from onnxviz.graph.strided import gathers_as_reshapes
from onnxviz.graph.topology import topological_order, upstream_nodes

# What a graph made by ``ModelGraph.from_skeleton`` only has once its weights are read.
WEIGHTED_FIELDS = frozenset({"model", "constants", "_shape_cache"})


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
    metadata: dict[str, str] = field(default_factory=dict)  # the model's metadata_props
    digest: str | None = None  # the content it was read from, where known (``runtime/warm_start.py``)
    _shape_cache: dict[tuple[int, ...], dict[str, tuple[int, ...]]] = field(default_factory=dict)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, custom_ops: tuple[str, ...] = (), data: bytes | None = None) -> ModelGraph:
        """Read, normalise and index the ONNX file at ``path``; ``data``: its bytes, where the
        caller has read them already (``runtime/warm_start.load_graph``)."""
        path = Path(path)
        return cls.from_proto(read_model(path, data), path, custom_ops)

    @classmethod
    def from_proto(
        cls, model: onnx.ModelProto, path: Path | None = None, custom_ops: tuple[str, ...] = ()
    ) -> ModelGraph:
        """Normalise and index an in-memory model (changed in place)."""
        loaded = normalise(model, custom_ops)
        graph = cls(
            model=loaded.model,
            path=path,
            original_opset=loaded.original_opset,
            custom_ops=tuple(custom_ops),
            notes=loaded.notes,
            half_precision=loaded.half_precision,
            metadata={p.key: p.value for p in loaded.model.metadata_props},
        )
        graph._index(loaded.arrays)
        return graph

    # -- a repeat run: the loaded graph without its weights ------------------------------------

    def facts(self) -> dict:
        """What indexing found that ``from_skeleton`` cannot see without the weights, as JSON."""
        return {
            "original_opset": self.original_opset,
            "input_name": self.input_name,
            "input_dims": list(self.input_dims),
            "output_names": self.output_names,
            "signal": sorted(self.signal),
            "layers": [[la.alias, la.node, la.op_type, la.tensor] for la in self.layers],
            "notes": self.notes,
            "half_precision": self.half_precision,
        }

    @classmethod
    def from_skeleton(
        cls,
        skeleton: onnx.ModelProto,
        facts: dict,
        path: Path,
        custom_ops: tuple[str, ...],
        load_weights: Callable[[onnx.ModelProto], None],
    ) -> ModelGraph:
        """A graph loaded before, from ``skeleton`` (its ``model`` once loaded and indexed, with
        the large initializers left as references to be read) and its ``facts``.

        It answers what a repeat run asks first (``resolve``, ``layout``, shapes of the input,
        metadata) from these alone. ``model``, ``constants`` and ``shapes`` need the weights:
        the first use of one calls ``load_weights(skeleton)``, which fills them in place, and
        indexes again (indexing a graph it has indexed before changes nothing in it), so every
        node is the same object before and after."""
        graph = cls.__new__(cls)
        graph.__dict__.update(
            path=path,
            original_opset=int(facts["original_opset"]),
            input_name=str(facts["input_name"]),
            input_dims=tuple(facts["input_dims"]),
            output_names=[str(o) for o in facts["output_names"]],
            signal=set(facts["signal"]),
            layers=[Layer(*layer) for layer in facts["layers"]],
            custom_ops=tuple(custom_ops),
            notes=[str(note) for note in facts["notes"]],
            half_precision=bool(facts["half_precision"]),
            metadata={p.key: p.value for p in skeleton.metadata_props},
            _pending=(skeleton, load_weights),
        )
        graph.nodes = topological_order(skeleton.graph)
        graph._link()
        return graph

    def __getattr__(self, name: str):
        """Only reached for an attribute not set: those a graph from ``from_skeleton`` fills in
        when first used."""
        pending = self.__dict__.get("_pending")
        if pending is None or name not in WEIGHTED_FIELDS:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        skeleton, load_weights = pending
        load_weights(skeleton)
        del self.__dict__["_pending"]
        self.model = skeleton
        self._shape_cache = {}
        self._index({})
        return getattr(self, name)

    # -- indexing -------------------------------------------------------------------------------

    def _index(self, arrays: dict[str, np.ndarray]) -> None:
        """Build the lookup tables, fold, mark the signal and name the layers; ``arrays`` holds
        initializer values already read (the rest are read here)."""
        g = self.model.graph
        self.nodes = topological_order(g)
        for i, node in enumerate(self.nodes):
            if not node.name:
                node.name = f"{node.op_type}_{i}"
        self._link()
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
        self.constants = {
            t.name: arrays[t.name] if t.name in arrays else tensor_array(t, f"initializer '{t.name}'")
            for t in g.initializer
        }
        fold_constants(self.nodes, self.constants, default_opset(self.model))
        self.signal = mark_signal(self.nodes, self.input_name, self.constants)
        if self._fold_shape_arithmetic():
            self.signal = mark_signal(self.nodes, self.input_name, self.constants)
        self._make_pads_explicit()
        if self._static_spatial_size() and any(n.op_type == "Gather" and n.input[0] in self.signal for n in self.nodes):
            shapes = self.shapes(self.concrete_input_shape())
            if gathers_as_reshapes(self.model, self.nodes, self.constants, self.signal, shapes):
                self._shape_cache.clear()
        self.layers = name_layers(self)

    def _link(self) -> None:
        self.producer = {o: n for n in self.nodes for o in n.output if o}
        self.consumers = {}
        for n in self.nodes:
            for t in n.input:
                if t:
                    self.consumers.setdefault(t, []).append(n)

    def _static_spatial_size(self) -> bool:
        return all(isinstance(d, int) and d > 0 for d in self.input_dims[1:])

    def _make_pads_explicit(self) -> None:
        """``auto_pad`` becomes explicit pads (see ``geometry.make_pads_explicit``) where the input
        size is static; the shapes cached so far were computed before, and are dropped."""
        if not auto_padded(self.nodes) or not self._static_spatial_size():
            return
        shapes = inferred_shapes(self.model, self.input_name, self.concrete_input_shape())
        shapes[self.input_name] = self.concrete_input_shape()
        make_pads_explicit(self.nodes, self.constants, shapes)
        self._shape_cache.clear()

    def _fold_shape_arithmetic(self) -> bool:
        """Fold the batch-independent arithmetic on the shapes of image tensors (see
        ``folding.fold_shape_arithmetic``); returns whether anything was folded."""
        reads_signal = any(n.op_type in SHAPE_READER_OPS and n.input and n.input[0] in self.signal for n in self.nodes)
        if not reads_signal or not self._static_spatial_size():
            return False
        try:
            single = self.shapes(self.concrete_input_shape())
        except Exception:
            return False  # shapes are unknowable without a run that fails: leave the graph as it is
        # ``single`` is the cached dict: the folded values' shapes enter it too, and stay cached
        return fold_shape_arithmetic(self.nodes, self.constants, self.signal, single, default_opset(self.model))

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
        shapes = static_shapes(
            self.model, self.nodes, self.input_name, input_shape, self.signal, self.constants, self.custom_ops
        )
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

    def code_layer(self) -> Layer:
        """The CNN code: the input of the last Gemm/MatMul on the signal path (AlexNet's fc7 after
        its ReLU, the pooled features of a ResNet), which invariance, correspondence and embed
        read by default. A net without a dense layer classifies with a 1×1 conv: its input then."""
        for op_types in (("Gemm", "MatMul"), ("Conv",)):
            for node in reversed(self.nodes):
                if node.op_type not in op_types or not node.output or node.output[0] not in self.signal:
                    continue
                tensor = node.input[self.signal_inputs(node)[0]]
                producer = self.producer.get(tensor)
                if producer is not None:
                    return self._layer_for_tensor(tensor, producer)
        raise UsageError(
            "This model has no dense or conv layer after the input, so it has no code layer.",
            "Name the layer with --node or --layers (see `onnxviz layers MODEL`).",
        )

    def conv_layers(self) -> list[Layer]:
        """The ``convN`` aliases in order: the paper's layers 1 … 5."""
        return [layer for layer in self.layers if layer.op_type == "Conv"]

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
