"""Loading real exported graphs: dynamo's fixed-batch views, shape arithmetic, quantised and fp16
conversions, version skew and custom ops. Every test runs real onnxruntime sessions and compares
values: batch-K runs against K batch-1 runs, conversions against the fp32 model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

import onnxviz
from onnxviz.errors import ModelLoadError, UnsupportedOpError, UsageError
from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import InverseSpec, build_inverse
from onnxviz.passes.rewrite import forward_model
from onnxviz.runtime.sessions import ir_version_for, max_ir_version, max_opset
from tests import conversions
from tests.helpers import fixed_batch_classifier, make_model, session

SIZE = 5


def _with_allowzero(model: onnx.ModelProto) -> onnx.ModelProto:
    """The dynamo exporter's ``view``: a Reshape with ``allowzero=1`` and the batch written out."""
    for node in model.graph.node:
        if node.op_type == "Reshape":
            node.attribute.append(helper.make_attribute("allowzero", 1))
    return model


def _save_with_external_data(model: onnx.ModelProto, path: Path) -> Path:
    """As the dynamo exporter saves: the weights in ``NAME.onnx.data`` beside the graph."""
    onnx.save(model, path, save_as_external_data=True, location=f"{path.name}.data", size_threshold=0)
    return path


def _batched_forward_equals_singles(graph: ModelGraph, tensor: str, batch: int = 3) -> None:
    shape = graph.concrete_input_shape()
    forward = forward_model(graph, [tensor], {}, graph.shapes(shape))
    x = np.random.default_rng(1).standard_normal((batch, *shape[1:])).astype(np.float32)
    run = session(forward)
    batched = run.run(None, {graph.input_name: x})[0]
    singles = np.concatenate([run.run(None, {graph.input_name: x[i : i + 1]})[0] for i in range(batch)])
    np.testing.assert_allclose(batched, singles, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("flatten", [[1, 2 * SIZE * SIZE], [1, -1]])
def test_dynamo_allowzero_views_run_at_any_batch_and_project_like_torchscript(tmp_path, flatten) -> None:
    """[1, 50] becomes [-1, 50]; [1, -1] takes the batch from Shape(data) at run time."""
    dynamo = _save_with_external_data(_with_allowzero(fixed_batch_classifier(SIZE, flatten)), tmp_path / "d.onnx")
    assert (tmp_path / "d.onnx.data").exists()
    graph = ModelGraph.load(dynamo)
    _batched_forward_equals_singles(graph, "y")
    onnx.save(fixed_batch_classifier(SIZE, [1, 2 * SIZE * SIZE]), tmp_path / "ts.onnx")
    x = np.random.default_rng(2).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    expected = onnxviz.load(tmp_path / "ts.onnx", device="cpu").project(x, node="y", channels=[0, 3], rule="saliency")
    got = onnxviz.load(dynamo, device="cpu").project(x, node="y", channels=[0, 3], rule="saliency")
    assert np.abs(expected.projections).max() > 0
    np.testing.assert_allclose(got.projections, expected.projections, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("token", ["initializer", "expanded"])
def test_class_token_folded_at_batch_one_is_repeated_to_the_batch(token) -> None:
    """ViT-style: a (1, 1, C) class token concatenated to the patch tokens. The dynamo exporter
    writes the token as an initializer of batch 1; TorchScript as an Expand of constants only."""
    rng = np.random.default_rng(8)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["patches"], strides=[2, 2], kernel_shape=[2, 2], name="patchify"),
        helper.make_node("Reshape", ["patches", "tokens_shape"], ["flat"], allowzero=1, name="view"),
        helper.make_node("Transpose", ["flat"], ["tokens"], perm=[0, 2, 1], name="transpose"),
        helper.make_node("Concat", ["cls", "tokens"], ["cat"], axis=1, name="cat"),
        helper.make_node("Reshape", ["cat", "flat_shape"], ["f"], allowzero=1, name="view_1"),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1, name="fc"),
    ]
    inits = {
        "w": rng.standard_normal((8, 3, 2, 2)).astype(np.float32),
        "tokens_shape": np.array([1, 8, 4], np.int64),
        "flat_shape": np.array([1, 40], np.int64),
        "fc": rng.standard_normal((3, 40)).astype(np.float32),
    }
    token_value = rng.standard_normal((1, 1, 8)).astype(np.float32)
    if token == "initializer":
        inits["cls"] = token_value
    else:
        nodes.insert(0, helper.make_node("Expand", ["cls_param", "cls_shape"], ["cls"], name="expand"))
        inits["cls_param"], inits["cls_shape"] = token_value[0], np.array([1, 1, 8], np.int64)
    graph = ModelGraph.from_proto(make_model(nodes, (1, 3, 4, 4), "y", inits))
    _batched_forward_equals_singles(graph, "y", batch=3)


# -- shape arithmetic -----------------------------------------------------------------------------


def _channel_split_model(computed: bool) -> onnx.ModelProto:
    """TorchScript's ShuffleNet pattern: conv → relu → split the channels in halves with Slice
    bounds computed from Shape(r) (``computed``) or written as numbers, → conv on one half, Concat,
    then a flatten whose batch comes from Shape(r)[0] → Gemm."""
    rng = np.random.default_rng(3)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Shape", ["r"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "one"], ["channels"], axis=0, name="channels"),
        helper.make_node("Div", ["channels", "two"], ["half"], name="half"),
        helper.make_node("Mul", ["half", "two"], ["full"], name="full"),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0, name="batch"),
        helper.make_node("Concat", ["batch", "minus_one"], ["flat_shape"], axis=0, name="flat_shape"),
    ]
    left, right = (["zero", "half"], ["half", "full"]) if computed else (["zero", "two"], ["two", "four"])
    nodes += [
        helper.make_node("Slice", ["r", *left, "one"], ["left"], name="left"),
        helper.make_node("Slice", ["r", *right, "one"], ["right"], name="right"),
        helper.make_node("Conv", ["right", "w2"], ["right_c"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Concat", ["left", "right_c"], ["cat"], axis=1, name="cat"),
        helper.make_node("Reshape", ["cat", "flat_shape" if computed else "flat"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1, name="fc"),
    ]
    inits = {
        "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "w2": rng.standard_normal((2, 2, 3, 3)).astype(np.float32),
        "fc": rng.standard_normal((3, 4 * SIZE * SIZE)).astype(np.float32),
        "zero": np.array([0], np.int64),
        "one": np.array([1], np.int64),
        "two": np.array([2], np.int64),
        "minus_one": np.array([-1], np.int64),
        "four": np.array([4], np.int64),
        "flat": np.array([0, -1], np.int64),
    }
    return make_model(nodes, (1, 3, SIZE, SIZE), "y", inits)


def test_shape_arithmetic_is_folded_for_the_input_shape_but_not_the_batch() -> None:
    graph = ModelGraph.from_proto(_channel_split_model(computed=True))
    assert graph.constants["half"].tolist() == [2] and graph.constants["full"].tolist() == [4]
    # Shape(r)[0] is the batch: it must stay computed, or the forward would stop at batch 1.
    assert "batch" not in graph.constants and "flat_shape" not in graph.constants
    _batched_forward_equals_singles(graph, "y", batch=4)


def test_folded_channel_split_projects_like_the_same_split_written_as_numbers(tmp_path) -> None:
    x = np.random.default_rng(4).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    results = {}
    for computed in (True, False):
        onnx.save(_channel_split_model(computed), tmp_path / f"m{computed}.onnx")
        model = onnxviz.load(tmp_path / f"m{computed}.onnx", device="cpu")
        for rule in ("deconvnet", "saliency"):
            results[computed, rule] = model.project(x, node="y", channels=[0, 1, 2], rule=rule).projections
        occlusion = model.occlude(x, patch=2, stride=1)
        assert occlusion.batch_size > 1 and not occlusion.note  # the batch stayed dynamic
        results[computed, "occlusion"] = occlusion.scores
    for key in ("deconvnet", "saliency", "occlusion"):
        assert np.abs(results[False, key]).max() > 0
        np.testing.assert_allclose(results[True, key], results[False, key], rtol=1e-5, atol=1e-6)


# -- quantised and half-precision models ----------------------------------------------------------

CONVERSIONS = ("fp16", "QDQ", "QOperator")
LAYERS = ("conv1", "conv3", "logits")


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("conversions")
    return {
        "fp16": conversions.fp16_demo(folder / "fp16.onnx"),
        "QDQ": conversions.quantized_demo(folder / "qdq.onnx", "QDQ"),
        "QOperator": conversions.quantized_demo(folder / "qop.onnx", "QOperator"),
    }


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("kind", CONVERSIONS)
def test_converted_forward_at_batch_k_equals_the_original_file_run_image_by_image(converted, kind) -> None:
    """The loaded graph (fp16 → float32, QOperator → QDQ, fused ReLUs restored) computes what the
    user's file computes under onnxruntime: exactly for int8, to fp16 precision for fp16."""
    graph = ModelGraph.load(converted[kind])
    inputs = np.concatenate(conversions.demo_inputs())
    forward = forward_model(graph, graph.output_names, {}, graph.shapes(graph.concrete_input_shape()))
    batched = session(forward).run(None, {graph.input_name: inputs})[0]
    original = session(onnx.load(converted[kind]))
    dtype = np.float16 if kind == "fp16" else np.float32
    singles = np.concatenate([original.run(None, {"input": x[None].astype(dtype)})[0] for x in inputs])
    if kind == "fp16":
        np.testing.assert_allclose(batched, singles.astype(np.float32), rtol=2e-2, atol=0.1)
    else:
        np.testing.assert_array_equal(batched, singles)


def test_loading_notes_say_what_was_converted(converted) -> None:
    assert ModelGraph.load(converted["fp16"]).notes == ["fp16 model: running in float32"]
    assert ModelGraph.load(converted["QDQ"]).notes == []
    (note,) = ModelGraph.load(converted["QOperator"]).notes
    assert "QLinearConv" in note and "QGemm" in note


@pytest.mark.parametrize("rule", ["deconvnet", "saliency"])
def test_converted_projections_match_the_float_model(converted, rule) -> None:
    """fp16 projections are the fp32 ones; int8 ones differ only through quantised switches and
    masks (ties in max-pool windows), so they stay close; the QOperator conversion projects
    exactly like the QDQ model, and the first layer (no pool before it) matches fp32 exactly
    up to weight rounding: the straight-through Q/DQ pair and the restored ReLU are right."""
    models = {kind: onnxviz.load(path, device="cpu") for kind, path in converted.items()}
    reference = onnxviz.load(conversions.DEMO, device="cpu")
    for x in conversions.demo_inputs()[:2]:
        for layer in LAYERS:
            expected = reference.project(x, node=layer, channels=[0, 1, 2], rule=rule).projections
            got = {
                kind: m.project(x, node=layer, channels=[0, 1, 2], rule=rule).projections for kind, m in models.items()
            }
            assert _cosines(got["fp16"], expected).min() > 0.998
            np.testing.assert_allclose(got["QOperator"], got["QDQ"], rtol=1e-5, atol=1e-7)
            int8 = _cosines(got["QDQ"], expected)
            assert int8.min() > (0.999 if layer == "conv1" else 0.8) and int8.mean() > 0.9


def test_converted_occlusion_maps_match_the_float_model(converted) -> None:
    x = conversions.demo_inputs()[1]
    reference = onnxviz.load(conversions.DEMO, device="cpu").occlude(x, patch=16, stride=8)
    maps = {kind: onnxviz.load(path, device="cpu").occlude(x, patch=16, stride=8) for kind, path in converted.items()}
    for kind, result in maps.items():
        assert result.target == reference.target and result.batch_size > 1
        assert np.abs(result.scores - reference.scores).max() < (1e-3 if kind == "fp16" else 0.1), kind
    np.testing.assert_array_equal(maps["QOperator"].scores, maps["QDQ"].scores)


@pytest.mark.parametrize("kind", CONVERSIONS)
def test_cli_projects_and_occludes_every_conversion(converted, capsys, tmp_path, kind) -> None:
    from tests.cli_helpers import run_cli

    image = sorted(conversions.IMAGES.glob("*.png"))[0]
    code, _, err = run_cli(
        capsys, "project", converted[kind], image, "--node", "conv2", "--device", "cpu", "--raw", tmp_path / "p.npy"
    )
    assert code == 0, err
    assert ("fp16 model: running in float32" in err) == (kind == "fp16")
    code, _, err = run_cli(capsys, "occlude", converted[kind], image, "--device", "cpu", "--raw", tmp_path / "o.npy")
    assert code == 0, err
    model = onnxviz.load(converted[kind], device="cpu")
    projection = model.project(image, node="conv2").projections
    assert np.abs(projection).max() > 0, "a zero projection would not tell a right file from a wrong one"
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), projection, rtol=1e-5, atol=1e-6)
    scores = np.load(tmp_path / "o.npy")
    assert scores.shape == (3, 3)
    np.testing.assert_allclose(scores, model.occlude(image).scores, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("axis_scale", [False, True])
def test_quantize_dequantize_pair_passes_the_signal_straight_through(axis_scale) -> None:
    """y = c · DQ(Q(x)): with the straight-through estimator the saliency of y is c·seed, for a
    per-tensor and a per-channel scale (the 1/s of Q and the s of DQ cancel)."""
    scale = np.array([0.05, 0.1, 0.2], np.float32) if axis_scale else np.array(0.07, np.float32)
    zero_point = np.zeros(scale.shape, np.uint8) + 3
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1, name="quantize"),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"], axis=1, name="dequantize"),
        helper.make_node("Mul", ["d", "c"], ["y"], name="scale"),
    ]
    c = np.random.default_rng(5).standard_normal((1, 3, 4, 4)).astype(np.float32)
    graph = ModelGraph.from_proto(make_model(nodes, (1, 3, 4, 4), "y", {"s": scale, "z": zero_point, "c": c}))
    inverse = build_inverse(graph, InverseSpec("y", (1, 3, 4, 4), rule="saliency"))
    seeds = np.random.default_rng(6).standard_normal((2, 3, 4, 4)).astype(np.float32)
    (projection,) = session(inverse.model).run(None, {"seed": seeds})
    np.testing.assert_allclose(projection, seeds * c, rtol=1e-5, atol=1e-6)


# -- version skew and custom ops ------------------------------------------------------------------


def test_newer_ir_version_is_lowered_and_projects_like_the_original(tmp_path) -> None:
    """onnx's helper stamps its own IR version (14 for onnx 1.23), newer than onnxruntime loads."""
    model = onnx.load(conversions.DEMO)
    model.ir_version = onnx.IR_VERSION
    onnx.save(model, tmp_path / "new_ir.onnx")
    if max_ir_version() >= onnx.IR_VERSION:
        pytest.skip(f"this onnxruntime loads IR {onnx.IR_VERSION}: nothing to lower")
    with pytest.raises(Exception, match="IR version"):
        session(model)  # the premise: onnxruntime refuses the file as it is
    loaded = onnxviz.load(tmp_path / "new_ir.onnx", device="cpu")
    assert loaded.graph.model.ir_version == max_ir_version()
    assert any(f"IR version {onnx.IR_VERSION} lowered to {max_ir_version()}" in n for n in loaded.graph.notes)
    x = conversions.demo_inputs()[0]
    expected = onnxviz.load(conversions.DEMO, device="cpu").project(x, node="conv2", top=2).projections
    np.testing.assert_array_equal(loaded.project(x, node="conv2", top=2).projections, expected)


def test_opset_newer_than_onnxruntime_is_an_error_naming_both(tmp_path) -> None:
    opset = max_opset() + 1
    if opset > onnx.defs.onnx_opset_version():
        pytest.skip("the onnx package knows no opset newer than onnxruntime runs")
    model = fixed_batch_classifier(SIZE, [1, -1])
    model.opset_import[0].version = opset
    model.ir_version = ir_version_for(opset)
    onnx.save(model, tmp_path / "future.onnx")
    with pytest.raises(
        ModelLoadError, match=f"opset {opset}.*onnxruntime {ort.__version__} runs opsets up to {max_opset()}"
    ):
        onnxviz.load(tmp_path / "future.onnx", device="cpu")


def _custom_op_model() -> onnx.ModelProto:
    """The fixed-batch classifier whose logits get a bias made by the custom op
    ``ai.onnx.contrib::Inverse`` (onnxruntime-extensions), off the signal path: y + inv([[2]])."""
    model = fixed_batch_classifier(SIZE, [1, -1])
    graph = model.graph
    graph.node[-1].output[0] = "logits"
    graph.node.extend(
        [
            helper.make_node("Inverse", ["m"], ["inverse"], domain="ai.onnx.contrib", name="custom"),
            helper.make_node("Add", ["logits", "inverse"], ["y"], name="bias"),
        ]
    )
    graph.initializer.append(onnx.numpy_helper.from_array(np.array([[2.0]], np.float32), "m"))
    model.opset_import.append(helper.make_opsetid("ai.onnx.contrib", 1))
    return model


def test_unknown_custom_op_is_an_error_naming_domain_and_op(tmp_path, capsys) -> None:
    from tests.cli_helpers import run_cli

    onnx.save(_custom_op_model(), tmp_path / "custom.onnx")
    with pytest.raises(UnsupportedOpError, match=r"ai\.onnx\.contrib::Inverse") as caught:
        onnxviz.load(tmp_path / "custom.onnx", device="cpu")
    assert "--custom-ops" in caught.value.hint
    code, _, err = run_cli(capsys, "layers", tmp_path / "custom.onnx")
    assert code == 1 and "ai.onnx.contrib::Inverse" in err and "internal error" not in err


def test_custom_op_library_that_does_not_load_is_a_usage_error(tmp_path) -> None:
    (tmp_path / "not_a_library.so").write_bytes(b"nothing")
    with pytest.raises(UsageError, match=r"not_a_library\.so"):
        onnxviz.load(conversions.DEMO, device="cpu", custom_ops=[tmp_path / "not_a_library.so"])


def test_custom_ops_library_is_registered_with_every_session(tmp_path, capsys) -> None:
    extensions = pytest.importorskip("onnxruntime_extensions")
    from tests.cli_helpers import run_cli

    library = extensions.get_library_path()
    onnx.save(_custom_op_model(), tmp_path / "custom.onnx")
    onnx.save(fixed_batch_classifier(SIZE, [1, -1]), tmp_path / "plain.onnx")
    x = np.random.default_rng(7).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    custom = onnxviz.load(tmp_path / "custom.onnx", device="cpu", custom_ops=[library])
    plain = onnxviz.load(tmp_path / "plain.onnx", device="cpu")
    # The forward runs the custom op (its output shifts every logit by 1/2): same saliency, and the
    # occlusion scores (softmax, shift-invariant) agree, which needs the op run at batch K too.
    got, expected = (m.project(x, node="y", channels=[1], rule="saliency").projections for m in (custom, plain))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    occluded = custom.occlude(x, patch=2, stride=1)
    assert occluded.batch_size > 1
    np.testing.assert_allclose(occluded.scores, plain.occlude(x, patch=2, stride=1).scores, rtol=1e-5, atol=1e-6)
    raw = tmp_path / "p.npy"
    code, _, err = run_cli(
        capsys,
        "--custom-ops",
        library,
        "project",
        tmp_path / "custom.onnx",
        _npy(tmp_path, x),
        "-n",
        "y",
        "--channel",
        "1",
        "--rule",
        "saliency",
        "--device",
        "cpu",
        "--raw",
        raw,
    )
    assert code == 0, err
    np.testing.assert_allclose(np.load(raw), expected, rtol=1e-5, atol=1e-6)


def _npy(folder: Path, x: np.ndarray) -> Path:
    np.save(folder / "x.npy", x)
    return folder / "x.npy"


def _residual_model() -> onnx.ModelProto:
    """conv → relu → conv + skip → Concat → GlobalAveragePool → MatMul: quantised in QOperator form
    it holds QLinearConv, QLinearAdd, QLinearConcat, QLinearGlobalAveragePool and QLinearMatMul."""
    rng = np.random.default_rng(9)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Add", ["c2", "r1"], ["sum"], name="residual"),
        helper.make_node("Concat", ["sum", "r1"], ["cat"], axis=1, name="cat"),
        helper.make_node("GlobalAveragePool", ["cat"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "fc"], ["y"], name="fc"),
    ]
    inits = {
        "w1": rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3,
        "w2": rng.standard_normal((4, 4, 3, 3)).astype(np.float32) * 0.3,
        "fc": rng.standard_normal((8, 5)).astype(np.float32),
    }
    return make_model(nodes, (1, 3, 8, 8), "y", inits)


def _quantize(source: Path, target: Path, quant_format: str) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Samples(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(10)
            self._feeds = iter([{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self._feeds, None)

    formats = {"QDQ": QuantFormat.QDQ, "QOperator": QuantFormat.QOperator}
    quantize_static(
        str(source), str(target), Samples(), quant_format=formats[quant_format],
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip
    return target


def test_every_converted_qoperator_op_computes_and_projects_like_its_qdq_twin(tmp_path) -> None:
    onnx.save(_residual_model(), tmp_path / "float.onnx")
    qop = _quantize(tmp_path / "float.onnx", tmp_path / "qop.onnx", "QOperator")
    qdq = _quantize(tmp_path / "float.onnx", tmp_path / "qdq.onnx", "QDQ")
    ops = {n.op_type for n in onnx.load(qop).graph.node}
    assert ops >= {"QLinearConv", "QLinearAdd", "QLinearConcat", "QLinearGlobalAveragePool", "QLinearMatMul"}
    graph = ModelGraph.load(qop)
    assert not any(n.op_type.startswith("QLinear") for n in graph.nodes)
    x = np.random.default_rng(11).standard_normal((4, 3, 8, 8)).astype(np.float32)
    forward = forward_model(graph, ["y"], {}, graph.shapes(graph.concrete_input_shape()))
    original = session(onnx.load(qop))
    singles = np.concatenate([original.run(None, {"x": xi[None]})[0] for xi in x])
    np.testing.assert_allclose(session(forward).run(None, {"x": x})[0], singles, rtol=1e-6, atol=1e-6)
    models = {name: onnxviz.load(path, device="cpu") for name, path in (("qop", qop), ("qdq", qdq))}
    reference = onnxviz.load(tmp_path / "float.onnx", device="cpu")
    for rule in ("deconvnet", "saliency"):
        got = {
            name: m.project(x[:1], node="y", channels=[0, 2, 4], rule=rule).projections for name, m in models.items()
        }
        np.testing.assert_allclose(got["qop"], got["qdq"], rtol=1e-5, atol=1e-7)
        expected = reference.project(x[:1], node="y", channels=[0, 2, 4], rule=rule).projections
        assert _cosines(got["qop"], expected).min() > 0.95


def test_op_deprecated_by_onnx_but_run_by_onnxruntime_loads_and_projects_like_its_successor() -> None:
    """onnx.checker refuses GroupNormalization-18 as deprecated; onnxruntime runs it. Its scale is
    per group, so the same model at opset 21 (per-channel scale, each group's value repeated) must
    give the same saliency."""
    rng = np.random.default_rng(3)
    scale, bias = rng.uniform(0.5, 2.0, 2).astype(np.float32), rng.standard_normal(2).astype(np.float32)
    x = rng.standard_normal((1, 4, 5, 5)).astype(np.float32)
    saliency = {}
    for opset, per_channel in ((18, False), (21, True)):
        node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=2, epsilon=1e-5)
        repeat = 2 if per_channel else 1
        inits = {"s": np.repeat(scale, repeat), "b": np.repeat(bias, repeat)}
        model = make_model([node], (1, 4, 5, 5), "y", inits, opset=opset)
        graph = ModelGraph.from_proto(model)
        loaded = onnxviz.api.Model(
            graph, onnxviz.runtime.sessions.choose_device("cpu"), onnxviz.data.preprocess.Preprocessing()
        )
        saliency[opset] = loaded.project(x, node="y", channels=[1], rule="saliency").projections
    assert np.abs(saliency[18]).max() > 0
    np.testing.assert_allclose(saliency[18], saliency[21], rtol=1e-5, atol=1e-6)


def test_external_data_outside_the_models_folder_is_refused_saying_where_to_put_it(tmp_path) -> None:
    """Found by the fuzz: the refusal was right, its hint ("may be truncated") was not."""
    model = fixed_batch_classifier(SIZE, [1, -1])
    tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    (tmp_path / "outside.bin").write_bytes(tensor.raw_data)
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="../outside.bin")
    (tmp_path / "m").mkdir()
    onnx.save(model, str(tmp_path / "m" / "model.onnx"))
    with pytest.raises(ModelLoadError, match="points outside") as caught:
        ModelGraph.load(tmp_path / "m" / "model.onnx")
    assert "model's folder" in caught.value.hint
