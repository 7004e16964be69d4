"""Occlusion: the batched sweep equals a plain per-position loop; fills, batches, bad arguments."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper

import onnxviz
from onnxviz.analyses._common import fill_values
from onnxviz.analyses.occlusion import OccludeOptions, make_grid
from onnxviz.analyses.report import _scaled_patch
from onnxviz.data.preprocess import Preprocessing
from onnxviz.errors import UsageError
from onnxviz.runtime.incremental import IncrementalOcclusion
from onnxviz.runtime.perturb import occluder_model
from onnxviz.serve.viewer import OCCLUSION_PATCH, OCCLUSION_STRIDE
from onnxviz.targets.classes import ClassTarget
from onnxviz.targets.tensors import ChannelTarget
from tests.cli_helpers import run_cli
from tests.helpers import FIXTURES, fixed_batch_classifier, make_model, session

DEMO = FIXTURES.parents[2] / "models" / "demo.onnx"
TRIANGLE = FIXTURES.parents[2] / "models" / "images" / "triangle.png"


def _loop_scores(
    model: onnx.ModelProto,
    x: np.ndarray,
    patch: int,
    stride: int,
    value: float,
    output: int,
    channel: int | None = None,
) -> np.ndarray:
    """The obvious implementation: one run per position, on the untouched model."""
    plain = session(model)
    height, width = x.shape[2:]
    rows, cols = (height - patch) // stride + 1, (width - patch) // stride + 1
    scores = np.zeros((rows, cols))
    for r in range(rows):
        for c in range(cols):
            occluded = x.copy()
            occluded[:, :, r * stride : r * stride + patch, c * stride : c * stride + patch] = value
            y = plain.run(None, {plain.get_inputs()[0].name: occluded})[0]
            if channel is None:
                e = np.exp(y[0] - y[0].max())
                scores[r, c] = e[output] / e.sum()
            else:
                scores[r, c] = y[0, channel].sum()
    return scores


@pytest.mark.parametrize(("patch", "stride"), [(16, 8), (20, 7), (64, 1)])
def test_class_scores_equal_a_per_position_loop(patch: int, stride: int) -> None:
    model = onnxviz.load(DEMO, device="cpu")
    result = model.occlude(TRIANGLE, patch=patch, stride=stride, fill="zero", batch_size=5)
    expected_rows = (64 - patch) // stride + 1
    assert result.scores.shape == (expected_rows, expected_rows)
    x = model.prepare(TRIANGLE)[0]
    loop = _loop_scores(onnx.load(str(DEMO)), x, patch, stride, 0.0, result.target)
    np.testing.assert_allclose(result.scores, loop, rtol=1e-4, atol=1e-6)
    assert result.target == 2 and result.label(result.target) == "triangle"
    assert result.top_class.shape == result.scores.shape


def test_feature_map_scores_equal_a_per_position_loop() -> None:
    model = onnxviz.load(FIXTURES / "vgg_like_torchscript.onnx", device="cpu")
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    result = model.occlude(x, patch=8, stride=4, fill=0.5, target=ChannelTarget("conv3", 5))
    graph = model.graph
    tensor = graph.resolve("conv3").tensor
    cut = onnx.ModelProto()
    cut.CopyFrom(graph.model)
    del cut.graph.output[:]
    cut.graph.output.append(helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    loop = _loop_scores(cut, x, 8, 4, 0.5, 0, channel=5)
    np.testing.assert_allclose(result.scores, loop, rtol=1e-4, atol=1e-4)
    assert result.kind == "channel" and result.top_class is None


def test_fills_are_in_preprocessed_space() -> None:
    x = np.arange(2 * 4 * 4, dtype=np.float32).reshape(1, 2, 4, 4)
    prep = Preprocessing.preset("imagenet")
    assert np.array_equal(fill_values("zero", x, "nchw", prep), [0, 0])
    np.testing.assert_allclose(fill_values("mean", x, "nchw", prep), [7.5, 23.5])
    np.testing.assert_allclose(
        fill_values("gray", x, "nchw", prep), [(128 / 255 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224], rtol=1e-6
    )
    np.testing.assert_allclose(fill_values("-1.5", x, "nchw", prep), [-1.5, -1.5])
    occluder = session(occluder_model((1, 2, 4, 4), "nchw", 2))
    fill = np.array([9.0, 8.0], np.float32)
    batch = occluder.run(None, {"image": x, "corners": np.array([[0, 0], [2, 1]], np.int64), "fill": fill})[0]
    assert batch.shape == (2, 2, 4, 4)
    assert (batch[0, 0, :2, :2] == 9).all() and (batch[0, 1, :2, :2] == 8).all()
    assert (batch[1, 0, 2:4, 1:3] == 9).all() and (batch[1, 1, 2:4, 1:3] == 8).all()
    untouched = np.ones((4, 4), bool)
    untouched[2:4, 1:3] = False
    assert (batch[1][:, untouched] == x[0][:, untouched]).all()
    nhwc = session(occluder_model((1, 4, 4, 2), "nhwc", 2)).run(
        None, {"image": x.transpose(0, 2, 3, 1).copy(), "corners": np.array([[1, 1]], np.int64), "fill": fill}
    )[0]
    assert (nhwc[0, 1:3, 1:3, 0] == 9).all() and (nhwc[0, 1:3, 1:3, 1] == 8).all() and nhwc[0, 0, 0, 0] == 0
    with pytest.raises(UsageError):
        fill_values("black", x, "nchw", prep)


def test_a_model_exported_with_a_fixed_batch_still_runs_batched() -> None:
    rng = np.random.default_rng(1)
    proto = fixed_batch_classifier(8, [1, 2 * 8 * 8], seed=1)
    model = onnxviz.Model(
        onnxviz.graph.model.ModelGraph.from_proto(proto), onnxviz.runtime.sessions.choose_device("cpu"), Preprocessing()
    )
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    result = model.occlude(x, patch=3, stride=2, batch_size=4)
    assert result.batch_size == 4 and not result.note
    loop = _loop_scores(proto, x, 3, 2, 0.0, result.target)
    np.testing.assert_allclose(result.scores, loop, rtol=1e-4, atol=1e-6)


def test_a_model_that_cannot_batch_falls_back_to_batch_one_with_a_note() -> None:
    rng = np.random.default_rng(2)
    nodes = [
        helper.make_node("Reshape", ["x", "flat"], ["f"], name="flatten_all"),
        helper.make_node("MatMul", ["f", "w"], ["m"], name="dense"),
        helper.make_node("Reshape", ["m", "row"], ["y"], name="as_row"),
    ]
    inits = {
        "flat": np.array([-1], np.int64),
        "w": rng.standard_normal((3 * 6 * 6, 5)).astype(np.float32),
        "row": np.array([1, 5], np.int64),
    }
    proto = make_model(nodes, (1, 3, 6, 6), "y", inits)
    model = onnxviz.Model(
        onnxviz.graph.model.ModelGraph.from_proto(proto), onnxviz.runtime.sessions.choose_device("cpu"), Preprocessing()
    )
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    result = model.occlude(x, patch=2, stride=2)
    assert result.batch_size == 1 and "batch 1" in result.note
    np.testing.assert_allclose(result.scores, _loop_scores(proto, x, 2, 2, 0.0, result.target), rtol=1e-4)


def test_grid_geometry_and_bad_arguments() -> None:
    grid = make_grid(32, 16, 224, 200)
    assert (grid.rows, grid.cols) == ((224 - 32) // 16 + 1, (200 - 32) // 16 + 1)
    assert grid.corners()[1] == (0, 16)
    for patch, stride in ((300, 8), (0, 8), (8, 0), (8, -2)):
        with pytest.raises(UsageError):
            make_grid(patch, stride, 224, 224)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--patch", "65"], "larger than the model input"),
        (["--stride", "0"], "--stride"),
        (["--target-class", "8"], "Class 8 does not exist"),
        (["--channel", "3"], "needs --node"),
        (["--node", "conv2", "--channel", "99"], "Channel 99"),
        (["--node", "conv2", "--target-class", "1"], "either"),
        (["--target", "1", "--target-class", "1"], "either --target or --target-class, not both"),
        (["--target", "1", "--node", "conv2"], "either --target or --node/--channel"),
        (["--target", "1", "--target-class", "1", "--node", "conv2"], "not all three"),
        (["--fill", "black"], "--fill"),
        (["--batch-size", "0"], "--batch-size"),
        (["--labels", "missing.txt"], "labels"),
    ],
)
def test_occlude_usage_errors_exit_2(capsys, args: list[str], needle: str) -> None:
    code, _, err = run_cli(capsys, "occlude", DEMO, TRIANGLE, *args)
    assert code == 2 and needle in err


def test_occlude_without_channels_is_a_usage_error() -> None:
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0, name="total"),
        helper.make_node("Reshape", ["s", "one"], ["y"], name="as_vector"),
    ]
    proto = make_model(nodes, (1, 3, 4, 4), "y", {"one": np.array([1], np.int64)})
    model = onnxviz.Model(
        onnxviz.graph.model.ModelGraph.from_proto(proto), onnxviz.runtime.sessions.choose_device("cpu"), Preprocessing()
    )
    with pytest.raises(UsageError, match="no channels"):
        model.occlude(np.zeros((1, 3, 4, 4), np.float32), patch=2, stride=2, target=ChannelTarget("as_vector"))


def test_occlude_cli_writes_png_raw_and_json(capsys, tmp_path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"class {i}" for i in range(8)))
    png, raw = tmp_path / "o.png", tmp_path / "o.npy"
    code, out, err = run_cli(
        capsys,
        "occlude",
        DEMO,
        TRIANGLE,
        "--patch",
        "16",
        "--stride",
        "8",
        "--fill",
        "gray",
        "--labels",
        labels,
        "--out",
        png,
        "--raw",
        raw,
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    scores = np.load(raw)
    assert scores.dtype == np.float32 and scores.shape == (7, 7)
    assert summary["grid"]["rows"] == 7 and summary["target_label"] == "class 2"
    assert summary["min"]["score"] == pytest.approx(float(scores.min()), rel=1e-6)
    assert len(summary["top_class"]) == 7 and 0 < summary["unoccluded_score"] <= 1
    import cv2

    picture = cv2.imread(str(png))
    assert picture is not None and picture.shape[1] > 600


@pytest.mark.parametrize(
    ("fixture", "node", "patch", "stride"),
    [
        ("vgg_like_torchscript.onnx", None, 8, 3),
        ("vgg_like_torchscript.onnx", "conv4", 5, 2),
        ("resnet_like.onnx", None, 6, 5),
        ("mobilenet_like.onnx", None, 7, 4),
        ("opset9_zoo.onnx", None, 9, 4),
        ("squeezenet_like.onnx", None, 8, 6),
        ("tf2onnx_nhwc.onnx", None, 8, 6),
    ],
)
def test_incremental_occlusion_equals_full_recompute(
    monkeypatch, fixture: str, node: str | None, patch: int, stride: int
) -> None:
    # These small fixtures save less work than the engine asks for by default: run it anyway.
    monkeypatch.setattr("onnxviz.runtime.incremental.plan.MIN_WORK_SAVING", 0.0)
    model = onnxviz.load(FIXTURES / fixture, device="cpu")
    x = np.random.default_rng(4).standard_normal(model.input_shape()).astype(np.float32)
    target = ChannelTarget(node, 1) if node else None
    full = model.occlude(x, patch=patch, stride=stride, target=target, incremental=False, batch_size=7)
    fast = model.occlude(x, patch=patch, stride=stride, target=target, incremental=True, batch_size=7)
    assert not full.incremental
    assert fast.incremental == (model.layout == "nchw")  # NHWC falls back to the full recompute
    if not fast.incremental:  # the same sessions on the same batches: the same numbers, bit for bit
        np.testing.assert_array_equal(fast.scores, full.scores)
    # Crops are summed in another order than whole maps: equal up to float32 rounding.
    np.testing.assert_allclose(fast.scores, full.scores, rtol=2e-5, atol=1e-6 * np.abs(full.scores).max())
    if fast.top_class is not None:
        # No two classes of these random inputs come within rounding of each other: every position agrees.
        np.testing.assert_array_equal(fast.top_class, full.top_class)
        np.testing.assert_allclose(fast.top_probability, full.top_probability, rtol=2e-5, atol=1e-7)


def test_incremental_occlusion_engages_on_a_conv_chain() -> None:
    model = onnxviz.load(DEMO, device="cpu")
    x = model.prepare(TRIANGLE)[0]
    tensor = ClassTarget().tensor(model.graph)
    engine = IncrementalOcclusion(
        model.graph, tensor, x.shape, 16, make_grid(16, 4, 64, 64).corners(), model.device, min_saving=0.0
    )
    assert [s.nodes[0].op_type for s in engine.steps][:2] == ["Conv", "MaxPool"]
    first = engine.steps[0]
    assert first.region.size == (18, 18) and first.region.full == (64, 64)
    assert model.occlude(TRIANGLE, patch=16, stride=4).incremental


def test_cli_full_and_incremental_give_the_same_scores(capsys, tmp_path) -> None:
    results = {}
    for flag in ("--incremental", "--full"):
        raw = tmp_path / f"{flag[2:]}.npy"
        code, out, err = run_cli(
            capsys, "occlude", DEMO, TRIANGLE, "--patch", "12", "--stride", "5", flag, "--raw", raw, "--json"
        )
        assert code == 0, err
        results[flag] = (json.loads(out)["incremental"], np.load(raw))
    assert results["--incremental"][0] is True and results["--full"][0] is False
    np.testing.assert_allclose(results["--incremental"][1], results["--full"][1], rtol=1e-5, atol=1e-7)


def test_the_other_patches_derive_from_the_one_default() -> None:
    """The report's patch is the default's share of an ImageNet side (a seventh), the viewer's form
    starts at half the default: the numbers they always used."""
    assert OccludeOptions().patch == 32
    assert all(_scaled_patch(side) == max(2, side // 7) for side in range(1, 1000))
    assert (OCCLUSION_PATCH, OCCLUSION_STRIDE) == (16, 4)
