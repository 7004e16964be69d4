"""One ONNX model from three: the forward graph (switches on, the tensors the inverse reads
exposed, batch dynamic), the generated inverse graph (paired: row k's seed goes back through image
k's own switches) and the method's arithmetic (``heads``).

The inverse reads the forward's tensors under their own names, so fusing is concatenating node
lists: the inverse's forward inputs become the forward's tensors, its seed the head's one-hot of
each image's target, and its weights the forward's own initializers (shared by name, never
copied). The inverse is written at opset 17; where the model's opset is newer the inverse is
brought up to it by onnx's version converter, and an older model is brought up to 17, so the file
imports one default-domain opset, the model's own unless the inverse needs more.

ig unrolls its steps as a batch: the forward runs once on the images followed by their path points
(N + N·steps rows); the model's outputs and the target are read from the first N rows, the seeds
of the points repeat their own image's seed and the images' own rows are seeded with zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, version_converter

from onnxviz.analyses.cam.layers import TO_NCHW, CamLayer
from onnxviz.analyses.export import heads
from onnxviz.analyses.export.heads import Head
from onnxviz.analyses.export.targets import (
    BOX_CLASS_INPUT,
    BOX_INPUT,
    MASK_CLASS_INPUT,
    MASK_INPUT,
    TARGET_INPUT,
    explainer_target,
)
from onnxviz.analyses.export.weights import unshared_transposed_weights
from onnxviz.errors import ExportError
from onnxviz.graph.attributes import default_opset
from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import SEED, InverseSpec, build_inverse
from onnxviz.inverse.builder import PROJECTION
from onnxviz.inverse.context import INVERSE_OPSET
from onnxviz.passes.rewrite import forward_model
from onnxviz.runtime.projector import seeded_tensor

SCORE_OUTPUT = "target_score"
ATTRIBUTION_OUTPUT = "attribution"


@dataclass(frozen=True)
class Recipe:
    """What one explainer computes: the method, its layer (cams) or inverse rule (the others), its
    target (``targets.TARGETS``), and ig's steps and baseline (shaped like one input, batch axis 1)."""

    method: str
    rule: str
    layer: CamLayer | None
    target: str
    input_shape: tuple[int, ...]
    height_axis: int
    steps: int = 0
    baseline: np.ndarray | None = None


def build_explainer(graph: ModelGraph, recipe: Recipe) -> onnx.ModelProto:
    """The fused explainer of ``recipe`` for ``graph``."""
    target = seeded_tensor(graph, graph.output_names[0])
    source = None if recipe.layer is None else recipe.layer.tensor
    spec = InverseSpec(target, recipe.input_shape, source=source, rule=recipe.rule, form="standard", paired=True)
    inverse = build_inverse(graph, spec)
    if inverse.single:
        raise ExportError(
            f"The inverse of '{target}' runs one image at a time here (a block merges the batch axis with "
            "another), so it cannot be paired with a forward run on a batch inside one model.",
            "Export from an earlier layer, or explain this model with `onnxviz cam` / `onnxviz attribute`.",
        )
    exposed = [*graph.output_names, target, *([source] if source else []), *inverse.forward_tensors]
    shapes = graph.shapes(recipe.input_shape)
    forward = forward_model(graph, list(dict.fromkeys(exposed)), inverse.switches, shapes, inverse.masks)
    _check_batches(forward, graph.input_name, recipe.input_shape)
    forward, inverse_model = _same_opset(forward, inverse.model)
    return _Fusion(graph, recipe, forward, inverse_model, target).model()


def _check_batches(forward: onnx.ModelProto, input_name: str, input_shape: tuple[int, ...]) -> None:
    """The forward run on two images gives two rows, or why not: an exporter wrote batch 1 into a
    node that the dynamic-batch pass could not free (the node is named by onnxruntime's message)."""
    pair = np.zeros((2, *input_shape[1:]), np.float32)
    try:
        quiet = ort.SessionOptions()
        quiet.log_severity_level = 4  # the refusal is reported below, once, as onnxviz's own error
        session = ort.InferenceSession(forward.SerializeToString(), quiet, providers=["CPUExecutionProvider"])
        rows = {value.shape[0] for value in session.run(None, {input_name: pair}) if value.ndim}
    except Exception as error:  # onnxruntime's refusals are plain exceptions carrying the node's name
        raise ExportError(
            f"The model does not run on a batch of images, so the explainer cannot take one: {error}",
            "Re-export the model with a dynamic batch axis (torch.onnx.export's dynamic_shapes or dynamic_axes).",
        ) from error
    if rows != {2}:
        raise ExportError(
            "The model gives one row for a batch of two images somewhere on the way to its outputs (a "
            "batch size of 1 written into the graph), so the explainer cannot take a batch.",
            "Re-export the model with a dynamic batch axis (torch.onnx.export's dynamic_shapes or dynamic_axes).",
        )


def _same_opset(forward: onnx.ModelProto, inverse: onnx.ModelProto) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """Both graphs at one default-domain opset: the model's, or the inverse's where the model's is older."""
    foreign = sorted({n.domain for n in forward.graph.node if n.domain not in ("", "ai.onnx")})
    if foreign:
        raise ExportError(
            f"The model uses operators of the domain(s) {', '.join(foreign)}, which a portable explainer "
            "may not hold: only default-domain (ai.onnx) operators run everywhere.",
            "Export the model without custom operators.",
        )
    opset = default_opset(forward)
    try:
        if opset < INVERSE_OPSET:
            forward = version_converter.convert_version(forward, INVERSE_OPSET)
        elif opset > INVERSE_OPSET:
            inverse = version_converter.convert_version(inverse, opset)
    except Exception as error:  # the converter raises bare RuntimeErrors naming the adapter
        raise ExportError(
            f"The graphs could not be brought to one opset ({max(opset, INVERSE_OPSET)}): {error}",
            "Convert the model to opset 17 or later with onnx.version_converter first.",
        ) from error
    return forward, inverse


class _Fusion:
    """The forward, the head's seed, the inverse and the head's map as one graph."""

    def __init__(
        self, graph: ModelGraph, recipe: Recipe, forward: onnx.ModelProto, inverse: onnx.ModelProto, target: str
    ) -> None:
        self.graph, self.recipe, self.forward, self.inverse, self.target = graph, recipe, forward, inverse, target
        self.input = graph.input_name
        names = {t for n in (*forward.graph.node, *inverse.graph.node) for t in (*n.input, *n.output)}
        names |= {i.name for i in (*forward.graph.initializer, *inverse.graph.initializer)}
        names |= {i.name for i in (*forward.graph.input, *forward.graph.output)}
        names |= {TARGET_INPUT, BOX_INPUT, BOX_CLASS_INPUT, MASK_INPUT, MASK_CLASS_INPUT}
        names |= {SCORE_OUTPUT, ATTRIBUTION_OUTPUT}
        self.head = Head(default_opset(forward), names)
        self.renamed: dict[str, str] = {}  # forward tensors computed on every row (ig's path)
        self.chosen = explainer_target(recipe.target, target, graph.shapes(recipe.input_shape)[target])
        image = next(i for i in forward.graph.input if i.name == self.input)
        self.batch = image.type.tensor_type.shape.dim[0].dim_param or "N"  # the input's own name for it

    def model(self) -> onnx.ModelProto:
        head, recipe = self.head, self.recipe
        self.chosen.declare(head, self.batch)
        if recipe.method == "ig":
            score, attribution = self._integrated_gradients()
        else:
            seed, score = self.chosen.seed(head, self.target, self.chosen.fix(head, self.target))
            attribution = self._attribution(self._inverse(seed))
        head.op("Identity", [score], outputs=[SCORE_OUTPUT])
        head.op("Identity", [attribution], outputs=[ATTRIBUTION_OUTPUT])
        return self._assembled()

    def _integrated_gradients(self) -> tuple[str, str]:
        """(score, attribution) of ig: the forward on the images and their path points at once,
        the target fixed on the images' rows, the points seeded with their own image's fixed
        target at their own values, the images' own rows with zeros."""
        head, recipe, x = self.head, self.recipe, self.input
        baseline = head.const(recipe.baseline.astype(np.float32), "baseline")
        sample = tuple(recipe.input_shape[1:])
        points = heads.ig_path(head, x, baseline, recipe.steps, sample)
        self._run_forward_on(head.op("Concat", [x, points], axis=0))
        count = head.batch_of(x)
        rows = {t: self._image_rows(t, count) for t in dict.fromkeys([*self.graph.output_names, self.target])}
        fixed = self.chosen.fix(head, rows[self.target][0])
        seed, score = self.chosen.seed(head, rows[self.target][0], fixed)
        repeated = [heads.repeated_rows(head, t, recipe.steps) for t in fixed]
        paths, _ = self.chosen.seed(head, rows[self.target][1], repeated)
        seed = head.op("Concat", [head.op("Mul", [seed, head.scalar(0.0, "zero")]), paths], axis=0)
        _, gradients = head.split_rows(self._inverse(seed), count)
        return score, heads.ig_attribution(head, gradients, x, baseline, recipe.steps, sample)

    def _run_forward_on(self, every: str) -> None:
        """The forward reads ``every`` instead of the input; the model's outputs (read by the caller
        from the image rows) are renamed where the forward computes them on every row."""
        self.renamed[self.input] = every
        for name in self.graph.output_names:
            self.renamed[name] = self.head.fresh(f"{name}/all_rows")

    def _image_rows(self, tensor: str, count: str) -> tuple[str, str]:
        """(the images' own rows, the points' rows) of a forward tensor computed on every row; a
        model output keeps its name."""
        named = tensor if tensor in self.graph.output_names else None
        return self.head.split_rows(self.renamed.get(tensor, tensor), count, named)

    def _inverse(self, seed: str) -> str:
        """The inverse's nodes, reading ``seed``; its projection under a fresh name."""
        projection = self.head.fresh("signal")
        names = {**self.renamed, SEED: seed, PROJECTION: projection}
        self.inverse_nodes = [_renamed(node, names, outputs=True) for node in self.inverse.graph.node]
        return projection

    def _attribution(self, signal: str) -> str:
        recipe, head = self.recipe, self.head
        if recipe.layer is None:
            return head.op("Mul", [self.input, signal]) if recipe.method == "inputxgrad" else signal
        a, g = recipe.layer.tensor, signal
        if recipe.layer.nhwc:
            a, g = (head.op("Transpose", [t], perm=list(TO_NCHW)) for t in (a, g))
        size = (recipe.input_shape[recipe.height_axis], recipe.input_shape[recipe.height_axis + 1])
        return heads.cam_heatmap(head, recipe.method, a, g, size)

    def _assembled(self) -> onnx.ModelProto:
        forward, head = self.forward.graph, self.head
        weights = {i.name for i in forward.initializer}
        unshared_transposed_weights(list(forward.node), self.inverse_nodes, weights, head)
        nodes = [_renamed(n, self.renamed, outputs=True) for n in forward.node] + head.nodes + self.inverse_nodes
        initializers = list(forward.initializer)
        known = {i.name for i in initializers} | {o for n in forward.node for o in n.output}
        initializers += [i for i in self.inverse.graph.initializer if i.name not in known]
        initializers += list(head.initializers.values())
        inputs = [i for i in forward.input if i.name not in known]
        inputs += list(head.inputs.values())
        outputs = [o for o in forward.output if o.name in self.graph.output_names]
        for output in outputs:
            dims = output.type.tensor_type.shape.dim
            if dims and dims[0].dim_param:
                dims[0].dim_param = self.batch
        extent = [self.batch, *self._attribution_shape()]
        outputs += [
            helper.make_tensor_value_info(SCORE_OUTPUT, TensorProto.FLOAT, [self.batch]),
            helper.make_tensor_value_info(ATTRIBUTION_OUTPUT, TensorProto.FLOAT, extent),
        ]
        ordered = _uniquely_named(_in_order(nodes, inputs, initializers))
        fused = helper.make_graph(ordered, f"explainer ({self.recipe.method})", inputs, outputs)
        fused.initializer.extend(initializers)
        model = helper.make_model(fused, opset_imports=list(self.forward.opset_import), producer_name="onnxviz")
        model.ir_version = max(self.forward.ir_version, self.inverse.ir_version)
        model.metadata_props.extend(self.forward.metadata_props)
        for key, value in (("onnxviz.explainer", self.recipe.method), ("onnxviz.target", self.target)):
            model.metadata_props.add(key=key, value=value)
        return model

    def _attribution_shape(self) -> list[int]:
        shape = self.recipe.input_shape
        if self.recipe.layer is None:
            return list(shape[1:])
        return [shape[self.recipe.height_axis], shape[self.recipe.height_axis + 1]]


def _in_order(
    nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], initializers: list[onnx.TensorProto]
) -> list[onnx.NodeProto]:
    """The nodes in an order in which each runs after what it reads (the head's ig path runs before
    the forward, its seed between the forward and the inverse): a stable topological sort."""
    ready = {i.name for i in inputs} | {i.name for i in initializers} | {""}
    waiting, ordered = list(nodes), []
    while waiting:
        runnable = [n for n in waiting if all(t in ready for t in n.input)]
        if not runnable:
            missing = sorted({t for n in waiting for t in n.input if t not in ready})[:3]
            raise ExportError(f"The fused graph reads tensors nothing computes: {', '.join(missing)}.")
        for node in runnable:
            ready.update(node.output)
        ordered += runnable
        taken = {id(n) for n in runnable}
        waiting = [n for n in waiting if id(n) not in taken]
    return ordered


def _renamed(node: onnx.NodeProto, names: dict[str, str], outputs: bool) -> onnx.NodeProto:
    """A copy of ``node`` reading (and, with ``outputs``, writing) tensors under their new names."""
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    copy.input[:] = [names.get(t, t) for t in node.input]
    if outputs:
        copy.output[:] = [names.get(t, t) for t in node.output]
    return copy


def _uniquely_named(nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """Node names made unique (a forward node and an inverse node may share one), in order."""
    seen: set[str] = set()
    for node in nodes:
        name, count = node.name, 1
        while name in seen:
            count += 1
            name = f"{node.name}_{count}"
        node.name = name
        seen.add(name)
    return nodes
