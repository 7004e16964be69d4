"""``occlude`` takes a target: ``--target K`` is ``--target-class K``, an element of the logits
scores the logit itself, an element of a conv map that unit, and bad targets exit 2."""

from __future__ import annotations

import functools
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

import onnxviz
from onnxviz.targets.tensors import ChannelTarget
from tests.cli_helpers import run_cli
from tests.golden.commands import VOLATILE
from tests.helpers import DEMO, session

IMAGES = DEMO.parent / "images"
CIRCLE = IMAGES / "circle.png"
RELU2 = "/features/relu2/Relu_output_0"


def _occlude(capsys, tmp_path, *args: str) -> tuple[dict, np.ndarray]:
    raw = tmp_path / "scores.npy"
    command = ("occlude", DEMO, CIRCLE, "--patch", "16", "--stride", "8", "--device", "cpu")
    code, out, err = run_cli(capsys, *command, *args, "--raw", raw, "--json")
    assert code == 0, err
    summary = json.loads(out)
    return {k: v for k, v in summary.items() if k not in VOLATILE}, np.load(raw)


@functools.cache
def _plain_session(tensor: str) -> ort.InferenceSession:
    """onnxruntime on the untouched file, ``tensor`` declared as its output."""
    proto = onnx.load(str(DEMO))
    del proto.graph.output[:]
    proto.graph.output.append(helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    return session(proto)


def _plain(tensor: str, x: np.ndarray) -> np.ndarray:
    plain = _plain_session(tensor)
    return plain.run(None, {plain.get_inputs()[0].name: x})[0]


def _plain_loop(tensor: str, x: np.ndarray, patch: int, stride: int, read) -> np.ndarray:
    """One plain run per position (zero fill), ``read`` taking the score from ``tensor``'s value."""
    rows = (x.shape[2] - patch) // stride + 1
    scores = np.zeros((rows, rows), np.float32)
    for r in range(rows):
        for c in range(rows):
            occluded = x.copy()
            occluded[:, :, r * stride : r * stride + patch, c * stride : c * stride + patch] = 0
            scores[r, c] = read(_plain(tensor, occluded))
    return scores


def test_target_k_is_target_class_k_exactly(capsys, tmp_path) -> None:
    target, target_scores = _occlude(capsys, tmp_path, "--target", "3")
    target_class, class_scores = _occlude(capsys, tmp_path, "--target-class", "3")
    np.testing.assert_array_equal(target_scores, class_scores)
    assert target == target_class
    assert target["kind"] == "class" and target["target"] == 3
    assert target["resolved_target"]["class"] == 3 and target["resolved_target"]["index"] == [0, 3]


def test_an_element_of_the_logits_scores_the_logit(capsys, tmp_path) -> None:
    summary, scores = _occlude(capsys, tmp_path, "--target", "logits[0,3]")
    demo = onnxviz.load(DEMO, device="cpu")
    x = demo.prepare(CIRCLE)[0]
    loop = _plain_loop("logits", x, 16, 8, lambda logits: logits[0, 3])
    np.testing.assert_allclose(scores, loop, rtol=1e-5, atol=1e-5)
    assert summary["unoccluded_score"] == pytest.approx(float(_plain("logits", x)[0, 3]), rel=1e-6)
    assert summary["resolved_target"] == {
        "kind": "element",
        "class": None,
        "index": [0, 3],
        "box": None,
        "score": summary["unoccluded_score"],
    }
    assert summary["kind"] == "element" and summary["target"] == [0, 3] and summary["node"] == "logits"
    assert "top_class" not in summary and summary["target_label"] is None


def test_an_element_of_a_conv_map_scores_that_unit() -> None:
    demo = onnxviz.load(DEMO, device="cpu")
    x = demo.prepare(CIRCLE)[0]
    result = demo.occlude(x, patch=16, stride=16, target="conv2[0,5,10,20]")
    loop = _plain_loop(RELU2, x, 16, 16, lambda maps: maps[0, 5, 10, 20])
    np.testing.assert_allclose(result.scores, loop, rtol=1e-5, atol=1e-5)
    assert result.resolved.tensor == RELU2 and result.described() == "conv2[0,5,10,20]"


def test_node_and_channel_are_a_feature_map_target(capsys, tmp_path) -> None:
    summary, scores = _occlude(capsys, tmp_path, "--node", "conv2", "--channel", "5")
    demo = onnxviz.load(DEMO, device="cpu")
    result = demo.occlude(CIRCLE, patch=16, stride=8, target=ChannelTarget("conv2", 5))
    np.testing.assert_array_equal(result.scores, scores)
    assert summary["kind"] == "channel" and summary["target"] == 5 and summary["node"] == "conv2"
    assert summary["resolved_target"]["index"] == [0, 5]
    assert summary["resolved_target"]["score"] == summary["unoccluded_score"]


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        ("cat", "Cannot read the target 'cat'"),
        ("8", "Class 8 does not exist: the model has classes 0…7 (its output 'logits' has shape [1, 8])"),
        ("-1", "Class -1 does not exist"),
        ("logits[0,8]", "Index 8 on axis 1 of logits[0,8] is out of bounds: 'logits' has shape [1, 8]"),
        ("logits[0,1,2]", "gives 3 indices, but 'logits' has 2 axes (shape [1, 8])"),
        ("logits[1,3]", "batch index is 0"),
        ("logits[0,x]", "the index of an element is integers"),
        ("nowhere[0,1]", "No node, tensor or alias named 'nowhere'"),
    ],
)
def test_a_target_that_does_not_fit_exits_2_saying_why(capsys, target: str, needle: str) -> None:
    code, out, err = run_cli(capsys, "occlude", DEMO, CIRCLE, "--device", "cpu", "--target", target)
    assert code == 2 and not out
    assert needle in " ".join(err.split()), err
