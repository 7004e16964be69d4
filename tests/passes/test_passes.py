"""Each pass states what it requires and ensures: a graph it cannot rewrite is refused by name
(before onnxruntime meets an invalid graph), and the pipeline reports what each pass changed."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from onnxviz.graph.model import ModelGraph
from onnxviz.passes.base import Pass, PassPostconditionError, PassPreconditionError, PassResult, Pipeline
from onnxviz.passes.dynamic_batch import dynamic_batch
from onnxviz.passes.outputs import expose_outputs
from onnxviz.passes.prune import Prune, prune
from onnxviz.passes.rewrite import cut_between, forward_passes
from onnxviz.passes.switches import AddSwitches, add_switches
from tests.helpers import make_model, session


def _conv_pool_relu() -> onnx.ModelProto:
    """x -> Conv -> MaxPool -> Relu, with a second input-free branch the cut tests use."""
    weights = np.random.default_rng(0).standard_normal((2, 1, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["c"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Relu", ["p"], ["y"], name="relu"),
    ]
    return make_model(nodes, (1, 1, 6, 6), "y", {"w": weights})


def test_switches_for_a_node_that_is_no_maxpool_are_refused_by_name() -> None:
    model = _conv_pool_relu()
    with pytest.raises(PassPreconditionError, match="'conv'"):
        add_switches(model, {"conv": "conv_indices"})
    with pytest.raises(PassPreconditionError, match="'nowhere'"):
        add_switches(model, {"nowhere": "indices"})


def test_switches_are_added_once_and_then_report_no_change() -> None:
    model = _conv_pool_relu()
    assert add_switches(model, {"pool": "idx"}).modified
    assert list(model.graph.node[1].output) == ["p", "idx"]
    assert not add_switches(model, {"pool": "idx"}).modified


def test_an_output_the_graph_does_not_compute_is_refused_by_name() -> None:
    model = _conv_pool_relu()
    with pytest.raises(PassPreconditionError, match="'typo'"):
        expose_outputs(model, ["y", "typo"], set(), {})


def test_prune_keeps_an_input_that_is_itself_an_output() -> None:
    model = _conv_pool_relu()
    expose_outputs(model, ["x"], set(), {"x": (1, 1, 6, 6)})
    assert prune(model).modified  # every node and the weights go
    assert not model.graph.node and [i.name for i in model.graph.input] == ["x"]
    x = np.random.default_rng(1).standard_normal((1, 1, 6, 6)).astype(np.float32)
    (echoed,) = session(model).run(None, {"x": x})
    np.testing.assert_array_equal(echoed, x)


def test_dynamic_batch_of_a_tensor_that_is_no_input_is_refused() -> None:
    with pytest.raises(PassPreconditionError, match="'c'"):
        dynamic_batch(_conv_pool_relu(), "c")


def test_a_cut_at_a_tensor_the_outputs_do_not_depend_on_alone_is_refused() -> None:
    """``y2 = Relu(c) + x`` reads the image past the cut at ``c``: the cut graph would have an
    undefined input."""
    weights = np.random.default_rng(0).standard_normal((2, 1, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
        helper.make_node("Add", ["y", "x"], ["y2"], name="skip"),
    ]
    model = make_model(nodes, (1, 1, 6, 6), "y2", {"w": weights})
    graph = ModelGraph.from_proto(model)
    shapes = graph.shapes(graph.concrete_input_shape())
    with pytest.raises(PassPreconditionError, match="'x'"):
        cut_between(graph, "c", shapes, ["y2"])
    cut = cut_between(graph, "c", shapes, ["y"])  # Relu(c) alone is computed from c
    assert [i.name for i in cut.graph.input] == ["c"] and [n.op_type for n in cut.graph.node] == ["Relu"]


def test_the_forward_pipeline_reports_what_each_pass_changed() -> None:
    graph = ModelGraph.from_proto(_conv_pool_relu())
    shapes = graph.shapes(graph.concrete_input_shape())
    result = forward_passes(graph, ["p"], {"pool": "idx"}, shapes)
    assert result.steps == (
        ("switches", True),
        ("masks", False),
        ("outputs", True),
        ("prune", True),
        ("dynamic_batch", True),
    )
    assert [n.op_type for n in result.model.graph.node] == ["Conv", "MaxPool"]
    unchanged = forward_passes(graph, ["y"], {}, shapes)
    assert dict(unchanged.steps)["switches"] is False and dict(unchanged.steps)["prune"] is False


def test_the_forward_computes_the_masks_asked_for_as_booleans() -> None:
    graph = ModelGraph.from_proto(_conv_pool_relu())
    shapes = graph.shapes(graph.concrete_input_shape())
    result = forward_passes(graph, ["c", "c__positive"], {}, shapes, {"c__positive": "c"})
    assert dict(result.steps)["masks"] is True
    mask = next(o for o in result.model.graph.output if o.name == "c__positive")
    assert mask.type.tensor_type.elem_type == onnx.TensorProto.BOOL
    x = np.random.default_rng(3).standard_normal((2, 1, 6, 6)).astype(np.float32)
    c, positive = session(result.model).run(None, {"x": x})
    assert positive.dtype == np.bool_ and np.array_equal(positive, c > 0) and 0 < positive.mean() < 1
    with pytest.raises(PassPreconditionError, match="'nowhere'"):
        forward_passes(graph, ["c"], {}, shapes, {"m": "nowhere"})


def _package_passes() -> list[type[Pass]]:
    """Every pass onnxviz defines (the passes' modules are imported through ``passes.rewrite``)."""
    found, stack = [], list(Pass.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls.__module__.startswith("onnxviz."):
            found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


def test_every_pass_states_whether_it_works_in_place() -> None:
    passes = _package_passes()
    assert {cls.__name__ for cls in passes} >= {"AddSwitches", "ExposeOutputs", "Prune", "DynamicBatch", "Cut"}
    for cls in passes:
        assert isinstance(cls.__dict__.get("in_place"), bool), f"{cls.__name__} does not declare in_place"
        assert "in place" in (cls.__doc__ or "").lower() or "new model" in (cls.__doc__ or "").lower(), cls.__name__


def test_the_in_place_passes_change_the_model_they_are_given() -> None:
    model = _conv_pool_relu()
    result = prune(expose_outputs(model, ["c"], set(), {}).model)
    assert result.model is model
    assert [n.name for n in model.graph.node] == ["conv"]


class _Copying(Pass):
    """Returns a changed copy, whatever it declares."""

    name = "copying"

    def __init__(self, in_place: bool) -> None:
        self.in_place = in_place

    def call(self, model: onnx.ModelProto) -> PassResult:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        copy.graph.name = "copied"
        return PassResult(copy, True)


def test_a_pass_that_breaks_its_in_place_claim_is_reported() -> None:
    model = _conv_pool_relu()
    with pytest.raises(PassPostconditionError, match="copying pass did not change its model in place"):
        _Copying(in_place=True)(model)
    result = _Copying(in_place=False)(model)
    assert result.model is not model and model.graph.name == "test"


def test_a_pipeline_works_in_place_only_when_every_pass_does() -> None:
    assert Pipeline([Prune(), AddSwitches({})]).in_place
    assert not Pipeline([Prune(), _Copying(in_place=False)]).in_place
