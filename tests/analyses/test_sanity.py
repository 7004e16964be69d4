"""``sanity`` equals its independent references: the per-step Spearman and SSIM of a torch model
randomised with the contract's draws, its maps by torch autograd, captum and pytorch-grad-cam,
measured by scipy and scikit-image (``scripts/reference_trust.py``, stored so none of them is
needed); the draws, the order and the in-memory randomised models checked on hand-built graphs."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import helper

import onnxviz
from onnxviz.analyses.sanity.randomise import drawn_tensors, parameterised_nodes, randomised_graph
from onnxviz.analyses.sanity.similarity import normalised, spearman, ssim
from onnxviz.errors import UsageError
from onnxviz.graph.model import ModelGraph
from tests.cli_helpers import run_cli
from tests.helpers import FIXTURES, ROOT, make_model, session

REFERENCES = np.load(ROOT / "tests" / "fixtures" / "trust_references.npz")
INPUTS = REFERENCES["inputs"]
MODEL = FIXTURES / "attr_vgg.onnx"
METHODS = ["saliency", "guided", "ig", "gradcam"]
MEASURES = ("spearman", "spearman_signed", "ssim")


@pytest.fixture(scope="module")
def checked():
    model = onnxviz.load(MODEL)
    settings = {"seed": int(REFERENCES["seed"]), "steps": int(REFERENCES["ig_steps"])}
    return model.sanity(list(INPUTS), method=METHODS, **settings)


@pytest.mark.parametrize("method", METHODS)
def test_each_step_measures_equal_the_torch_reference(checked, method):
    for measure in MEASURES:
        ours = getattr(checked, measure)[method]
        reference = REFERENCES[f"sanity/{method}/{measure}"]
        assert ours.shape == reference.shape == (len(INPUTS), len(REFERENCES["order"]))
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
        np.testing.assert_allclose(ours, reference, atol=1e-3, equal_nan=True, err_msg=f"{method} {measure}")


def test_randomisation_runs_from_the_output_down_naming_the_drawn_tensors(checked):
    summary = checked.summary()
    modules = [str(m) for m in REFERENCES["order"]]
    assert [layer.split("/")[-2] for layer in summary["layers"]] == modules
    assert summary["tensors"] == [[f"{m}.weight", f"{m}.bias"] for m in modules]
    assert [t["class"] for t in summary["images"].values()] == REFERENCES["targets"].tolist()


def test_the_original_maps_stay_and_later_steps_decorrelate(checked):
    """The original map is the method's own map; the measures are undefined (null) where a map is
    dead, and a fully randomised network's gradient no longer ranks pixels as the trained one."""
    assert checked.maps["gradcam"].shape == (len(REFERENCES["order"]) + 1, len(INPUTS), 64, 64)
    assert abs(checked.spearman["saliency"][:, -1]).max() < 0.3
    nulls = [v for row in checked.summary()["methods"]["gradcam"]["ssim"] for v in row if v is None]
    assert len(nulls) == int(np.isnan(REFERENCES["sanity/gradcam/ssim"]).sum())


def test_the_command_writes_json_and_the_figure_and_leaves_the_model_file_alone(capsys, tmp_path, monkeypatch):
    copy = tmp_path / "model" / "vgg.onnx"
    copy.parent.mkdir()
    shutil.copy(MODEL, copy)
    before = hashlib.sha256(copy.read_bytes()).hexdigest()
    monkeypatch.setenv("ONNXVIZ_CACHE_DIR", str(tmp_path / "cache"))
    image = tmp_path / "x.npy"
    np.save(image, INPUTS[0])
    out = tmp_path / "grid.png"
    code, stdout, _ = run_cli(capsys, "sanity", copy, image, "--method", "saliency,gradcam", "--json", "--out", out)
    assert code == 0
    summary = json.loads(stdout)
    assert set(summary["methods"]) == {"saliency", "gradcam"}
    assert len(summary["methods"]["saliency"]["spearman"][0]) == len(summary["layers"]) == 5
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == before
    assert [p.name for p in copy.parent.iterdir()] == ["vgg.onnx"]  # no randomised model written beside it
    assert out.stat().st_size > 0


def test_a_model_with_no_parameterised_node_exits_2(capsys, tmp_path):
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["y"], name="flatten"),
    ]
    path = tmp_path / "plain.onnx"
    onnx.save(make_model(nodes, (1, 3, 16, 16), "y"), path)
    image = tmp_path / "x.npy"
    np.save(image, np.ones((3, 16, 16), np.float32))
    code, _, err = run_cli(capsys, "sanity", path, image, "--method", "saliency")
    assert code == 2
    assert "no parameterised node" in err
    with pytest.raises(UsageError):
        parameterised_nodes(ModelGraph.from_proto(onnx.load(path)))


def _normalised_model() -> onnx.ModelProto:
    """A Constant-node Conv weight, a BatchNormalization and a Gemm: every kind of weight."""
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["w"], name="weight", value=onnx.numpy_helper.from_array(weight)),
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["n"], name="bn"),
        helper.make_node("Relu", ["n"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc", "fc_b"], ["y"], transB=1, name="fc"),
    ]
    arrays = {
        "b": rng.standard_normal(4),
        "scale": rng.uniform(0.5, 1.5, 4),
        "shift": rng.standard_normal(4),
        "mean": rng.standard_normal(4),
        "var": rng.uniform(0.5, 1.5, 4),
        "fc": rng.standard_normal((5, 4)),
        "fc_b": rng.standard_normal(5),
    }
    return make_model(nodes, (1, 3, 8, 8), "y", {k: v.astype(np.float32) for k, v in arrays.items()})


def test_each_node_draws_its_tensors_from_its_own_generator_with_their_mean_and_std():
    graph = ModelGraph.from_proto(_normalised_model())
    order = parameterised_nodes(graph)
    assert [(p.node, p.tensors) for p in order] == [
        ("fc", ("fc", "fc_b")),
        ("bn", ("scale", "shift")),  # the running statistics are not redrawn
        ("conv", ("w", "b")),
    ]
    for position, node in enumerate(order):
        rng = np.random.default_rng([7, position])
        drawn = drawn_tensors(graph, node, position, seed=7)
        for name in node.tensors:
            original = graph.constants[name].astype(np.float64)
            expected = rng.normal(original.mean(), original.std(), original.shape).astype(np.float32)
            np.testing.assert_array_equal(drawn[name], expected)


def test_a_randomised_graph_computes_the_model_with_the_drawn_weights_and_leaves_the_original():
    proto = _normalised_model()
    graph = ModelGraph.from_proto(proto)
    kept = {name: value.copy() for name, value in graph.constants.items()}
    drawn = {}
    for position, node in enumerate(parameterised_nodes(graph)):
        drawn.update(drawn_tensors(graph, node, position, seed=0))
    randomised = randomised_graph(graph, drawn)
    assert randomised.path is None
    for name, value in kept.items():
        np.testing.assert_array_equal(graph.constants[name], value)
    # The same network written by hand with the drawn weights as initializers, run by onnxruntime.
    expected_model = onnx.ModelProto()
    expected_model.CopyFrom(proto)
    del expected_model.graph.node[0]  # the Constant weight becomes an initializer
    for tensor in expected_model.graph.initializer:
        if tensor.name in drawn:
            tensor.CopyFrom(onnx.numpy_helper.from_array(drawn[tensor.name], tensor.name))
    expected_model.graph.initializer.append(onnx.numpy_helper.from_array(drawn["w"], "w"))
    x = np.random.default_rng(2).standard_normal((1, 3, 8, 8)).astype(np.float32)
    expected = session(expected_model).run(None, {"x": x})[0]
    found = session(randomised.model).run(["y"], {"x": x})[0]
    np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-6)
    original = session(proto).run(None, {"x": x})[0]
    assert not np.allclose(found, original)


def test_spearman_and_ssim_equal_scipy_and_scikit_image():
    stats = pytest.importorskip("scipy.stats")
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    for shape in ((64, 64), (9, 23), (224, 224)):
        a = rng.random(shape)
        b = a + rng.random(shape)
        a[: shape[0] // 3] = 0  # ties, as a ReLU's dead zone gives
        b = np.round(b, 1)
        assert spearman(a, b) == pytest.approx(stats.spearmanr(a.ravel(), b.ravel()).statistic, abs=1e-12)
        expected = metrics.structural_similarity(normalised(a), normalised(b), data_range=1.0)
        assert ssim(a, b) == pytest.approx(expected, abs=1e-9)
    flat = np.ones((16, 16))
    assert spearman(flat, rng.random((16, 16))) is None
    assert ssim(rng.random((16, 16)), flat) is None


def test_ssim_of_maps_smaller_than_its_window_is_undefined_as_for_scikit_image():
    """Found by the fuzz harness: a model whose input is 2 × 32 gave maps SSIM's 7 × 7 window does
    not fit (an internal error); scikit-image refuses them too, so the value is undefined (null)."""
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(1)
    a, b = rng.random((2, 32)), rng.random((2, 32))
    with pytest.raises(ValueError):
        metrics.structural_similarity(a, b, data_range=1.0)
    assert ssim(a, b) is None
    assert spearman(a, b) is not None  # the rank correlation is still defined
