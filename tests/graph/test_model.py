"""ModelGraph: loading (and refusing) files, folding, shapes, aliases and --node resolution."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from onnxviz.errors import ModelLoadError, UnknownNodeError, UsageError
from onnxviz.graph.model import ModelGraph
from tests.helpers import FIXTURES, load_fixture, make_model, session


def test_aliases_number_layers_and_conv_means_the_rectified_output() -> None:
    graph = ModelGraph.load(FIXTURES / "vgg_like_torchscript.onnx")
    aliases = {la.alias: la for la in graph.layers}
    assert [a for a in aliases if a.startswith("conv")] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert aliases["conv1"].node == "/0/Conv"
    assert graph.producer[aliases["conv1"].tensor].op_type == "Relu"
    assert aliases["pool3"].node == "/12/MaxPool"
    assert aliases["fc2"].tensor == "output"


def test_tf2onnx_dense_alias_names_the_biased_output() -> None:
    graph = ModelGraph.load(FIXTURES / "tf2onnx_nhwc.onnx")
    fc1 = next(la for la in graph.layers if la.alias == "fc1")
    assert graph.producer[fc1.tensor].op_type == "Add"
    assert graph.layout == "nhwc"


def test_resolve_accepts_node_tensor_alias_and_unique_substring() -> None:
    graph = ModelGraph.load(FIXTURES / "vgg_like_torchscript.onnx")
    conv3 = next(la for la in graph.layers if la.alias == "conv3")
    assert graph.resolve("conv3").tensor == conv3.tensor
    assert graph.resolve("/5/Conv").tensor == graph.node_by_name("/5/Conv").output[0]
    assert graph.resolve(conv3.tensor).tensor == conv3.tensor
    assert graph.resolve("12/MaxP").node == "/12/MaxPool"


def test_unknown_node_suggests_close_names_and_is_a_usage_error() -> None:
    graph = ModelGraph.load(FIXTURES / "vgg_like_torchscript.onnx")
    with pytest.raises(UnknownNodeError) as info:
        graph.resolve("conv55")
    assert info.value.exit_code == 2
    assert "conv5" in info.value.hint


def test_ambiguous_substring_lists_the_matches() -> None:
    graph = ModelGraph.load(FIXTURES / "vgg_like_torchscript.onnx")
    with pytest.raises(UnknownNodeError, match="matches 5 nodes"):
        graph.resolve("Conv")


def test_constant_subgraph_weights_are_folded_to_what_onnxruntime_computes() -> None:
    """The fixture makes conv weights from ConstantOfShape/Mul chains; the folded arrays must be
    the values onnxruntime computes for those tensors from the original file."""
    graph = ModelGraph.load(FIXTURES / "opset9_zoo.onnx")
    initializers = {t.name for t in graph.model.graph.initializer}
    folded = [n.input[1] for n in graph.nodes if n.op_type == "Conv" and n.input[1] not in initializers]
    assert folded, "the fixture is meant to make conv weights from constant subgraphs"
    original = load_fixture("opset9_zoo.onnx")
    original.graph.output.extend(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in folded)
    x = np.zeros(graph.concrete_input_shape(), np.float32)
    computed = session(original).run(folded, {graph.input_name: x})
    for name, expected in zip(folded, computed, strict=True):
        assert np.abs(expected).max() > 0, "a zero weight would not tell a wrong fold from a right one"
        np.testing.assert_allclose(graph.constants[name], expected, rtol=1e-6, atol=0)


def test_shape_arithmetic_is_not_on_the_signal_path() -> None:
    graph = ModelGraph.load(FIXTURES / "tf2onnx_nhwc.onnx")
    shape_outputs = [n.output[0] for n in graph.nodes if n.op_type in ("Shape", "Gather", "Unsqueeze", "Concat")]
    assert shape_outputs and not set(shape_outputs) & graph.signal


def test_opset7_is_upgraded_so_maxpool_can_emit_switches() -> None:
    graph = ModelGraph.load(FIXTURES / "opset7_alexnet_like.onnx")
    assert graph.original_opset == 7
    assert next(o.version for o in graph.model.opset_import if o.domain in ("", "ai.onnx")) >= 8


def test_pool_shapes_drop_a_ceil_window_that_starts_in_the_padding() -> None:
    """ONNX shape inference says 4x4 here; onnxruntime and the spec say 3x3."""
    pool = helper.make_node(
        "MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1
    )
    graph = ModelGraph.from_proto(make_model([pool], (1, 1, 5, 5), "y"))
    assert graph.shapes((1, 1, 5, 5))["y"] == (1, 1, 3, 3)


@pytest.mark.parametrize(
    ("make_file", "message"),
    [
        (lambda p: None, "not found"),
        (lambda p: p.write_bytes(b"this is not protobuf at all \xff\xfe"), "not a readable ONNX model"),
        (lambda p: p.write_bytes((FIXTURES / "resnet_like.onnx").read_bytes()[:20000]), "not a readable ONNX"),
        (lambda p: p.write_bytes(b""), "holds no graph nodes"),
    ],
    ids=["missing", "garbage", "truncated", "empty"],
)
def test_unreadable_models_raise_a_clear_load_error(tmp_path, make_file, message: str) -> None:
    path = tmp_path / "model.onnx"
    make_file(path)
    with pytest.raises(ModelLoadError, match=message) as info:
        ModelGraph.load(path)
    assert info.value.exit_code == 2


def test_external_data_loads_and_missing_external_data_is_named(tmp_path) -> None:
    model = load_fixture("vgg_like_torchscript.onnx")
    path = tmp_path / "external.onnx"
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="external.onnx.data",
        size_threshold=0,
    )
    graph = ModelGraph.load(path)
    embedded = ModelGraph.load(FIXTURES / "vgg_like_torchscript.onnx")
    for name, value in embedded.constants.items():
        np.testing.assert_array_equal(graph.constants[name], value)
    (tmp_path / "external.onnx.data").unlink()
    with pytest.raises(ModelLoadError, match=r"external\.onnx\.data"):
        ModelGraph.load(path)


def test_a_model_with_two_inputs_is_refused() -> None:
    nodes = [helper.make_node("Add", ["x", "z"], ["y"])]
    model = make_model(nodes, (1, 3, 4, 4), "y")
    model.graph.input.append(helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [1, 3, 4, 4]))
    with pytest.raises(UsageError, match="exactly one image input"):
        ModelGraph.from_proto(model)


def test_a_graph_that_fails_the_checker_is_refused() -> None:
    model = make_model([helper.make_node("Relu", ["missing"], ["y"])], (1, 3, 4, 4), "y")
    with pytest.raises(ModelLoadError, match=r"onnx\.checker|undefined"):
        ModelGraph.from_proto(model)


def test_shapes_cover_what_a_signal_node_reads_beside_the_signal() -> None:
    """A class token expanded to the batch by Shape arithmetic is not on the signal path and not a
    constant, yet the inverse of the Concat that joins it must know its size."""
    nodes = [
        helper.make_node("Reshape", ["x", "tokens_shape"], ["tokens"]),
        helper.make_node("Shape", ["x"], ["x_shape"]),
        helper.make_node("Slice", ["x_shape", "zero", "one"], ["batch"]),
        # torch's expand(B, -1, -1) as TorchScript writes it: -1 entries made 1 by Where, which
        # ONNX shape inference does not propagate
        helper.make_node("Concat", ["batch", "keep"], ["wanted"], axis=0),
        helper.make_node("Equal", ["wanted", "minus_one"], ["is_kept"]),
        helper.make_node("Where", ["is_kept", "ones", "wanted"], ["token_shape"]),
        helper.make_node("Expand", ["token", "token_shape"], ["class_token"]),
        helper.make_node("Concat", ["class_token", "tokens"], ["y"], axis=1),
    ]
    inits = {
        "tokens_shape": np.array([-1, 4, 6], np.int64),
        "zero": np.array([0], np.int64),
        "one": np.array([1], np.int64),
        "keep": np.array([-1, -1], np.int64),
        "minus_one": np.array([-1], np.int64),
        "ones": np.ones(3, np.int64),
        "token": np.ones((1, 1, 6), np.float32),
    }
    graph = ModelGraph.from_proto(make_model(nodes, (1, 3, 2, 4), "y", inits))
    assert "class_token" not in graph.signal and "class_token" not in graph.constants
    assert graph.shapes((1, 3, 2, 4))["class_token"] == (1, 1, 6)


@pytest.mark.parametrize(
    ("fixture", "dense_op"),
    [("vgg_like_torchscript.onnx", "Gemm"), ("family_resnet_dynamo.onnx", None), ("tf2onnx_nhwc.onnx", None)],
)
def test_code_layer_is_the_input_of_the_last_dense_layer(fixture: str, dense_op: str | None) -> None:
    graph = ModelGraph.load(FIXTURES / fixture)
    code = graph.code_layer()
    last_dense = [n for n in graph.nodes if n.op_type in ("Gemm", "MatMul") and n.output[0] in graph.signal][-1]
    assert code.tensor in last_dense.input
    assert code.tensor in graph.signal
    if dense_op is not None:
        assert last_dense.op_type == dense_op


def test_code_layer_of_a_net_without_dense_layers_is_the_last_conv_input() -> None:
    graph = ModelGraph.load(FIXTURES / "squeezenet_like.onnx")
    last_conv = [n for n in graph.nodes if n.op_type == "Conv"][-1]
    if any(n.op_type in ("Gemm", "MatMul") for n in graph.nodes):
        pytest.skip("this fixture has a dense layer")
    assert graph.code_layer().tensor == last_conv.input[0]
    assert [layer.alias for layer in graph.conv_layers()] == [f"conv{i + 1}" for i in range(len(graph.conv_layers()))]
