"""Targets resolved on real forward values: the demo model's logits and intermediate maps from a
plain onnxruntime session, the score each kind reads, its seed, its JSON, and the shape errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper

import onnxviz
from onnxviz.errors import UnknownNodeError, UsageError
from onnxviz.graph.model import ModelGraph
from onnxviz.targets.base import ResolvedTarget, seeds
from onnxviz.targets.classes import ClassTarget
from onnxviz.targets.spelling import parse_target
from onnxviz.targets.tensors import ChannelTarget, ElementTarget
from tests.helpers import DEMO, make_model, session

IMAGES = DEMO.parent / "images"
RELU2 = "/features/relu2/Relu_output_0"  # the demo's conv2 after its ReLU: (1, 32, 32, 32)


@pytest.fixture(scope="module")
def demo():
    return onnxviz.load(DEMO, device="cpu")


def _plain(demo, image: str, tensors: list[str]) -> list[np.ndarray]:
    """Forward values from onnxruntime on the untouched file, ``tensors`` declared as outputs."""
    proto = onnx.load(str(DEMO))
    del proto.graph.output[:]
    proto.graph.output.extend(helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in tensors)
    plain = session(proto)
    x = demo.prepare(IMAGES / image)[0]
    return plain.run(None, {plain.get_inputs()[0].name: x})


@pytest.mark.parametrize("image", ["chelsea.png", "circle.png", "coffee.png", "triangle.png"])
def test_each_images_top1_is_the_argmax_of_its_logits(demo, image: str) -> None:
    (logits,) = _plain(demo, image, ["logits"])
    resolved = parse_target(None).resolve(demo.graph, logits)
    top = int(np.argmax(logits[0]))
    assert resolved == ResolvedTarget("class", "logits", (0, top), float(logits[0, top]), class_index=top)


def test_a_class_target_scores_that_classs_logit(demo) -> None:
    (logits,) = _plain(demo, "chelsea.png", ["logits"])
    for k in range(8):
        resolved = parse_target(str(k)).resolve(demo.graph, logits)
        assert resolved.class_index == k and resolved.index == (0, k)
        assert resolved.score == float(logits[0, k])


def test_a_class_out_of_range_names_the_outputs_shape(demo) -> None:
    (logits,) = _plain(demo, "chelsea.png", ["logits"])
    with pytest.raises(UsageError) as caught:
        ClassTarget(8).resolve(demo.graph, logits)
    assert "Class 8 does not exist: the model has classes 0…7 (its output 'logits' has shape [1, 8])" in str(
        caught.value
    )


def test_a_softmax_at_the_output_is_skipped_for_class_targets() -> None:
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "w"], ["logits"], name="fc"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax"),
    ]
    proto = make_model(nodes, (1, 2, 3, 3), "probabilities", {"w": rng.standard_normal((18, 5)).astype(np.float32)})
    graph = ModelGraph.from_proto(proto)
    assert ClassTarget().tensor(graph) == "logits"
    assert ClassTarget(2).tensor(graph) == "logits"
    # An element is read where it is named: the probabilities, if the caller names them.
    assert ElementTarget("probabilities", (0, 2)).tensor(graph) == "probabilities"


def test_a_model_without_outputs_has_no_class_to_score() -> None:
    graph = ModelGraph.from_proto(make_model([helper.make_node("Relu", ["x"], ["y"])], (1, 1, 2, 2), "y"))
    del graph.model.graph.output[:]
    graph.output_names.clear()
    with pytest.raises(UsageError, match="declares no outputs"):
        ClassTarget().tensor(graph)


def test_an_element_of_an_intermediate_tensor_reads_that_element(demo) -> None:
    (relu2,) = _plain(demo, "chelsea.png", [RELU2])
    for spelling in ("conv2[0,5,3,7]", f"{RELU2}[0,5,3,7]", "/features/relu2/Relu[0,5,3,7]"):
        target = parse_target(spelling)
        assert target.tensor(demo.graph) == RELU2
        resolved = target.resolve(demo.graph, relu2)
        assert resolved.kind == "element" and resolved.index == (0, 5, 3, 7)
        assert resolved.score == float(relu2[0, 5, 3, 7]) and resolved.class_index is None


def test_an_element_of_the_logits_is_the_logit(demo) -> None:
    (logits,) = _plain(demo, "circle.png", ["logits"])
    resolved = parse_target("logits[0,3]").resolve(demo.graph, logits)
    assert resolved.score == float(logits[0, 3]) and resolved.tensor == "logits"


@pytest.mark.parametrize(
    ("spelling", "needle"),
    [
        ("conv2[0,5,3]", "gives 3 indices, but '/features/relu2/Relu_output_0' has 4 axes (shape [1, 32, 32, 32])"),
        ("conv2[0,5,3,7,1]", "gives 5 indices"),
        ("conv2[1,5,3,7]", "batch index is 0"),
        ("conv2[0,32,3,7]", "Index 32 on axis 1 of conv2[0,32,3,7] is out of bounds"),
        ("conv2[0,5,3,-1]", "Index -1 on axis 3"),
        ("conv2[0,5,32,0]", "has shape [1, 32, 32, 32]"),
        ("conv2[]", "gives 0 indices"),
    ],
)
def test_an_element_that_does_not_fit_the_tensor_names_its_shape(demo, spelling: str, needle: str) -> None:
    (relu2,) = _plain(demo, "chelsea.png", [RELU2])
    with pytest.raises(UsageError) as caught:
        parse_target(spelling).resolve(demo.graph, relu2)
    assert needle in str(caught.value)


def test_an_unknown_tensor_is_a_usage_error(demo) -> None:
    with pytest.raises(UnknownNodeError, match="No node, tensor or alias named 'nowhere'"):
        parse_target("nowhere[0,1]").tensor(demo.graph)


def test_a_feature_map_target_scores_the_maps_total_activation(demo) -> None:
    (relu2,) = _plain(demo, "coffee.png", [RELU2])
    chosen = ChannelTarget("conv2", 5).resolve(demo.graph, relu2)
    assert chosen.kind == "channel" and chosen.index == (0, 5) and chosen.layer == "conv2"
    assert chosen.score == pytest.approx(float(relu2[0, 5].sum(dtype=np.float64)), rel=1e-6)
    strongest = ChannelTarget("conv2").resolve(demo.graph, relu2)
    assert strongest.index == (0, int(relu2[0].reshape(32, -1).max(axis=1).argmax()))
    with pytest.raises(UsageError, match=r"Channel 32 does not exist: 'conv2' has channels 0…31"):
        ChannelTarget("conv2", 32).resolve(demo.graph, relu2)


def test_scores_read_every_row_at_the_target(demo) -> None:
    rng = np.random.default_rng(0)
    batch = rng.standard_normal((5, 16, 4, 4)).astype(np.float32)
    element = ResolvedTarget("element", "t", (0, 3, 1, 2), 0.0)
    np.testing.assert_array_equal(element.scores(batch), batch[:, 3, 1, 2])
    channel = ResolvedTarget("channel", "t", (0, 3), 0.0)
    np.testing.assert_allclose(channel.scores(batch), batch[:, 3].sum(axis=(1, 2)), rtol=1e-6)
    logits = rng.standard_normal((5, 8)).astype(np.float32)
    np.testing.assert_array_equal(ResolvedTarget("class", "t", (0, 6), 0.0, 6).scores(logits), logits[:, 6])


def test_the_seed_is_each_images_one_hot_and_the_gradient_of_its_score() -> None:
    rng = np.random.default_rng(1)
    resolved = [
        ResolvedTarget("class", "logits", (0, 2), 0.0, 2),
        ResolvedTarget("class", "logits", (0, 7), 0.0, 7),
        ResolvedTarget("class", "logits", (0, 2), 0.0, 2),
    ]
    seed = seeds(resolved, (1, 8))
    assert seed.shape == (3, 8) and seed.dtype == np.float32
    expected = np.zeros((3, 8), np.float32)
    expected[[0, 1, 2], [2, 7, 2]] = 1
    np.testing.assert_array_equal(seed, expected)
    # ⟨seed, value⟩ is the score, row by row, for any value: the seed is the score's gradient.
    maps = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    for target in (ResolvedTarget("channel", "m", (0, 1), 0.0), ResolvedTarget("element", "m", (0, 3, 2, 0), 0.0)):
        seed = seeds([target, target], maps.shape)
        assert seed.shape == maps.shape
        np.testing.assert_allclose((seed * maps).reshape(2, -1).sum(axis=1), target.scores(maps), rtol=1e-6)


def test_json_carries_the_same_five_keys_for_every_kind(demo) -> None:
    (logits, relu2) = _plain(demo, "chelsea.png", ["logits", RELU2])
    top = int(np.argmax(logits[0]))
    summaries = [
        ClassTarget().resolve(demo.graph, logits).summary(),
        ElementTarget("conv2", (0, 1, 2, 3)).resolve(demo.graph, relu2).summary(),
        ChannelTarget("conv2", 4).resolve(demo.graph, relu2).summary(),
    ]
    assert json.loads(json.dumps(summaries)) == summaries
    assert summaries[0] == {
        "kind": "class",
        "class": top,
        "index": [0, top],
        "box": None,
        "score": float(logits[0, top]),
    }
    assert summaries[1] == {
        "kind": "element",
        "class": None,
        "index": [0, 1, 2, 3],
        "box": None,
        "score": float(relu2[0, 1, 2, 3]),
    }
    assert summaries[2]["kind"] == "channel" and summaries[2]["index"] == [0, 4]


def test_a_mask_png_cut_inside_its_header_is_one_usage_error_with_no_opencv_log_lines(tmp_path, capfd) -> None:
    """The mask is decoded as pictures are (``data.preprocess.decoded``): OpenCV's own WARN/ERROR
    lines about a broken PNG stay off stderr, and the error is onnxviz's."""
    import cv2

    from onnxviz.targets.masks import _read_mask

    whole = cv2.imencode(".png", np.full((8, 8), 255, np.uint8))[1].tobytes()
    path = tmp_path / "mask.png"
    path.write_bytes(whole[:20])
    before = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_WARNING)
    try:
        capfd.readouterr()
        with pytest.raises(UsageError, match="Cannot read the mask"):
            _read_mask(path, (8, 8), "out", [1, 2, 8, 8])
        assert "grfmt_png" not in capfd.readouterr().err
    finally:
        cv2.utils.logging.setLogLevel(before)
