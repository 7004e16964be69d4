"""The builder: fan-out sums the branches' signals, every rule is checked before anything is
emitted, and the registry is explicit."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from onnxviz.errors import UnsupportedOpError
from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import InverseSpec, build_inverse, unsupported_reason
from onnxviz.inverse.context import InverseContext
from onnxviz.inverse.rules import ALL_RULES, RULES, OutputsRule, Rule
from onnxviz.inverse.rules.registry import by_op_type
from tests.helpers import Linearisation, adjoint_gaps, make_model
from tests.inverse.adjoint import TOLERANCE, assert_adjoint


def test_residual_fan_out_sums_both_branches() -> None:
    rng = np.random.default_rng(9)
    w1, w2 = (rng.standard_normal((3, 3, 3, 3)).astype(np.float32) for _ in range(2))
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1], name="c1"),
        helper.make_node("Conv", ["a", "w2"], ["b"], pads=[1, 1, 1, 1], name="c2"),
        helper.make_node("Add", ["a", "b"], ["y"], name="residual"),
    ]
    model = make_model(nodes, (1, 3, 6, 6), "y", {"w1": w1, "w2": w2})
    assert_adjoint(model, "y", rng.standard_normal((1, 3, 6, 6)).astype(np.float32), 10)


def test_the_adjoint_check_fails_on_a_wrong_inverse() -> None:
    """The check has teeth: the VJP of another seed does not pass for this one."""
    rng = np.random.default_rng(13)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    model = make_model(
        [helper.make_node("Conv", ["x", "w"], ["y"], strides=[2, 2], name="conv")], (1, 2, 9, 9), "y", {"w": w}
    )
    lin = Linearisation(model, "y", rng.standard_normal((1, 2, 9, 9)).astype(np.float32))
    original = lin.vjp
    lin.vjp = lambda seeds: original(np.flip(seeds, axis=-1).copy())  # type: ignore[method-assign]
    assert max(adjoint_gaps(lin, rng)) > 10 * TOLERANCE


def _conv_then(op_nodes: list, inits: dict | None = None):
    """x → conv → the given nodes; the conv's output 'c' feeds the first of them."""
    rng = np.random.default_rng(21)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"), *op_nodes]
    weights = {"w": rng.standard_normal((2, 2, 3, 3)).astype(np.float32), **(inits or {})}
    return make_model(nodes, (1, 2, 5, 5), "y", weights)


def test_every_rule_is_checked_before_anything_is_emitted(monkeypatch) -> None:
    """A refusal far from the target (the Where whose condition comes from the image sits before the
    Relu and the Conv the walk meets first) is raised before any rule emits a node."""
    model = make_model(
        [
            helper.make_node("Cast", ["x"], ["mask"], to=TensorProto.BOOL, name="nonzero"),
            helper.make_node("Where", ["mask", "x", "zero"], ["gated"], name="gate"),
            helper.make_node("Conv", ["gated", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
            helper.make_node("Relu", ["c"], ["y"], name="relu"),
        ],
        (1, 2, 5, 5),
        "y",
        {"zero": np.array(0.0, np.float32), "w": np.ones((2, 2, 3, 3), np.float32)},
    )
    graph = ModelGraph.from_proto(model)
    emitted: list[str] = []
    original = InverseContext.op

    def recording(self, op_type, inputs, outputs=1, **attrs):
        emitted.append(op_type)
        return original(self, op_type, inputs, outputs, **attrs)

    monkeypatch.setattr(InverseContext, "op", recording)
    with pytest.raises(UnsupportedOpError, match="Where node 'gate' cannot be inverted: its condition 'mask'"):
        build_inverse(graph, InverseSpec("y", (1, 2, 5, 5)))
    assert emitted == []
    reason = unsupported_reason(graph, InverseSpec("y", (1, 2, 5, 5)))
    assert reason is not None and "its condition 'mask' is computed from the image" in reason
    assert unsupported_reason(graph, InverseSpec("c", (1, 2, 5, 5))) is not None  # the gate is still on c's path
    assert emitted == []


def test_unsupported_reason_is_none_exactly_where_the_build_succeeds() -> None:
    graph = ModelGraph.from_proto(_conv_then([helper.make_node("Relu", ["c"], ["y"], name="relu")]))
    assert unsupported_reason(graph, InverseSpec("y", (1, 2, 5, 5))) is None
    inverse = build_inverse(graph, InverseSpec("y", (1, 2, 5, 5)))
    assert inverse.model.graph.output[0].name == "projection"


def test_an_op_without_a_rule_is_reported_with_its_reason_and_the_layer_to_project_from_instead() -> None:
    graph = ModelGraph.from_proto(_conv_then([helper.make_node("Bernoulli", ["c"], ["y"], name="coin")]))
    reason = unsupported_reason(graph, InverseSpec("y", (1, 2, 5, 5)))
    assert reason is not None and "Unsupported op Bernoulli (node 'coin')" in reason
    assert "its output is random" in reason and "Project from" in reason
    with pytest.raises(UnsupportedOpError, match="Unsupported op Bernoulli"):
        build_inverse(graph, InverseSpec("y", (1, 2, 5, 5)))


def test_a_rule_refuses_a_signal_on_an_output_it_cannot_carry_back() -> None:
    """LayerNormalization's mean output on the image path: a named refusal, not an assertion."""
    c = 4
    model = make_model(
        [
            helper.make_node("LayerNormalization", ["x", "g"], ["n", "mean"], axis=1, name="norm"),
            helper.make_node("Add", ["n", "mean"], ["y"], name="add"),
        ],
        (1, c, 3, 3),
        "y",
        {"g": np.ones((c, 3, 3), np.float32)},
    )
    with pytest.raises(UnsupportedOpError, match="its mean or variance output is used on the image path"):
        build_inverse(ModelGraph.from_proto(model), InverseSpec("y", (1, c, 3, 3)))


def test_the_registry_is_the_families_lists_and_refuses_an_op_claimed_twice() -> None:
    assert set(RULES) == {op for rule in ALL_RULES for op in rule.op_types}
    assert sum(len(rule.op_types) for rule in ALL_RULES) == len(RULES)
    assert isinstance(RULES["Split"], OutputsRule) and isinstance(RULES["Conv"], Rule)
    with pytest.raises(ValueError, match="two inverse rules claim Conv"):
        by_op_type([RULES["Conv"], Rule(("Conv",), RULES["Relu"].emit)])


def test_the_sparse_head_and_the_activation_rule_share_one_mode_switch(monkeypatch) -> None:
    """``modes.rectify`` is the only place a mode is read: both the dense activation rule and the
    channel-sparse head go through it once per activation."""
    from onnxviz.inverse import modes, sparse
    from onnxviz.inverse.rules import activation

    calls: list[str] = []
    original = modes.rectify

    def counting(ctx, g, derivative):
        calls.append(ctx.mode)
        return original(ctx, g, derivative)

    monkeypatch.setattr(activation, "rectify", counting)
    monkeypatch.setattr(sparse, "rectify", counting)
    graph = ModelGraph.from_proto(_conv_then([helper.make_node("Relu", ["c"], ["y"], name="relu")]))
    build_inverse(graph, InverseSpec("y", (1, 2, 5, 5), rule="guided"))
    build_inverse(graph, InverseSpec("y", (1, 2, 5, 5), rule="saliency", sparse=True))
    assert calls == ["guided", "saliency"]
