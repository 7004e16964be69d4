"""The transposer: one builder for deconvnet, guided backprop and saliency.

It walks the forward graph backwards from the target tensor along the signal path, asks each
node's rule for the signal of its inputs, and sums the signals of tensors that fan out in the
forward graph (residual branches, Concat inputs reused…). The result is a standalone ONNX model:

    inputs : seed (K, *target per-image shape), and the forward tensors the rules read (batch 1)
    output : projection (K, *source per-image shape): the source is the graph input (in the model's
             input layout) unless the ``InverseSpec`` names a layer, for a layer gradient

K is 1 (a fixed dimension) where the K projections cannot ride on a batch axis (``_plan``); the
caller then runs the inverse once per projection (``Projector.run_inverse``).

The modes differ only inside the activation rules (see ``rules/activation.py``). In deconvnet
and guided mode, an activation written as several nodes (``onnxviz.graph.composite``) is inverted as
one activation from its input; saliency walks its nodes one by one, which is already exact.

From a layer source the walk visits only the nodes between the source and the target; their rules
are the same, so a node there that also reads a tensor the source does not feed (a residual's skip
branch) emits that input's signal too, and nothing reads it: those nodes are dropped at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx
from onnx import TensorProto

from onnxviz.errors import UnsupportedOpError, UsageError
from onnxviz.graph.composite import Composite, find_composites
from onnxviz.graph.model import ModelGraph
from onnxviz.inverse.context import BATCH, INVERSE_IR_VERSION, SEED, InverseContext
from onnxviz.inverse.rules import RULES
from onnxviz.inverse.rules.activation import composite_rule
from onnxviz.inverse.rules.normalization import uses_batch_statistics
from onnxviz.inverse.rules.pool import switches_name
from onnxviz.inverse.rules.reasons import refusal
from onnxviz.inverse.sparse import CHANNELS, emit_sparse_head, sparse_chain
from onnxviz.inverse.spec import InverseSpec

PROJECTION = "projection"


@dataclass
class InverseGraph:
    """An inverse model plus what the forward run must hand it."""

    model: onnx.ModelProto
    target: str
    mode: str
    forward_tensors: list[str]
    switches: dict[str, str]  # MaxPool node name -> tensor holding its argmax indices
    masks: dict[str, str] = field(default_factory=dict)  # mask the forward computes -> tensor it reads
    sparse: bool = False  # seed is (K, 1, h, w) plus the channel indices
    single: bool = False  # seed (and projection) of batch 1: the K projections are run one at a time


def signal_path(graph: ModelGraph, target: str, source: str | None = None) -> list[onnx.NodeProto]:
    """Nodes between ``source`` (the input by default) and ``target`` that carry the source's
    signal, in topological order: the walk stops at the source and never enters a branch the
    source does not feed."""
    start = source or graph.input_name
    fed = downstream_of(graph, start)
    on_path: set[str] = set()
    stack = [target]
    seen: set[str] = set()
    while stack:
        tensor = stack.pop()
        if tensor in seen or tensor == start:
            continue
        seen.add(tensor)
        node = graph.producer.get(tensor)
        if node is None or tensor not in fed:
            continue
        on_path.add(node.name)
        stack.extend(node.input[i] for i in graph.signal_inputs(node))
    return [n for n in graph.nodes if n.name in on_path]


def downstream_of(graph: ModelGraph, source: str) -> set[str]:
    """The signal tensors computed from ``source`` (with it): from the input, the whole signal."""
    fed = {source}
    for node in graph.nodes:
        if any(node.input[i] in fed for i in graph.signal_inputs(node)):
            fed.update(o for o in node.output if o in graph.signal)
    return fed


def build_inverse(graph: ModelGraph, spec: InverseSpec) -> InverseGraph:
    """Build the inverse ``spec`` describes. With ``spec.sparse``, and where the target is a conv
    layer's (activated) output, the seed is (K, 1, h, w) plus the K channel indices (see
    ``sparse.py``). With ``spec.paired`` the forward tensors the inverse reads take any batch.

    Every node on the path is checked by its rule before anything is emitted (``_plan``)."""
    plan = _plan(graph, spec)
    ctx = plan.ctx
    grads: dict[str, list[str]] = {spec.target: [SEED]}
    if plan.chain is not None:
        grads = {plan.chain[-1].input[0]: [emit_sparse_head(ctx, plan.chain, SEED, CHANNELS)]}
    switches: dict[str, str] = {}
    for node in reversed(plan.path):
        if node.name in plan.skipped:
            continue
        out_grads = [_sum(ctx, node, grads.get(o)) for o in node.output]
        if all(g is None for g in out_grads):
            continue
        ctx.begin(node)
        if node.name in plan.composites:
            group = plan.composites[node.name]
            grads.setdefault(group.input, []).append(composite_rule(ctx, group, out_grads[0]))
            continue
        in_grads = RULES[node.op_type].apply(ctx, node, out_grads)
        if node.op_type == "MaxPool":
            switches[node.name] = switches_name(node)
        if node.op_type == "MaxUnpool" and node.input[1] in graph.producer:  # it reads a MaxPool's indices
            switches[graph.producer[node.input[1]].name] = node.input[1]
        for tensor, g in zip(node.input, in_grads, strict=False):
            if g is not None and tensor in graph.signal:
                grads.setdefault(tensor, []).append(g)
    final = _sum(ctx, plan.path[0], grads.get(plan.source))
    if final is None:
        raise UnsupportedOpError(f"No signal reaches {_spelled(graph, spec)} from '{spec.target}'.")
    ctx.op("Identity", [final], outputs=[PROJECTION], name="projection")
    _drop_unread(ctx)
    switches = {node: tensor for node, tensor in switches.items() if tensor in ctx.forward_inputs}
    masks = {name: tensor for name, tensor in ctx.masks.items() if name in ctx.forward_inputs}
    sparse_head = plan.chain is not None
    model = _assemble(ctx, spec, plan.source, sparse=sparse_head, paired=spec.paired and not ctx.single)
    forward_tensors = list(ctx.forward_inputs)
    return InverseGraph(
        model, spec.target, spec.rule, forward_tensors, switches, masks, sparse=sparse_head, single=ctx.single
    )


def unsupported_reason(graph: ModelGraph, spec: InverseSpec) -> str | None:
    """Why ``spec`` cannot be built (the message ``build_inverse`` would raise), or None: the
    rules' checks only, nothing emitted, so ``layers`` and ``check`` can ask it of every layer."""
    try:
        _plan(graph, spec)
    except UnsupportedOpError as exc:
        return str(exc)
    return None


@dataclass
class _Plan:
    """What the walk will visit, decided (and every rule's check passed) before emitting."""

    ctx: InverseContext
    source: str  # the tensor whose signal the inverse outputs: the graph input or the spec's layer
    path: list[onnx.NodeProto]
    chain: list[onnx.NodeProto] | None  # the channel-sparse head's nodes, target first
    composites: dict[str, Composite]
    skipped: set[str]


def _plan(graph: ModelGraph, spec: InverseSpec) -> _Plan:
    """The plan for K projections at once, or, where the rules refuse it (an attention block merges
    the batch axis into one they cannot follow), for one projection at a time (``ctx.single``): then
    the signal has the forward's shapes and no axis is the batch. The first refusal is the one
    reported when both fail, and where the target's axis 0 is not the batch of 1 the seeds are
    copies of (a conv over a moved batch axis), the first refusal stands."""
    try:
        return _plan_once(graph, spec, single=False)
    except UnsupportedOpError as batched_refusal:
        if graph.shapes(spec.input_shape).get(spec.target, (None,))[:1] != (1,):
            raise
        try:
            return _plan_once(graph, spec, single=True)
        except UnsupportedOpError:
            raise batched_refusal from None


def _plan_once(graph: ModelGraph, spec: InverseSpec, single: bool) -> _Plan:
    shapes = dict(graph.shapes(spec.input_shape))
    ctx = InverseContext(
        graph=graph,
        shapes=shapes,
        mode=spec.rule,
        form=spec.form,
        lrn=spec.lrn,
        single=single,
        paired=spec.paired,
        source=spec.source or graph.input_name,
    )
    if spec.source is not None:
        _check_source(graph, spec.target, spec.source)
    path = signal_path(graph, spec.target, spec.source)
    if not path:
        raise UnsupportedOpError(f"'{spec.target}' is not computed from the image input.")
    chain = sparse_chain(graph, spec.target) if spec.sparse else None
    if chain is not None and any(uses_batch_statistics(graph, n) for n in chain):
        chain = None  # batch statistics mix the positions of a channel: the dense walk handles them
    if chain is not None and not {n.name for n in chain} <= {n.name for n in path}:
        chain = None  # the source is inside the head: the head would walk past it
    head = {n.name for n in chain} if chain is not None else set()
    composites = _composites(graph, path, spec.rule, head)
    inside = {name for group in composites.values() for name in group.nodes[:-1]}
    for node in reversed(path):
        if node.name in composites or node.name in inside:
            continue  # every composite kind has its derivative (``COMPOSITE_DERIVATIVES``)
        rule = RULES.get(node.op_type)
        if rule is None:
            raise _no_rule(graph, node, spec)
        reason = rule.check(ctx, node)  # the sparse head's nodes need what their rules need
        if reason is not None:
            raise ctx.unsupported(node, reason)
    return _Plan(ctx, spec.source or graph.input_name, path, chain, composites, head | inside)


def _check_source(graph: ModelGraph, target: str, source: str) -> None:
    """A layer source must carry the image's signal and feed the target: otherwise the gradient
    there is not defined (a weight, an unknown name) or is zero everywhere."""
    if source not in graph.signal:
        raise UsageError(
            f"The source '{source}' is not a tensor computed from the image input, so no gradient "
            f"of '{target}' can be taken with respect to it.",
            "Pick a layer's tensor on the path to the target (see `onnxviz layers MODEL`).",
        )
    if source == target or target not in downstream_of(graph, source):
        raise UsageError(
            f"The source '{source}' is not upstream of the target '{target}': the target is not computed from it.",
            "Pick a source between the input and the target (see `onnxviz layers MODEL`).",
        )


def _composites(graph: ModelGraph, path: list[onnx.NodeProto], mode: str, skipped: set[str]) -> dict[str, Composite]:
    """Composite activations wholly on the path, by the name of their last node (not in saliency
    mode, where their nodes' own exact rules already give the gradient)."""
    if mode == "saliency":
        return {}
    on_path = [n for n in path if n.name not in skipped]
    return {group.nodes[-1]: group for group in find_composites(graph, on_path)}


def _sum(ctx: InverseContext, node: onnx.NodeProto, terms: list[str] | None) -> str | None:
    """The signals of a tensor read by several nodes, summed: two (a residual block's branch and
    skip) with Add, which onnxruntime's CPU provider runs vectorised (15 ms against Sum's 26 ms for
    ResNet-50's sixteen at batch 8), more with one Sum."""
    if not terms:
        return None
    if len(terms) == 1:
        return terms[0]
    ctx.begin(node)
    return ctx.op("Add" if len(terms) == 2 else "Sum", terms)


def _drop_unread(ctx: InverseContext) -> None:
    """Remove the emitted nodes whose results never reach the projection, with the weights and
    forward tensors only they read (from a layer source: the signal of a branch the source does
    not feed, which a rule on the path emits for its other input)."""
    read = {PROJECTION}
    kept = []
    for node in reversed(ctx.nodes):
        if any(o in read for o in node.output):
            kept.append(node)
            read.update(i for i in node.input if i)
    ctx.nodes[:] = kept[::-1]
    ctx.initializers = {name: tensor for name, tensor in ctx.initializers.items() if name in read}
    ctx.forward_inputs = {name: info for name, info in ctx.forward_inputs.items() if name in read}
    ctx.inputs = {name: info for name, info in ctx.inputs.items() if name in read}


def _assemble(ctx: InverseContext, spec: InverseSpec, source: str, sparse: bool, paired: bool) -> onnx.ModelProto:
    target_shape = list(ctx.shape(spec.target)[1:])
    if sparse:
        target_shape[0] = 1
    batch = 1 if ctx.single else BATCH
    if sparse:
        ctx.input(CHANNELS, [batch], TensorProto.INT64, leading=True)
    ctx.input(SEED, [batch, *target_shape], leading=True)
    ctx.output(PROJECTION, [batch, *ctx.shape(source)[1:]])
    if paired:
        for declared in ctx.forward_inputs.values():
            dims = declared.type.tensor_type.shape.dim
            if dims:
                dims[0].dim_param = BATCH
    ctx.name = f"inverse of {spec.target}"
    model = ctx.model(ir_version=INVERSE_IR_VERSION)
    meta = model.metadata_props.add()
    meta.key, meta.value = "onnxviz.mode", ctx.mode
    return model


def _spelled(graph: ModelGraph, spec: InverseSpec) -> str:
    """The source as a message names it: "the input", or the layer's tensor."""
    return "the input" if spec.source in (None, graph.input_name) else f"the source '{spec.source}'"


def _no_rule(graph: ModelGraph, node: onnx.NodeProto, spec: InverseSpec) -> UnsupportedOpError:
    ancestors = graph.ancestors(t for t in node.input if t)
    candidates: dict[str, str] = {}  # tensor -> the first alias naming it (conv3 rather than relu3)
    for layer in graph.layers:
        producer = graph.producer.get(layer.tensor)
        if producer is not None and producer.name in ancestors:
            candidates.setdefault(layer.tensor, layer.alias)
    last = list(candidates.values())[-1] if candidates else None
    hint = f"Project from '{last}' or an earlier layer instead." if last else "Project from an earlier layer."
    reason = refusal(node.op_type)
    why = f": {reason}" if reason else ""
    return UnsupportedOpError(
        f"Unsupported op {node.op_type} (node '{node.name}') on the path from '{spec.target}' back to "
        f"{_spelled(graph, spec)}: onnxviz has no inverse rule for it{why}.",
        hint,
    )
