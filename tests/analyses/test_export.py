"""``export``: the explainer file, run in a fresh onnxruntime session, equals onnxviz's own ``cam
--raw`` / ``attribute --raw`` for batches of 1 and 3 on every cam fixture and every method, and
pytorch-grad-cam's and captum's arrays (``cam_references.npz``, ``attribute_references.npz``); it
holds only default-domain nodes, passes the full checker, shares the model's weights and keeps
the model's opset."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import skimage.data

import onnxviz
from onnxviz.analyses.export.analysis import ATTRIBUTIONS, CAMS, ExportOptions, check_explainer
from onnxviz.errors import UsageError
from tests.helpers import FIXTURES

CAM_REFERENCES = np.load(FIXTURES.parent / "cam_references.npz")
ATTRIBUTE_REFERENCES = np.load(FIXTURES.parent / "attribute_references.npz")
MODELS = ["cam_vgg", "cam_resnet", "cam_mobilenet", "cam_nhwc"]
STEPS = 8  # ig: few steps keep the test quick; the steps are one batch whatever their number


@functools.cache
def load(name: str) -> onnxviz.Model:
    """A fixture model, loaded once for the module (read-only)."""
    return onnxviz.load(FIXTURES / name, device="cpu")


def relative(found: np.ndarray, expected: np.ndarray) -> float:
    assert found.shape == expected.shape
    return float(np.abs(found - expected).max() / np.abs(expected).max())


def fresh_session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]


def own_result(model: onnxviz.Model, images: list[np.ndarray], method: str) -> np.ndarray:
    if method in CAMS:
        return model.cam(images, method=method).raw()
    return model.attribute(images, method=method, steps=STEPS).raw()


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("method", CAMS + ATTRIBUTIONS)
def test_the_explainer_equals_onnxvizs_own_result_for_batches_of_1_and_3(photos, tmp_path, name, method) -> None:
    model = load(f"{name}.onnx")
    explainer = model.export(out=tmp_path / "explainer.onnx", method=method, steps=STEPS)
    session = fresh_session(explainer.path)
    x = np.concatenate([model.prepare(photo)[0] for photo in photos])
    plain = fresh_session(FIXTURES / f"{name}.onnx")
    for batch in (x[:1], x):
        outputs = dict(zip(explainer.outputs, session.run(None, {model.graph.input_name: batch}), strict=True))
        own = own_result(model, list(batch), method)
        assert relative(outputs["attribution"], own) <= 1e-4
        logits = plain.run(None, {model.graph.input_name: batch})[0]
        np.testing.assert_allclose(outputs[explainer.outputs[0]], logits, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(outputs["target_score"], logits.max(axis=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_the_explainer_is_a_standard_model_at_the_models_opset_with_a_free_batch(tmp_path, name) -> None:
    model = load(f"{name}.onnx")
    for method in ("gradcam++", "ig", "guided"):
        path = model.export(out=tmp_path / f"{method}.onnx", method=method, steps=STEPS).path
        explainer = onnx.load(str(path))
        onnx.checker.check_model(explainer, full_check=True)
        assert {node.domain for node in explainer.graph.node} <= {""}
        original = onnx.load(str(FIXTURES / f"{name}.onnx"))
        assert [(o.domain, o.version) for o in explainer.opset_import] == [
            (o.domain, o.version) for o in original.opset_import
        ]
        assert not {"MaxUnpool"} & {node.op_type for node in explainer.graph.node}
        batch = explainer.graph.input[0].type.tensor_type.shape.dim[0].dim_param
        assert batch
        for value in (*explainer.graph.input, *explainer.graph.output):
            assert value.type.tensor_type.shape.dim[0].dim_param == batch, value.name


@pytest.mark.parametrize("name", ["cam_vgg", "cam_resnet"])
def test_the_weights_are_the_models_own_shared_not_copied(tmp_path, name) -> None:
    model = load(f"{name}.onnx")
    explainer = onnx.load(str(model.export(out=tmp_path / "e.onnx", method="saliency").path))
    original = {i.name: i.raw_data for i in onnx.load(str(FIXTURES / f"{name}.onnx")).graph.initializer}
    found = {i.name: i.raw_data for i in explainer.graph.initializer}
    assert {n: found[n] for n in original} == original
    added = sum(len(i.raw_data) for n, i in zip(found, explainer.graph.initializer, strict=True) if n not in original)
    assert added < 0.05 * sum(len(v) for v in original.values())


@pytest.mark.parametrize("name", ["vgg", "resnet", "mobilenet", "nhwc"])
@pytest.mark.parametrize("method", CAMS)
def test_the_cam_explainer_equals_pytorch_grad_cam(tmp_path, name, method) -> None:
    key = f"{name}/{method}/raw"
    model = load(f"cam_{name}.onnx")
    layer = str(CAM_REFERENCES[f"{name}/layer"]) if f"{name}/layer" in CAM_REFERENCES else None
    path = model.export(out=tmp_path / "e.onnx", method=method, layer=layer).path
    (found,) = fresh_session(path).run(["attribution"], {model.graph.input_name: CAM_REFERENCES["inputs"]})
    assert np.abs(found - CAM_REFERENCES[key]).max() <= 1e-3


@pytest.mark.parametrize("name", ["vgg", "resnet"])
@pytest.mark.parametrize("method", ATTRIBUTIONS)
def test_the_attribution_explainer_equals_captum_for_a_class_given_as_input(tmp_path, name, method):
    model = load(f"attr_{name}.onnx")
    steps = int(ATTRIBUTE_REFERENCES["steps"])
    path = model.export(out=tmp_path / "e.onnx", method=method, target="input", steps=steps).path
    inputs = ATTRIBUTE_REFERENCES["inputs"]
    classes = np.full(len(inputs), int(ATTRIBUTE_REFERENCES["target"]), np.int64)
    (found,) = fresh_session(path).run(["attribution"], {model.graph.input_name: inputs, "target": classes})
    key = f"{name}/{method}"
    expected = ATTRIBUTE_REFERENCES[key].astype(np.float32) * ATTRIBUTE_REFERENCES[f"{key}/scale"]
    for row in range(len(inputs)):
        assert np.abs(found[row] - expected[row]).max() <= 1e-3 * np.abs(expected[row]).max()


def test_a_class_given_as_input_is_the_one_explained(photos, tmp_path) -> None:
    model = load("cam_resnet.onnx")
    path = model.export(out=tmp_path / "e.onnx", method="layercam", target="input").path
    x = np.concatenate([model.prepare(photo)[0] for photo in photos])
    classes = np.array([3, 0, 7], np.int64)
    attribution, score = fresh_session(path).run(["attribution", "target_score"], {"input": x, "target": classes})
    own = model.cam(list(x), method="layercam", target=3).raw()
    assert relative(attribution[0], own[0]) <= 1e-4
    logits = fresh_session(FIXTURES / "cam_resnet.onnx").run(None, {"input": x})[0]
    np.testing.assert_allclose(score, logits[np.arange(3), classes], rtol=1e-5)


def test_a_constant_ig_baseline_is_one_number_and_an_array_baseline_is_kept(photos, tmp_path) -> None:
    model = load("cam_vgg.onnx")
    x = model.prepare(photos[0])[0]
    baseline = np.random.default_rng(0).standard_normal(x.shape[1:]).astype(np.float32)
    np.save(tmp_path / "baseline.npy", baseline)
    for given, size in ((0.5, 1), (str(tmp_path / "baseline.npy"), baseline.size)):
        path = model.export(out=tmp_path / "e.onnx", method="ig", steps=STEPS, baseline=given).path
        (found,) = fresh_session(path).run(["attribution"], {"input": x})
        own = model.attribute([x], method="ig", steps=STEPS, baseline=given).raw()
        assert relative(found, own) <= 1e-4
        stored = next(i for i in onnx.load(str(path)).graph.initializer if i.name.endswith("baseline"))
        assert int(np.prod(stored.dims)) == size


def test_check_finds_a_file_that_differs_from_onnxvizs_own_result(picture, tmp_path) -> None:
    model = load("cam_vgg.onnx")
    options = ExportOptions(method="gradcam", out=tmp_path / "e.onnx", check=picture)
    result = model.export(options=options)
    assert result.checked is not None and result.checked.ok
    changed = onnx.load(str(result.path))
    weight = next(i for i in changed.graph.initializer if len(i.dims) == 4)
    array = onnx.numpy_helper.to_array(weight) * 1.5 + 0.01
    weight.CopyFrom(onnx.numpy_helper.from_array(array.astype(np.float32), weight.name))
    checked = check_explainer(model, changed.SerializeToString(), options, result.layer)
    assert not checked.ok


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"method": "gradcams"}, "Unknown method 'gradcams'"),
        ({"method": "scorecam"}, "cannot be exported: it runs the network again"),
        ({"method": "smoothgrad"}, "numpy's seeded generator"),
        ({"method": "gradcam", "layer": "fc1"}, "a cam needs a 4-D layer"),
        ({"method": "saliency", "layer": "conv3"}, "--layer is read by the cam methods"),
    ],
)
def test_what_cannot_be_exported_is_refused_saying_why_and_what_can(tmp_path, given, message) -> None:
    model = load("cam_vgg.onnx")
    with pytest.raises(UsageError, match=message) as caught:
        model.export(out=tmp_path / "e.onnx", **given)
    assert "gradcam" in str(caught.value) or "cam" in str(caught.value)
    assert not (tmp_path / "e.onnx").exists()


def test_the_picture_of_the_check_is_read_as_cam_reads_it(picture, tmp_path) -> None:
    model = load("cam_mobilenet.onnx")
    result = model.export(out=tmp_path / "e.onnx", method="hirescam", check=picture)
    own = model.cam([picture], method="hirescam").raw()
    x = model.prepare(cv2.cvtColor(cv2.imread(str(picture)), cv2.COLOR_BGR2RGB))[0]
    (found,) = fresh_session(result.path).run(["attribution"], {"input": x})
    assert relative(found, own) <= 1e-4 and result.checked.ok


@pytest.mark.parametrize(("name", "opset"), [("opset9_zoo.onnx", 17), ("tf2onnx_nhwc.onnx", 17)])
def test_a_softmax_output_is_kept_the_logit_is_scored_and_an_old_opset_is_raised_to_17(
    photos, tmp_path, name, opset
) -> None:
    model = load(name)
    x = np.concatenate([model.prepare(photo)[0] for photo in photos])
    for method in ("layercam", "ig"):
        explainer = model.export(out=tmp_path / f"{method}.onnx", method=method, steps=STEPS)
        written = onnx.load(str(explainer.path))
        assert [(o.domain, o.version) for o in written.opset_import] == [("", opset)]
        onnx.checker.check_model(written, full_check=True)
        probabilities, score, attribution = fresh_session(explainer.path).run(None, {model.graph.input_name: x})
        original = fresh_session(FIXTURES / name)  # exported with batch 1: one image a run
        plain = np.concatenate([original.run(None, {model.graph.input_name: x[k : k + 1]})[0] for k in range(3)])
        np.testing.assert_allclose(probabilities, plain, rtol=1e-5, atol=1e-6)
        own = own_result(model, list(x), method)
        assert relative(attribution, own) <= 1e-4
        logits = [t.score for t in (model.cam(list(x), method="layercam").targets)]
        np.testing.assert_allclose(score, logits, rtol=1e-5, atol=1e-5)
        assert not np.allclose(score, probabilities.max(axis=1))
