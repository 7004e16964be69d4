"""Layer gradients: an ``InverseSpec`` whose source is a layer walks only the nodes between the
source and the target, and its output is ∂⟨seed, target⟩/∂source.

The adjoint identity ⟨J·u, g⟩ = ⟨u, Jᵀ·g⟩ is checked with J·u measured on the network cut at the
source (``tests.helpers.CutAt``: onnxruntime on the extracted rest of the graph, the source's
value perturbed by ±εu), so nothing of the inverse is trusted.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from onnxviz.errors import UsageError
from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import InverseSpec, build_inverse, signal_path
from onnxviz.passes.rewrite import forward_model
from tests.helpers import DEMO, FIXTURES, CutAt, make_model, session

TOLERANCE = 1e-2
RESNET = FIXTURES / "resnet_like.onnx"
STEM = "/stem/stem.2/Relu_output_0"  # feeds layer1's branch and its skip
BRANCH = "/layer1/relu/Relu_output_0"  # inside layer1's branch: the skip bypasses it
LAYER1 = "/layer1/relu_1/Relu_output_0"
POOL1 = "/features/pool1/MaxPool_output_0"
RELU2 = "/features/relu2/Relu_output_0"
CONV2 = "/features/conv2/Conv_output_0"

CASES = [
    (DEMO, POOL1, "logits"),  # two MaxPools, a Flatten and the classifier between them
    (DEMO, CONV2, "/classifier/fc1/Gemm_output_0"),  # the ReLU right after the source reads it
    (RESNET, STEM, "output"),  # the source's signal comes back along both the branch and the skip
    (RESNET, BRANCH, "/layer3/relu_1/Relu_output_0"),  # the skip around the source is no path
]


class LayerLinearisation:
    """Forward values at x (from the input, as the projector runs them) and the inverse of one spec."""

    def __init__(self, path, spec: InverseSpec) -> None:
        self.graph = ModelGraph.load(path)
        self.inverse = build_inverse(self.graph, spec)
        outputs = list(dict.fromkeys([spec.target, spec.source, *self.inverse.forward_tensors]))
        shapes = self.graph.shapes(spec.input_shape)
        forward = forward_model(self.graph, outputs, self.inverse.switches, shapes, self.inverse.masks)
        self.outputs = outputs
        self._forward = session(forward)
        self._inverse = session(self.inverse.model)

    def forward(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.outputs, self._forward.run(None, {self.graph.input_name: x}), strict=True))

    def vjp(self, seeds: np.ndarray, values: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {"seed": seeds.astype(np.float32), **{t: values[t] for t in self.inverse.forward_tensors}}
        return self._inverse.run(None, feeds)[0]


@pytest.mark.parametrize(("path", "source", "target"), CASES)
@pytest.mark.parametrize("form", ["cpu", "portable"])
def test_a_layer_source_inverse_is_the_adjoint_of_the_network_cut_at_the_source(path, source, target, form) -> None:
    """For each seed g, along u = Jᵀ·g (well scaled: ⟨u, Jᵀ·g⟩ = ‖u‖²) the network cut at the source
    gives ⟨J·u, g⟩ by central differences; the gradient's entries shuffled fail the same check."""
    rng = np.random.default_rng(17)
    shape = ModelGraph.load(path).concrete_input_shape()
    lin = LayerLinearisation(path, InverseSpec(target, shape, source, "saliency", form))
    x = rng.standard_normal(shape).astype(np.float32)
    values = lin.forward(x)
    activation = values[source]
    seeds = rng.standard_normal((3, *values[target].shape[1:]))
    gradients = lin.vjp(seeds, values).astype(np.float64)
    assert gradients.shape == (3, *activation.shape[1:])
    rest = CutAt(onnx.load(str(path)), lin.graph.input_name, source, target)
    np.testing.assert_allclose(rest(x, activation), values[target], rtol=1e-5, atol=1e-5)
    for k, seed in enumerate(seeds):
        u = gradients[k][None] / np.abs(gradients[k]).max()
        ju = rest.directional_derivative(x, activation, u, eps=1e-4)[0]  # small: few ReLUs cross
        measured = float(np.sum(ju * seed))
        assert measured == pytest.approx(float(np.sum(u * gradients[k])), rel=TOLERANCE), f"{source} → {target}"
        shuffled = rng.permutation(gradients[k].ravel()).reshape(u.shape)  # a gradient with no teeth
        assert measured != pytest.approx(float(np.sum(u * shuffled)), rel=10 * TOLERANCE)


def forward_node_names(inverse_model: onnx.ModelProto) -> set[str]:
    """The forward nodes an inverse undoes: every emitted node is named after one (``ctx.begin``)."""
    return {n.name.split("/inverse")[0] for n in inverse_model.graph.node if "/inverse" in n.name}


def between(model: onnx.ModelProto, source: str, target: str) -> set[str]:
    """Names of the nodes that read the source (directly or not) and that the target needs."""
    fed, after = {source}, set()
    for node in model.graph.node:
        if fed.intersection(node.input):
            fed.update(node.output)
            after.add(node.name)
    needed, before = {target}, set()
    for node in reversed(model.graph.node):
        if needed.intersection(node.output):
            needed.update(node.input)
            before.add(node.name)
    return after & before


@pytest.mark.parametrize(
    ("path", "source", "target", "count"),
    [
        (DEMO, POOL1, "logits", 10),  # conv2 relu2 pool2 conv3 relu3 pool3 flatten fc1 relu4 fc2
        (RESNET, BRANCH, LAYER1, 4),  # conv2 bn2 add relu_1: not the stem the skip comes from
        (RESNET, STEM, LAYER1, 7),  # the branch's six nodes and the final relu (the skip is an edge)
    ],
)
def test_the_partial_inverse_holds_only_the_nodes_between_source_and_target(path, source, target, count) -> None:
    graph = ModelGraph.load(path)
    spec = InverseSpec(target, graph.concrete_input_shape(), source, "saliency")
    path_nodes = {n.name for n in signal_path(graph, target, source)}
    assert path_nodes == between(onnx.load(str(path)), source, target) and len(path_nodes) == count
    inverse = build_inverse(graph, spec)
    undone = forward_node_names(inverse.model)
    # An Add passes its signal on with no node, and so does a ReLU whose MaxPool rectified it.
    assert undone <= path_nodes and len(undone) >= count - 2
    full = build_inverse(graph, InverseSpec(target, spec.input_shape, rule="saliency"))
    assert len(inverse.model.graph.node) < len(full.model.graph.node)
    (output,) = inverse.model.graph.output
    dims = [d.dim_value for d in output.type.tensor_type.shape.dim[1:]]
    assert dims == list(graph.shapes(spec.input_shape)[source][1:])
    assert graph.input_name not in inverse.forward_tensors


def test_the_signal_of_a_branch_the_source_does_not_feed_is_not_emitted() -> None:
    """y = a·b with a and b two convs of x: from the source a the inverse is g·b alone; the Mul
    rule's signal for b (and b's conv) is dropped."""
    rng = np.random.default_rng(4)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1], name="c1"),
        helper.make_node("Conv", ["x", "w2"], ["b"], pads=[1, 1, 1, 1], name="c2"),
        helper.make_node("Mul", ["a", "b"], ["y"], name="product"),
    ]
    weights = {name: rng.standard_normal((2, 2, 3, 3)).astype(np.float32) for name in ("w1", "w2")}
    graph = ModelGraph.from_proto(make_model(nodes, (1, 2, 5, 5), "y", weights))
    inverse = build_inverse(graph, InverseSpec("y", (1, 2, 5, 5), "a", "saliency"))
    assert [n.op_type for n in inverse.model.graph.node] == ["Mul", "Identity"]
    assert inverse.forward_tensors == ["b"] and not inverse.model.graph.initializer
    seeds = rng.standard_normal((3, 2, 5, 5)).astype(np.float32)
    b = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    (projection,) = session(inverse.model).run(None, {"seed": seeds, "b": b})
    np.testing.assert_allclose(projection, seeds * b, rtol=1e-6)


def test_the_switches_come_only_from_the_max_pools_after_the_source() -> None:
    graph = ModelGraph.load(DEMO)
    shape = graph.concrete_input_shape()
    from_input = build_inverse(graph, InverseSpec("logits", shape, rule="saliency"))
    from_pool1 = build_inverse(graph, InverseSpec("logits", shape, POOL1, "saliency"))
    assert set(from_input.switches) == {f"/features/pool{i}/MaxPool" for i in (1, 2, 3)}
    assert set(from_pool1.switches) == {"/features/pool2/MaxPool", "/features/pool3/MaxPool"}


def test_naming_the_input_as_the_source_builds_the_input_inverse() -> None:
    graph = ModelGraph.load(RESNET)
    shape = graph.concrete_input_shape()
    default = build_inverse(graph, InverseSpec(LAYER1, shape, rule="guided", sparse=True))
    named = build_inverse(graph, InverseSpec(LAYER1, shape, graph.input_name, "guided", sparse=True))
    assert named.model.SerializeToString() == default.model.SerializeToString()


def test_the_sparse_head_stops_where_the_source_cuts_it() -> None:
    """The head walks from the target back to its conv; a source between them leaves the dense walk."""
    graph = ModelGraph.load(DEMO)
    shape = graph.concrete_input_shape()
    assert build_inverse(graph, InverseSpec(RELU2, shape, POOL1, sparse=True)).sparse
    inverse = build_inverse(graph, InverseSpec(RELU2, shape, CONV2, sparse=True))
    assert not inverse.sparse and forward_node_names(inverse.model) == {"/features/relu2/Relu"}


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        (
            "/features/relu3/Relu_output_0",
            CONV2,
            "'/features/relu3/Relu_output_0' is not upstream of the target '/features/conv2/Conv_output_0'",
        ),
        ("features.conv2.weight", "logits", "'features.conv2.weight' is not a tensor computed from the image input"),
        ("no such tensor", "logits", "'no such tensor' is not a tensor computed from the image input"),
        ("logits", "logits", "'logits' is not upstream of the target 'logits'"),
    ],
)
def test_a_source_that_does_not_feed_the_target_is_a_usage_error_naming_both(source, target, message) -> None:
    graph = ModelGraph.load(DEMO)
    with pytest.raises(UsageError, match=message):
        build_inverse(graph, InverseSpec(target, graph.concrete_input_shape(), source))


def test_a_spec_with_an_unknown_rule_or_form_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="Unknown inverse rule 'gradcam'"):
        InverseSpec("y", (1, 3, 8, 8), rule="gradcam")
    with pytest.raises(UsageError, match="Unknown inverse form 'cuda'"):
        InverseSpec("y", (1, 3, 8, 8), form="cuda")
