"""The graph emitter every graph-writing part of onnxviz uses: names never collide, constants are
stored as the graphs compute them, and the model it assembles is valid and runs."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from onnxviz.graph.emit import GraphEmitter
from tests.helpers import session


def test_fresh_names_carry_the_prefix_and_avoid_used_and_reserved_names() -> None:
    emit = GraphEmitter("g", reserved={"conv1/inverse/Relu"})
    emit.prefix = "conv1/inverse"
    assert emit.fresh("Relu") == "conv1/inverse/Relu_2"
    assert emit.fresh("Relu") == "conv1/inverse/Relu_3"
    emit.prefix = ""
    assert emit.claim("Add") == "Add"
    assert emit.fresh("Add") == "Add_2"


def test_a_name_given_to_an_input_or_output_is_never_generated_again() -> None:
    emit = GraphEmitter("g")
    emit.input("Identity", [1])
    emit.output(emit.op("Identity", ["Identity"], outputs=["y"]))
    assert emit.op("Identity", ["y"]) == "Identity_2"


def test_constants_store_float64_as_float32_and_keep_integer_and_explicit_types() -> None:
    emit = GraphEmitter("g")
    stored = {
        name: numpy_helper.to_array(emit.initializers[name]).dtype
        for name in (emit.const(0.5), emit.const([1, 2]), emit.const([1, 2], dtype=np.float32))
    }
    assert list(stored.values()) == [np.float32, np.int64, np.float32]


def test_a_shared_initializer_is_stored_once_under_its_own_name() -> None:
    emit = GraphEmitter("g")
    weight = np.ones((2, 2), np.float32)
    assert emit.initializer("w", weight) == emit.initializer("w", 2 * weight) == "w"
    assert len(emit.initializers) == 1
    np.testing.assert_array_equal(numpy_helper.to_array(emit.initializers["w"]), weight)


def test_op_leaves_out_attributes_given_as_none_and_names_every_output() -> None:
    emit = GraphEmitter("g")
    first = emit.op("TopK", ["x", "k"], outputs=2, axis=1, largest=None)
    node = emit.nodes[-1]
    assert first == "TopK:0" and list(node.output) == ["TopK:0", "TopK:1"]
    assert [a.name for a in node.attribute] == ["axis"]
    assert node.name == "TopK#node"


def test_a_leading_input_comes_before_those_declared_earlier() -> None:
    emit = GraphEmitter("g")
    emit.input("read", [1])
    emit.input("seed", [1], leading=True)
    emit.input("read", [7])  # declared once: the first declaration stands
    assert [i.name for i in emit.model(ir_version=8).graph.input] == ["seed", "read"]
    assert emit.inputs["read"].type.tensor_type.shape.dim[0].dim_value == 1


def test_the_model_is_valid_at_its_opset_and_computes_what_was_emitted() -> None:
    emit = GraphEmitter("affine", opset=13)
    x = emit.input("x", ["N", 3])
    scaled = emit.op("Mul", [x, emit.const([1.0, 2.0, 3.0])])
    emit.output(emit.op("Add", [scaled, emit.const(0.5)], outputs=["y"]), ["N", 3])
    emit.output(emit.op("Cast", [x], to=TensorProto.INT64), ["N", 3], TensorProto.INT64)
    model = emit.model(ir_version=7)
    onnx.checker.check_model(model, full_check=True)
    assert (model.ir_version, model.opset_import[0].version, model.graph.name) == (7, 13, "affine")
    y, cast = session(model).run(None, {"x": np.array([[1.0, 1.0, 2.0]], np.float32)})
    np.testing.assert_array_equal(y, [[1.5, 2.5, 6.5]])
    np.testing.assert_array_equal(cast, [[1, 1, 2]])


def test_appended_nodes_keep_their_place_and_claim_their_outputs() -> None:
    emit = GraphEmitter("g")
    emit.op("Relu", ["x"], outputs=["a"])
    emit.append(onnx.helper.make_node("Neg", ["a"], ["Neg"], name="negate"))
    emit.op("Neg", ["Neg"])
    assert [n.name for n in emit.nodes] == ["Relu#node", "negate", "Neg#node"]
    assert list(emit.nodes[-1].output) == ["Neg_2"]


def test_an_output_without_a_type_leaves_onnxruntime_to_find_it() -> None:
    emit = GraphEmitter("probe")
    emit.output(emit.op("Shape", [emit.input("x", [2, 3])], outputs=["y"]), elem=None)
    model = emit.model(ir_version=8)
    assert not model.graph.output[0].HasField("type")
    np.testing.assert_array_equal(session(model).run(None, {"x": np.zeros((2, 3), np.float32)})[0], [2, 3])
