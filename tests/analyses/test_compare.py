"""``onnxviz compare``: pairing, measures against independent numpy/onnxruntime references, verdicts, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper, version_converter

import onnxviz
from onnxviz.analyses.compare import analysis as comparison
from onnxviz.analyses.compare.pairing import DEFAULT_TOLERANCES, pair_layers, precision_of
from onnxviz.errors import UnknownNodeError, UsageError
from onnxviz.graph.model import ModelGraph
from tests.cli_helpers import run_cli
from tests.conversions import DEMO, IMAGES, fp16_demo, quantized_demo
from tests.helpers import FIXTURES, make_model, session

PICTURES = sorted(IMAGES.glob("*.png"))
# The demo model's conv, pool and fc aliases, in order: what compare pairs by default.
DEMO_LAYERS = ["conv1", "pool1", "conv2", "pool2", "conv3", "pool3", "fc1", "fc2"]
SHAPE = (1, 3, 64, 64)


def load(path: Path | onnx.ModelProto) -> onnxviz.Model:
    return onnxviz.load(path, device="cpu")


def saved(model: onnx.ModelProto, folder: Path, name: str) -> Path:
    path = folder / name
    onnx.save(model, path)
    return path


def with_weights(path: Path, change) -> onnx.ModelProto:
    """A copy of ``path`` whose initializers pass through ``change(name, array)``."""
    model = onnx.load(path)
    for tensor in model.graph.initializer:
        tensor.CopyFrom(numpy_helper.from_array(change(tensor.name, numpy_helper.to_array(tensor).copy()), tensor.name))
    return model


def corrupt_conv2(name: str, values: np.ndarray) -> np.ndarray:
    if name == "features.conv2.weight":
        values[3] *= -1  # one of conv2's 32 filters negated
    return values


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("compare")


@pytest.fixture(scope="module")
def corrupted(folder) -> Path:
    return saved(with_weights(DEMO, corrupt_conv2), folder, "corrupted.onnx")


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    demo = load(DEMO)
    return np.concatenate([demo.prepare(p)[0] for p in PICTURES])


def exposed(path: Path, tensors: list[str]) -> ort.InferenceSession:
    """A plain onnxruntime session of the file with ``tensors`` as its outputs."""
    model = onnx.load(path)
    del model.graph.output[:]
    model.graph.output.extend(helper.make_empty_tensor_value_info(t) for t in tensors)
    return session(model)


# -- exactness and pairing --------------------------------------------------------------------------


def test_the_demo_against_itself_is_exactly_equal_at_tolerance_zero():
    result = onnxviz.compare(DEMO, DEMO, PICTURES[:3], tolerance=0.0, top=2)
    assert result.ok, result.failures
    assert [la.pair.name for la in result.layers] == DEMO_LAYERS
    for la in result.layers:
        assert (la.relative_error == 0).all() and (la.cosine == 1).all()
        assert la.projection_cosine is not None and (la.projection_cosine == 1).all()
    assert all(i.agree and i.max_dp == 0 for i in result.images)


def test_a_resaved_copy_with_newer_opset_and_ir_passes_the_fp32_check(folder):
    model = version_converter.convert_version(onnx.load(DEMO), 21)
    model.ir_version = 10
    copy = saved(model, folder, "opset21.onnx")
    result = onnxviz.compare(DEMO, copy, PICTURES[:2], top=1)
    assert result.tolerance.precision == "fp32"
    assert result.ok, result.failures
    assert len(result.layers) == 8


def test_torchscript_and_dynamo_exports_pair_alias_for_alias_and_agree():
    a, b = FIXTURES / "vgg_like_torchscript.onnx", FIXTURES / "vgg_like_dynamo.onnx"
    picture = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    result = onnxviz.compare(a, b, [picture], top=1)
    assert result.ok, result.failures
    pairs = {la.pair.name: la.pair.tensor_b for la in result.layers}
    assert pairs == {
        "conv1": "relu",
        "pool1": "max_pool2d",
        "conv2": "relu_1",
        "conv3": "relu_2",
        "pool2": "max_pool2d_1",
        "conv4": "relu_3",
        "conv5": "relu_4",
        "pool3": "max_pool2d_2",
        "fc1": "relu_5",  # read where fc2 reads it: after the ReLU
        "fc2": "output",
    }
    assert result.layers[0].pair.tensor_a == "/1/Relu_output_0"


def test_quantized_layers_are_read_after_their_quantize_dequantize_pair(folder):
    """QDQ fuses Conv+ReLU into the quantize clamp: conv1 pairs with the dequantized, rectified tensor."""
    graph_a = ModelGraph.load(DEMO)
    graph_b = ModelGraph.load(quantized_demo(folder / "qdq_pairs.onnx", "QDQ"))
    pairs, notes = pair_layers(graph_a, graph_b, graph_a.shapes(SHAPE), graph_b.shapes(SHAPE))
    names = {p.name: (p.tensor_a, p.tensor_b) for p in pairs}
    assert names["conv1"] == ("/features/relu1/Relu_output_0", "/features/relu1/Relu_output_0_DequantizeLinear_Output")
    assert names["fc1"] == (
        "/classifier/relu4/Relu_output_0",
        "/classifier/relu4/Relu_output_0_DequantizeLinear_Output",
    )
    assert names["fc2"] == ("logits", "logits")
    assert len(pairs) == 8 and notes == []


def test_layers_in_another_layout_are_compared_after_moving_channels_first(folder):
    """B takes NHWC pictures and keeps its conv output channel-last; --map pairs it with A's NCHW one."""
    rng = np.random.default_rng(1)
    weights = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "fc": rng.standard_normal((5, 256))}
    weights["fc"] = weights["fc"].astype(np.float32)
    a = make_model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("Flatten", ["r"], ["f"]),
            helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
        ],
        (1, 3, 8, 8),
        "y",
        weights,
    )
    b = make_model(
        [
            helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]),
            helper.make_node("Conv", ["xt", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("Transpose", ["r"], ["channel_last"], perm=[0, 2, 3, 1]),
            helper.make_node("Transpose", ["channel_last"], ["back"], perm=[0, 3, 1, 2]),
            helper.make_node("Flatten", ["back"], ["f"]),
            helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
        ],
        (1, 8, 8, 3),
        "y",
        weights,
    )
    path_a, path_b = saved(a, folder, "nchw.onnx"), saved(b, folder, "nhwc.onnx")
    picture = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    tensor = folder / "tensor.npy"
    np.save(tensor, load(path_a).prepare(picture)[0])  # an NCHW tensor: moved to B's layout
    result = onnxviz.compare(path_a, path_b, [picture, tensor], mapping={"r": "channel_last"}, top=2, tolerance=0)
    assert result.ok, result.failures
    (layer,) = result.layers
    assert layer.pair.nhwc_b and layer.pair.shape == (1, 4, 8, 8)
    assert (layer.relative_error == 0).all()
    assert "channel-last" in layer.note
    with pytest.raises(UsageError, match="not the same tensor in another layout"):
        onnxviz.compare(path_a, path_b, [picture], mapping={"r": "f"}, top=0)


# -- measures against independent references ----------------------------------------------------------


def test_activation_error_and_cosine_match_numpy_on_plain_onnxruntime(corrupted, inputs):
    result = onnxviz.compare(DEMO, corrupted, PICTURES, top=0)
    tensors = [la.pair.tensor_a for la in result.layers]
    assert [la.pair.tensor_b for la in result.layers] == tensors  # same exporter, same names
    a = dict(zip(tensors, exposed(DEMO, tensors).run(None, {"input": inputs}), strict=True))
    b = dict(zip(tensors, exposed(corrupted, tensors).run(None, {"input": inputs}), strict=True))
    for la in result.layers:
        va = a[la.pair.tensor_a].reshape(len(inputs), -1).astype(np.float64)
        vb = b[la.pair.tensor_b].reshape(len(inputs), -1).astype(np.float64)
        error = np.linalg.norm(vb - va, axis=1) / np.linalg.norm(va, axis=1)
        cosine = (va * vb).sum(axis=1) / (np.linalg.norm(va, axis=1) * np.linalg.norm(vb, axis=1))
        np.testing.assert_allclose(la.relative_error, error, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(la.cosine, cosine, rtol=0, atol=1e-12)
    assert result.layers[0].relative_error.max() == 0 and result.layers[2].relative_error.min() > 0.05


def test_top1_agreement_and_probability_change_match_plain_onnxruntime(folder, inputs):
    """B swaps the fc2 rows of classes 0 and 6: images whose top-1 is one of them disagree."""

    def swap(name, values):
        if name in ("classifier.fc2.weight", "classifier.fc2.bias"):
            values[[0, 6]] = values[[6, 0]]
        return values

    swapped = saved(with_weights(DEMO, swap), folder, "swapped.onnx")
    result = onnxviz.compare(DEMO, swapped, PICTURES, top=0)
    logits_a = session(onnx.load(DEMO)).run(None, {"input": inputs})[0].astype(np.float64)
    logits_b = session(onnx.load(swapped)).run(None, {"input": inputs})[0].astype(np.float64)
    p_a = np.exp(logits_a) / np.exp(logits_a).sum(axis=1, keepdims=True)
    p_b = np.exp(logits_b) / np.exp(logits_b).sum(axis=1, keepdims=True)
    assert [i.top_a for i in result.images] == p_a.argmax(axis=1).tolist()
    assert [i.top_b for i in result.images] == p_b.argmax(axis=1).tolist()
    np.testing.assert_allclose([i.max_dp for i in result.images], np.abs(p_a - p_b).max(axis=1), atol=1e-12)
    flipped = [i for i in result.images if not i.agree]
    assert flipped, "the sample pictures include classes 0 or 6"
    assert all("top-1" in i.failed for i in flipped) and not result.ok
    assert result.first_diverging_layer == "fc2"  # every earlier layer is untouched


def test_projection_cosines_are_those_of_the_projections_of_a_s_strongest_channels(corrupted, inputs):
    result = onnxviz.compare(DEMO, corrupted, PICTURES[:2], layers=["conv2", "pool3"], top=3)
    a, b = load(DEMO), load(corrupted)
    for la in result.layers:
        activation = exposed(DEMO, [la.pair.tensor_a]).run(None, {"input": inputs[:2]})[0]
        for i, x in enumerate(inputs[:2]):
            strongest = activation[i].reshape(activation.shape[1], -1).max(axis=1)
            chosen = np.argsort(-strongest, kind="stable")[:3]
            assert la.channels[i].tolist() == chosen.tolist()
            pa = a.project(x, node=la.pair.tensor_a, channels=chosen.tolist()).projections.reshape(3, -1)
            pb = b.project(x, node=la.pair.tensor_b, channels=chosen.tolist()).projections.reshape(3, -1)
            cosine = (pa * pb).sum(axis=1) / (np.linalg.norm(pa, axis=1) * np.linalg.norm(pb, axis=1))
            np.testing.assert_allclose(la.channel_cosines[i], cosine, atol=1e-6)
            assert la.projection_cosine[i] == la.channel_cosines[i].min()


def test_occlusion_correlation_matches_numpy_occlusion_maps(corrupted, inputs):
    result = onnxviz.compare(DEMO, corrupted, PICTURES[:2], top=0, occlusion=True, patch=16, stride=8)
    for image, x in zip(result.images, inputs[:2], strict=True):
        maps = []
        for path in (DEMO, corrupted):
            batch = np.repeat(x[None], 49, axis=0)
            for k in range(49):
                r, c = divmod(k, 7)
                batch[k, :, 8 * r : 8 * r + 16, 8 * c : 8 * c + 16] = 0
            logits = session(onnx.load(path)).run(None, {"input": batch})[0].astype(np.float64)
            maps.append((np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True))[:, image.top_a])
        assert image.occlusion_correlation == pytest.approx(np.corrcoef(*maps)[0, 1], abs=1e-4)
        assert image.occlusion_max_difference == pytest.approx(np.abs(maps[0] - maps[1]).max(), abs=1e-6)


# -- verdicts and tolerances ----------------------------------------------------------------------------


def test_a_corrupted_conv_fails_naming_the_first_diverging_layer(capsys, corrupted):
    code, out, _ = run_cli(capsys, "compare", DEMO, corrupted, *PICTURES[:2], "--top", "1", "--device", "cpu", "--json")
    summary = json.loads(out)
    assert code == 1 and not summary["ok"]
    assert summary["first_diverging_layer"] == "conv2"
    assert [la["ok"] for la in summary["layers"][:2]] == [True, True]
    assert summary["verdict"].startswith("FAIL") and "conv2" in summary["verdict"]
    code, out, _ = run_cli(capsys, "compare", DEMO, corrupted, *PICTURES[:2], "--top", "0", "--device", "cpu")
    assert code == 1 and "first diverging layer conv2" in out
    # Even the loosest (int8) tolerances catch it, at the corrupted layer.
    result = onnxviz.compare(DEMO, corrupted, PICTURES, top=0, precision="int8")
    assert not result.ok and result.first_diverging_layer == "conv2"


def test_tolerance_scales_every_default_and_decides_the_exit_code(capsys, corrupted):
    result = onnxviz.compare(DEMO, corrupted, PICTURES[:2], top=0, tolerance=1e4)
    limits = DEFAULT_TOLERANCES["fp32"]
    assert result.tolerance.relative_error == pytest.approx(limits.relative_error * 1e4)
    assert result.tolerance.projection == pytest.approx(limits.projection * 1e4)
    r = limits.relative_error * 1e4
    assert result.tolerance.cosine == pytest.approx(1 - np.sqrt(1 - r * r))  # the most an error r can turn
    assert result.ok
    code, out, _ = run_cli(capsys, "compare", DEMO, DEMO, PICTURES[0], "--top", "0", "--device", "cpu")
    assert code == 0 and "PASS" in out and "conv1" in out


def test_non_finite_values_in_b_are_beyond_any_tolerance(folder):
    """An overflow (fp16 saturating to inf, then NaN) must not pass because NaN compares false."""

    def poison(name, values):
        if name == "features.conv3.bias":
            values[5] = np.nan
        return values

    broken = saved(with_weights(DEMO, poison), folder, "nan.onnx")
    result = onnxviz.compare(DEMO, broken, PICTURES[:2], top=0, tolerance=1e6, occlusion=True)
    assert not result.ok and result.first_diverging_layer == "conv3"
    assert all(not i.ok for i in result.images)


def test_precision_is_read_from_the_graphs(folder):
    assert precision_of(ModelGraph.load(DEMO)) == "fp32"
    assert precision_of(ModelGraph.load(fp16_demo(folder / "fp16_kind.onnx"))) == "fp16"
    assert precision_of(ModelGraph.load(quantized_demo(folder / "qdq_kind.onnx", "QDQ"))) == "int8"


def test_one_batched_forward_run_per_model_covers_all_layers_and_images(monkeypatch):
    runs = []
    original = comparison.run_bound

    def counted(session, inputs, device, what, keep=frozenset()):
        runs.append(next(iter(inputs.values())).shape[0])
        return original(session, inputs, device, what, keep)

    monkeypatch.setattr(comparison, "run_bound", counted)
    result = onnxviz.compare(DEMO, DEMO, PICTURES, top=0)
    assert len(result.layers) == 8 and runs == [len(PICTURES), len(PICTURES)]


# -- bad input ------------------------------------------------------------------------------------------


def test_bad_requests_exit_2_with_one_paragraph(capsys, folder):
    vgg = FIXTURES / "vgg_like_torchscript.onnx"
    fewer_classes = onnx.load(DEMO)
    for tensor in fewer_classes.graph.initializer:
        if tensor.name.startswith("classifier.fc2"):
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor)[:7], tensor.name))
    seven = saved(fewer_classes, folder, "seven.onnx")
    cases = [
        (("--layers", "conv9"), DEMO, "Model A: No node, tensor or alias named 'conv9'"),
        (("--map", "conv1=nothing_here"), DEMO, "Model B: No node"),
        (("--map", "conv1"), DEMO, "--map takes A=B"),
        (("--map", "conv1=pool1"), DEMO, "not the same tensor in another layout"),
        (("--tolerance", "-1"), DEMO, "--tolerance must not be negative"),
        (("--precision", "int4"), DEMO, "Unknown --precision 'int4'"),
        ((), vgg, "The models take different inputs"),
        ((), seven, "A has 8 classes, B has 7"),
    ]
    for options, other, message in cases:
        code, _, err = run_cli(capsys, "compare", DEMO, other, PICTURES[0], "--top", "0", "--device", "cpu", *options)
        assert code == 2, (options, err)
        assert message in " ".join(err.split()), (message, err)
    code, _, err = run_cli(capsys, "compare", DEMO, DEMO)
    assert code == 2 and "Missing argument" in err
    with pytest.raises(UsageError, match="at least one image"):
        onnxviz.compare(DEMO, DEMO, [])


def test_no_common_layer_and_renumbered_aliases_are_refused(folder):
    def net(convs: int) -> Path:
        nodes, weights, current = [], {}, "x"
        for i in range(convs):
            weights[f"w{i}"] = np.random.default_rng(i).standard_normal((3, 3, 3, 3)).astype(np.float32)
            nodes += [
                helper.make_node("Conv", [current, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
            ]
            current = f"r{i}"
        nodes.append(helper.make_node("GlobalAveragePool", [current], ["y"]))
        return saved(make_model(nodes, (1, 3, 8, 8), "y", weights), folder, f"convs{convs}.onnx")

    one, two = net(1), net(2)
    picture = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(UsageError, match="no layer in common") as caught:
        onnxviz.compare(one, two, [picture], top=0)
    assert "conv layers not paired: A has 1, B has 2" in caught.value.message
    with pytest.raises(UsageError, match="number their conv layers differently"):
        onnxviz.compare(one, two, [picture], layers=["conv1"], top=0)
    with pytest.raises(UnknownNodeError):
        onnxviz.compare(one, two, [picture], mapping={"conv1": "conv7"}, top=0)
    result = onnxviz.compare(one, two, [picture], mapping={"conv1": "conv1"}, top=0, tolerance=0)
    assert result.layers[0].ok and result.layers[0].pair.name == "conv1=conv1"
    assert not result.ok  # the outputs differ by B's second conv


# -- conversions of the demo model ----------------------------------------------------------------------


def test_the_fp16_conversion_passes_within_the_fp16_tolerance(folder):
    result = onnxviz.compare(DEMO, fp16_demo(folder / "fp16.onnx"), PICTURES, occlusion=True)
    assert result.tolerance.precision == "fp16"
    assert result.ok, result.failures
    assert all(la.projection_cosine is not None for la in result.layers)
    assert max(la.relative_error.max() for la in result.layers) > 0  # really half precision


def test_the_qdq_conversion_passes_within_the_int8_tolerance(folder):
    result = onnxviz.compare(DEMO, quantized_demo(folder / "qdq.onnx", "QDQ"), PICTURES, occlusion=True)
    assert result.tolerance.precision == "int8"
    assert result.ok, result.failures
    assert len(result.layers) == 8
    assert all(la.projection_cosine is not None for la in result.layers)


def test_the_qoperator_conversion_passes_within_the_int8_tolerance(folder):
    """Loading turns QLinear ops (and the integer max-pools between them) into their QDQ form, so every
    layer pairs, projects and stays within the int8 tolerance, as the QDQ conversion does."""
    result = onnxviz.compare(DEMO, quantized_demo(folder / "qop.onnx", "QOperator"), PICTURES, occlusion=True)
    assert result.tolerance.precision == "int8"
    assert result.ok, result.failures
    assert [la.pair.name for la in result.layers] == DEMO_LAYERS
    assert all(la.projection_cosine is not None and not la.projection_error for la in result.layers)
    assert max(la.relative_error.max() for la in result.layers) > 1e-3  # really quantised
    assert any(note.startswith("B: QOperator model") for note in result.notes)


def test_a_model_with_no_graph_output_is_an_error_not_an_index_error(tmp_path) -> None:
    """Found by the long fuzz: compare read the first output name of a model that has none."""
    import onnx as onnx_lib

    from onnxviz.errors import InvalidModelError
    from tests.helpers import DEMO

    model = onnx_lib.load(str(DEMO))
    del model.graph.output[:]
    path = tmp_path / "no_output.onnx"
    onnx_lib.save(model, str(path))
    with pytest.raises(InvalidModelError, match="no graph output"):
        onnxviz.compare(path, DEMO, [DEMO.parent / "images" / "chelsea.png"], top=1)


def test_a_model_whose_output_does_not_depend_on_the_input_is_an_error_not_a_key_error(tmp_path) -> None:
    """Found by the long fuzz on the merged tree: the demo with an attribute changed and a node
    rewired (its case "attribute seed 0; rewire seed 2"), whose logits the image no longer reaches,
    made compare look up the logits' shape among the image's tensors (KeyError)."""
    from onnxviz.errors import InvalidModelError
    from tests.fuzz.inputs import _structural
    from tests.helpers import DEMO

    path = tmp_path / "rewired.onnx"
    path.write_bytes(_structural(_structural(DEMO.read_bytes(), "attribute", 0), "rewire", 2))
    with pytest.raises(InvalidModelError, match="not computed from its input"):
        onnxviz.compare(path, DEMO, [DEMO.parent / "images" / "chelsea.png"], top=1)
