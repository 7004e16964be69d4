"""The gradient inverse split at a detector's Concats: the same gradient as the one inverse built
from the same spec, for seeds on one scale (which skip the other branches), seeds on several
scales and dense seeds (which run a stage's whole inverse), and a zero seed; and the split refused
where a branch goes around the Concat or a convolution mixes the branches after it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onnxviz.analyses.cam.layers import default_layer
from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import SEED, InverseSpec
from onnxviz.inverse.split import find_split
from onnxviz.runtime.gradient import GradientEngine
from onnxviz.runtime.projector import Projector
from onnxviz.runtime.sessions import choose_device
from onnxviz.runtime.split_projector import SplitProjector
from tests.helpers import FIXTURES

DEVICE = choose_device("cpu")
DETECTORS = ["yolov8n_tiny", "yolo11n_tiny", "yolov5_like"]
SIZE = (1, 3, 128, 128)


def images(count: int) -> np.ndarray:
    return np.random.default_rng(5).uniform(0, 1, (count, *SIZE[1:])).astype(np.float32)


def engines(name: str, layer: bool) -> tuple[ModelGraph, SplitProjector, Projector]:
    """The split projector the gradient engine chose and the single inverse of the same spec."""
    graph = ModelGraph.load(FIXTURES / f"{name}.onnx")
    target = graph.output_names[0]
    source = default_layer(graph, target, SIZE).tensor if layer else None
    engine = GradientEngine(graph, target, SIZE, DEVICE, source=source)
    spec = InverseSpec(target, SIZE, source=source, rule="saliency", form=DEVICE.form, paired=True)
    return graph, engine.projector, Projector(graph, spec, DEVICE)


def same(split: SplitProjector, whole: Projector, x: np.ndarray, seed: np.ndarray) -> float:
    """max |split − whole| over the whole gradient's largest value (both from their own forward)."""
    ours = split.run_inverse({SEED: seed}, split.forward(x, whole_input(whole)))
    theirs = whole.run_inverse({SEED: seed}, whole.forward(x, whole_input(whole)))
    assert ours.shape == theirs.shape
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-30))


def whole_input(whole: Projector) -> str:
    return whole.forward_session.get_inputs()[0].name


def anchors_of_each_scale(graph: ModelGraph, split: SplitProjector) -> list[tuple[int, ...]]:
    """One element of the output per scale: a class score of an anchor in each branch of the
    split that holds the class scores (ultralytics: along the anchor axis)."""
    shape = graph.shapes(SIZE)[graph.output_names[0]]
    if shape[1] < shape[2]:  # ultralytics (1, 4 + nc, N): the anchors' ranges from the class half's split
        scales = split.stage.branches[split.stage.split.branches[-1].tensor].split.branches
        return [(0, 4, (b.start + b.stop) // 2) for b in scales]
    return [(0, n, 5) for n in (0, shape[1] // 2, shape[1] - 1)]


@pytest.mark.parametrize("layer", [True, False], ids=["to-the-cam-layer", "to-the-input"])
@pytest.mark.parametrize("name", DETECTORS)
def test_a_split_gradient_equals_the_single_inverse(name, layer) -> None:
    graph, split, whole = engines(name, layer)
    assert isinstance(split, SplitProjector)
    shape = graph.shapes(SIZE)[graph.output_names[0]]
    x = images(2)
    for element in anchors_of_each_scale(graph, split):
        seed = np.zeros((1, *shape[1:]), np.float32)
        seed[element] = 1.0
        assert same(split, whole, x[:1], seed) <= 1e-5
    # one seed per scale on one image, and a dense seed: several branches at once
    several = np.zeros((1, *shape[1:]), np.float32)
    for element in anchors_of_each_scale(graph, split):
        several[element] = 1.0
    dense = np.random.default_rng(7).standard_normal((2, *shape[1:])).astype(np.float32)
    assert same(split, whole, x[:1], several) <= 1e-5
    assert same(split, whole, x, dense) <= 1e-5
    zero = split.run_inverse({SEED: np.zeros((2, *shape[1:]), np.float32)}, split.forward(x, graph.input_name))
    assert zero.shape == (2, *graph.shapes(SIZE)[split.source][1:]) and not zero.any()


def test_a_detection_seed_runs_one_scale_and_never_the_whole_inverse() -> None:
    graph, split, _ = engines("yolov8n_tiny", layer=True)
    ran: list[str] = []
    for stage in _stages(split.stage):
        if stage.whole is not None:
            original = stage.whole.run

            def counted(*args, _tensor=stage.spec.target, _run=original):
                ran.append(_tensor)
                return _run(*args)

            stage.whole.run = counted
    shape = graph.shapes(SIZE)[graph.output_names[0]]
    seed = np.zeros((1, *shape[1:]), np.float32)
    seed[anchors_of_each_scale(graph, split)[0]] = 1.0
    split.run_inverse({SEED: seed}, split.forward(images(1), graph.input_name))
    assert ran == ["/model.22/Reshape_3_output_0"]  # the class branch of the 16 × 16 scale, alone
    assert not any(stage.fallback_tried for stage in _stages(split.stage))


def _stages(stage):
    if stage is None:
        return
    yield stage
    for inner in stage.branches.values():
        yield from _stages(inner)


def _conv(name: str, source: str, out: str, channels: int) -> tuple[onnx.NodeProto, onnx.TensorProto]:
    weight = np.random.default_rng(len(name)).standard_normal((channels, 2, 3, 3)).astype(np.float32)
    return (
        helper.make_node("Conv", [source, name], [out], pads=[1, 1, 1, 1]),
        onnx.numpy_helper.from_array(weight, name),
    )


def two_branches(after: str) -> ModelGraph:
    """x → two convs → Concat on channels → ``after``: ``skip`` adds a third conv of x to the
    result (a branch around the Concat), ``conv`` convolves the Concat, ``sigmoid`` is elementwise."""
    nodes, weights = [], []
    for name, out, channels in (("wa", "a", 2), ("wb", "b", 3)):
        node, weight = _conv(name, "x", out, channels)
        nodes.append(node)
        weights.append(weight)
    nodes.append(helper.make_node("Concat", ["a", "b"], ["joined"], axis=1))
    if after == "skip":
        node, weight = _conv("wc", "x", "around", 5)
        nodes += [node, helper.make_node("Add", ["joined", "around"], ["y"])]
        weights.append(weight)
    elif after == "conv":
        weight = np.random.default_rng(1).standard_normal((4, 5, 1, 1)).astype(np.float32)
        nodes.append(helper.make_node("Conv", ["joined", "wd"], ["y"]))
        weights.append(onnx.numpy_helper.from_array(weight, "wd"))
    else:
        nodes.append(helper.make_node("Sigmoid", ["joined"], ["y"]))
    graph = helper.make_graph(
        nodes,
        after,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4 if after == "conv" else 5, 6, 6])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return ModelGraph.from_proto(model)


def test_the_split_is_taken_only_where_every_path_runs_through_the_concat_and_nothing_mixes_after_it() -> None:
    shape = (1, 2, 6, 6)
    found = find_split(two_branches("sigmoid"), "y", None, shape)
    assert found is not None and found.tensor == "joined" and found.axis == 1
    assert [(b.tensor, b.start, b.stop) for b in found.branches] == [("a", 0, 2), ("b", 2, 5)]
    assert find_split(two_branches("skip"), "y", None, shape) is None  # "around" bypasses the Concat
    assert find_split(two_branches("conv"), "y", None, shape) is None  # the conv feeds every branch
    assert find_split(ModelGraph.load(FIXTURES / "cam_resnet.onnx"), "logits", None, (1, 3, 32, 32)) is None
