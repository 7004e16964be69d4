"""The transposer: one builder for deconvnet, guided backprop and saliency.

It walks the forward graph backwards from the target tensor along the signal path, asks each
node's rule for the signal of its inputs, and sums the signals of tensors that fan out in the
forward graph (residual branches, Concat inputs reused…). The result is a standalone ONNX model:

    inputs : seed (K, *target per-image shape), and the forward tensors the rules read (batch 1)
    output : projection (K, *input per-image shape), in the model's input layout

K is 1 (a fixed dimension) where the K projections cannot ride on a batch axis (``_plan``); the
caller then runs the inverse once per projection (``Projector.run_inverse``).

The modes differ only inside the activation rules (see ``rules/activation.py``). In deconvnet
and guided mode, an activation written as several nodes (``onnxviz.graph.composite``) is inverted as
one activation from its input; saliency walks its nodes one by one, which is already exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import TensorProto

from onnxviz.errors import UnsupportedOpError
from onnxviz.graph.composite import Composite, find_composites
from onnxviz.graph.model import ModelGraph
from onnxviz.inverse.context import BATCH, FORMS, INVERSE_IR_VERSION, MODES, SEED, InverseContext
from onnxviz.inverse.rules import RULES
from onnxviz.inverse.rules.activation import composite_rule
from onnxviz.inverse.rules.normalization import uses_batch_statistics
from onnxviz.inverse.rules.pool import switches_name
from onnxviz.inverse.sparse import CHANNELS, emit_sparse_head, sparse_chain

PROJECTION = "projection"


@dataclass
class InverseGraph:
    """An inverse model plus what the forward run must hand it."""

    model: onnx.ModelProto
    target: str
    mode: str
    forward_tensors: list[str]
    switches: dict[str, str]  # MaxPool node name -> tensor holding its argmax indices
    sparse: bool = False  # seed is (K, 1, h, w) plus the channel indices
    single: bool = False  # seed (and projection) of batch 1: the K projections are run one at a time


def signal_path(graph: ModelGraph, target: str) -> list[onnx.NodeProto]:
    """Nodes between the input and ``target`` that carry the image's signal, in topological order."""
    on_path: set[str] = set()
    stack = [target]
    seen: set[str] = set()
    while stack:
        tensor = stack.pop()
        if tensor in seen or tensor == graph.input_name:
            continue
        seen.add(tensor)
        node = graph.producer.get(tensor)
        if node is None or tensor not in graph.signal:
            continue
        on_path.add(node.name)
        stack.extend(node.input[i] for i in graph.signal_inputs(node))
    return [n for n in graph.nodes if n.name in on_path]


def build_inverse(
    graph: ModelGraph,
    target: str,
    input_shape: tuple[int, ...],
    mode: str = "deconvnet",
    form: str = "cpu",
    lrn: str = "exact",
    sparse: bool = False,
    paired: bool = False,
) -> InverseGraph:
    """Build the inverse of ``target``. With ``sparse``, and where the target is a conv layer's
    (activated) output, the seed is (K, 1, h, w) plus the K channel indices (see ``sparse.py``).

    ``paired``: the forward runs on K inputs and seed k goes back through input k's own forward
    values (the gradient engine's K images), rather than K seeds through one input's; the forward
    tensors the inverse reads then take any batch.

    Every node on the path is checked by its rule before anything is emitted (``_plan``)."""
    plan = _plan(graph, target, input_shape, mode, form, lrn, sparse)
    ctx = plan.ctx
    grads: dict[str, list[str]] = {target: [SEED]}
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
        for tensor, g in zip(node.input, in_grads, strict=False):
            if g is not None and tensor in graph.signal:
                grads.setdefault(tensor, []).append(g)
    final = _sum(ctx, plan.path[0], grads.get(graph.input_name))
    if final is None:
        raise UnsupportedOpError(f"No signal reaches the input from '{target}'.")
    ctx.op("Identity", [final], outputs=[PROJECTION], name="projection")
    sparse_head = plan.chain is not None
    model = _assemble(ctx, graph, target, input_shape, sparse=sparse_head, paired=paired and not ctx.single)
    return InverseGraph(model, target, mode, list(ctx.forward_inputs), switches, sparse=sparse_head, single=ctx.single)


def unsupported_reason(
    graph: ModelGraph, target: str, input_shape: tuple[int, ...], mode: str = "deconvnet", lrn: str = "exact"
) -> str | None:
    """Why ``target`` cannot be projected (the message ``build_inverse`` would raise), or None: the
    rules' checks only, nothing emitted, so ``layers`` and ``check`` can ask it of every layer."""
    try:
        _plan(graph, target, input_shape, mode, "cpu", lrn, sparse=False)
    except UnsupportedOpError as exc:
        return str(exc)
    return None


@dataclass
class _Plan:
    """What the walk will visit, decided (and every rule's check passed) before emitting."""

    ctx: InverseContext
    path: list[onnx.NodeProto]
    chain: list[onnx.NodeProto] | None  # the channel-sparse head's nodes, target first
    composites: dict[str, Composite]
    skipped: set[str]


def _plan(
    graph: ModelGraph, target: str, input_shape: tuple[int, ...], mode: str, form: str, lrn: str, sparse: bool
) -> _Plan:
    """The plan for K projections at once, or, where the rules refuse it (an attention block merges
    the batch axis into one they cannot follow), for one projection at a time (``ctx.single``): then
    the signal has the forward's shapes and no axis is the batch. The first refusal is the one
    reported when both fail, and where the target's axis 0 is not the batch of 1 the seeds are
    copies of (a conv over a moved batch axis), the first refusal stands."""
    try:
        return _plan_once(graph, target, input_shape, mode, form, lrn, sparse, single=False)
    except UnsupportedOpError as batched_refusal:
        if graph.shapes(input_shape).get(target, (None,))[:1] != (1,):
            raise
        try:
            return _plan_once(graph, target, input_shape, mode, form, lrn, sparse, single=True)
        except UnsupportedOpError:
            raise batched_refusal from None


def _plan_once(
    graph: ModelGraph,
    target: str,
    input_shape: tuple[int, ...],
    mode: str,
    form: str,
    lrn: str,
    sparse: bool,
    single: bool,
) -> _Plan:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}")
    shapes = dict(graph.shapes(input_shape))
    ctx = InverseContext(graph=graph, shapes=shapes, mode=mode, form=form, lrn=lrn, single=single)
    path = signal_path(graph, target)
    if not path:
        raise UnsupportedOpError(f"'{target}' is not computed from the image input.")
    chain = sparse_chain(graph, target) if sparse else None
    if chain is not None and any(uses_batch_statistics(graph, n) for n in chain):
        chain = None  # batch statistics mix the positions of a channel: the dense walk handles them
    head = {n.name for n in chain} if chain is not None else set()
    composites = _composites(graph, path, mode, head)
    inside = {name for group in composites.values() for name in group.nodes[:-1]}
    for node in reversed(path):
        if node.name in composites or node.name in inside:
            continue  # every composite kind has its derivative (``COMPOSITE_DERIVATIVES``)
        rule = RULES.get(node.op_type)
        if rule is None:
            raise _no_rule(graph, node, target)
        reason = rule.check(ctx, node)  # the sparse head's nodes need what their rules need
        if reason is not None:
            raise ctx.unsupported(node, reason)
    return _Plan(ctx, path, chain, composites, head | inside)


def _composites(graph: ModelGraph, path: list[onnx.NodeProto], mode: str, skipped: set[str]) -> dict[str, Composite]:
    """Composite activations wholly on the path, by the name of their last node (not in saliency
    mode, where their nodes' own exact rules already give the gradient)."""
    if mode == "saliency":
        return {}
    on_path = [n for n in path if n.name not in skipped]
    return {group.nodes[-1]: group for group in find_composites(graph, on_path)}


def _sum(ctx: InverseContext, node: onnx.NodeProto, terms: list[str] | None) -> str | None:
    if not terms:
        return None
    if len(terms) == 1:
        return terms[0]
    ctx.begin(node)
    return ctx.op("Sum", terms)


def _assemble(
    ctx: InverseContext, graph: ModelGraph, target: str, input_shape: tuple[int, ...], sparse: bool, paired: bool
) -> onnx.ModelProto:
    target_shape = list(ctx.shape(target)[1:])
    if sparse:
        target_shape[0] = 1
    batch = 1 if ctx.single else BATCH
    if sparse:
        ctx.input(CHANNELS, [batch], TensorProto.INT64, leading=True)
    ctx.input(SEED, [batch, *target_shape], leading=True)
    ctx.output(PROJECTION, [batch, *input_shape[1:]])
    if paired:
        for declared in ctx.forward_inputs.values():
            dims = declared.type.tensor_type.shape.dim
            if dims:
                dims[0].dim_param = BATCH
    ctx.name = f"inverse of {target}"
    model = ctx.model(ir_version=INVERSE_IR_VERSION)
    meta = model.metadata_props.add()
    meta.key, meta.value = "onnxviz.mode", ctx.mode
    return model


def _no_rule(graph: ModelGraph, node: onnx.NodeProto, target: str) -> UnsupportedOpError:
    ancestors = graph.ancestors(t for t in node.input if t)
    candidates: dict[str, str] = {}  # tensor -> the first alias naming it (conv3 rather than relu3)
    for layer in graph.layers:
        producer = graph.producer.get(layer.tensor)
        if producer is not None and producer.name in ancestors:
            candidates.setdefault(layer.tensor, layer.alias)
    last = list(candidates.values())[-1] if candidates else None
    hint = f"Project from '{last}' or an earlier layer instead." if last else "Project from an earlier layer."
    return UnsupportedOpError(
        f"Unsupported op {node.op_type} (node '{node.name}') on the path from '{target}' back to the "
        "input: onnxviz has no inverse rule for it.",
        hint,
    )
