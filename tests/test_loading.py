"""Loading real exported graphs: dynamo's fixed-batch views, shape arithmetic, quantised and fp16
conversions, version skew and custom ops. Every test runs real onnxruntime sessions and compares
values: batch-K runs against K batch-1 runs, conversions against the fp32 model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import onnxviz
from onnxviz.model import ModelGraph
from onnxviz.rewrite import forward_model
from tests.helpers import fixed_batch_classifier, session

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
    expected = onnxviz.load(tmp_path / "ts.onnx", device="cpu").project(x, "y", channels=[0, 3], rule="saliency")
    got = onnxviz.load(dynamo, device="cpu").project(x, "y", channels=[0, 3], rule="saliency")
    assert np.abs(expected.projections).max() > 0
    np.testing.assert_allclose(got.projections, expected.projections, rtol=1e-5, atol=1e-6)
