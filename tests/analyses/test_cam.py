"""``cam`` equals pytorch-grad-cam's own classes on torch-exported models, and chooses its layer as
the contract says.

The references (``tests/fixtures/cam_references.npz``) are pytorch-grad-cam's arrays for the
``cam_*`` fixtures, made by ``scripts/reference_cams.py``; torch is not needed here.
"""

from __future__ import annotations

import numpy as np
import pytest

import onnxviz
from onnxviz.analyses.cam.layers import nhwc_tensors
from onnxviz.analyses.cam.methods import METHODS, upsampled
from onnxviz.errors import UsageError
from tests.helpers import FIXTURES

REFERENCES = np.load(FIXTURES.parent / "cam_references.npz")
INPUTS = list(REFERENCES["inputs"])
TOLERANCE = 1e-3  # of the reference's largest value


def close(found: np.ndarray, expected: np.ndarray) -> None:
    assert found.shape == expected.shape
    assert np.abs(found - expected).max() <= TOLERANCE * np.abs(expected).max()


@pytest.fixture(scope="module")
def cam_model():
    models: dict[str, onnxviz.Model] = {}

    def get(name: str) -> onnxviz.Model:
        if name not in models:
            models[name] = onnxviz.load(FIXTURES / f"cam_{name}.onnx", device="cpu")
        return models[name]

    return get


def reference_layer(name: str) -> list[str] | None:
    """The layer the reference read, by its ONNX node name; None: the default layer's (mobilenet)."""
    key = f"{name}/layer"
    return [str(REFERENCES[key])] if key in REFERENCES.files else None


def reference_target(name: str, method: str) -> int | None:
    """The class the reference explains where it is not each image's top-1 (mobilenet's ablationcam)."""
    key = f"{name}/{method}/class"
    return int(REFERENCES[key]) if key in REFERENCES.files else None


MODELS = ["vgg", "resnet", "mobilenet", "nhwc"]
CASES = [(name, method) for method in METHODS for name in MODELS if f"{name}/{method}/raw" in REFERENCES.files]


def test_every_method_has_references_on_at_least_three_models() -> None:
    for method in METHODS:
        assert sum(1 for _, m in CASES if m == method) >= 3, method


@pytest.mark.parametrize(("name", "method"), CASES)
def test_every_method_equals_pytorch_grad_cam_at_the_input_and_at_the_layer(cam_model, name, method) -> None:
    target = reference_target(name, method)
    result = cam_model(name).cam(INPUTS, method=method, layer=reference_layer(name), target=target)
    close(result.raw(), REFERENCES[f"{name}/{method}/raw"])
    (layer_map,) = result.maps.values()
    close(layer_map, REFERENCES[f"{name}/{method}/layer"])


def test_the_default_layer_is_the_last_conv_block_not_the_pooled_one(cam_model) -> None:
    model = cam_model("vgg")
    chosen = model.cam(INPUTS[:1])
    assert model.resolve(chosen.layers[0]).tensor == model.resolve(reference_layer("vgg")[0]).tensor
    assert chosen.layers == ["conv5"]


def test_the_default_layer_is_not_the_targets_own_tensor(demo_model) -> None:
    image = "models/images/triangle.png"
    assert demo_model.cam(image).layers == ["pool3"]
    inside = demo_model.cam(image, target="conv3[0,0,0,0]")
    rectified = demo_model.resolve("conv3").tensor
    assert inside.layers == [demo_model.graph.producer[rectified].input[0]]  # the conv's output under its ReLU


def test_an_nhwc_layer_is_read_as_nchw(cam_model) -> None:
    model = onnxviz.load(FIXTURES / "tf2onnx_nhwc.onnx", device="cpu")
    image = np.random.default_rng(0).normal(size=(32, 32, 3)).astype(np.float32)
    default = model.cam([image], method="gradcam++")
    assert model.resolve(default.layers[0]).tensor in nhwc_tensors(model.graph)
    before_the_transpose = model.cam([image], method="gradcam++", layer=["pool2"])
    close(default.raw(), before_the_transpose.raw())


def test_several_layers_average_their_maps_as_pytorch_grad_cam(cam_model) -> None:
    layers = [str(REFERENCES["vgg/layer"]), str(REFERENCES["vgg/second_layer"])]
    result = cam_model("vgg").cam(INPUTS, method="gradcam", layer=layers)
    assert list(result.maps) == layers
    close(result.raw(), REFERENCES["vgg/two_layers/gradcam/raw"])


def test_a_named_class_is_explained_for_every_image(cam_model) -> None:
    named = int(REFERENCES["vgg/named_class"])
    result = cam_model("vgg").cam(INPUTS, target=named, layer=reference_layer("vgg"))
    assert [t.class_index for t in result.targets] == [named, named]
    close(result.raw(), REFERENCES["vgg/named/gradcam/raw"])


def test_each_image_gets_its_own_top1_whatever_the_batch_size(cam_model) -> None:
    model = cam_model("resnet")
    together = model.cam(INPUTS, method="layercam", batch_size=8)
    one_by_one = model.cam(INPUTS, method="layercam", batch_size=1)
    np.testing.assert_allclose(together.raw(), one_by_one.raw(), atol=1e-6)
    assert [t.class_index for t in together.targets] == [t.class_index for t in one_by_one.targets]


@pytest.mark.parametrize("method", ["scorecam", "ablationcam"])
def test_rescoring_methods_give_the_same_maps_whatever_the_batch_size(cam_model, method) -> None:
    model = cam_model("resnet")
    one = model.cam(INPUTS, method=method, batch_size=1)
    seven = model.cam(INPUTS, method=method, batch_size=7)
    np.testing.assert_allclose(one.raw(), seven.raw(), atol=1e-6)
    (one_map,), (seven_map,) = one.maps.values(), seven.maps.values()
    np.testing.assert_allclose(one_map, seven_map, rtol=1e-6, atol=1e-9)


def test_ablation_feeds_the_layers_activations_to_the_graph_cut_there(cam_model) -> None:
    model = cam_model("vgg")
    layer = model.resolve(reference_layer("vgg")[0]).tensor
    model.cam(INPUTS[:1], method="ablationcam", layer=reference_layer("vgg"))
    (tail,) = [runner for key, runner in model.engines.sessions.items() if getattr(key, "start", None) == layer]
    assert [i.name for i in tail.session.get_inputs()] == [layer]


@pytest.mark.parametrize("method", ["ablationcam", "scorecam"])
def test_a_layer_that_a_skip_connection_goes_around_equals_pytorch_grad_cam(cam_model, method) -> None:
    """Inside a residual block: ablationcam's tail is fed the layer and the skip's value (layer1's
    output, from the same forward run), and equals pytorch-grad-cam, which re-runs from the input."""
    model = cam_model("resnet")
    result = model.cam(INPUTS, method=method, layer=[str(REFERENCES["resnet_inside/layer"])], batch_size=5)
    close(result.raw(), REFERENCES[f"resnet_inside/{method}/raw"])
    (layer_map,) = result.maps.values()
    close(layer_map, REFERENCES[f"resnet_inside/{method}/layer"])


def test_the_tail_of_a_layer_inside_a_block_is_fed_what_the_skip_carries(cam_model) -> None:
    model = cam_model("resnet")
    layer = model.resolve(str(REFERENCES["resnet_inside/layer"])).tensor
    model.cam(INPUTS[:1], method="ablationcam", layer=[layer])
    (tail,) = [runner for key, runner in model.engines.sessions.items() if getattr(key, "start", None) == layer]
    # The block's sum reads conv2 (after the layer) and the skip's 1×1 conv of layer1's output.
    assert tail.side_inputs == ["/layer2/skip/skip.0/Conv_output_0"]
    assert [i.name for i in tail.session.get_inputs()] == [layer, *tail.side_inputs]


def test_ablation_of_a_target_whose_score_is_zero_is_refused() -> None:
    class ZeroScore:
        score, size, batch_size = 0.0, (4, 4), 2

        def ablated(self, activations: np.ndarray) -> np.ndarray:
            return np.zeros(len(activations))

    with pytest.raises(UsageError, match="score is 0"):
        METHODS["ablationcam"].rescored(np.ones((3, 2, 2)), ZeroScore())


def test_scorecam_upsampling_keeps_the_corners_as_align_corners_does() -> None:
    a = np.arange(6, dtype=np.float64).reshape(1, 2, 3)
    up = upsampled(a, (3, 5))
    assert up[0, 0, 0] == 0 and up[0, -1, -1] == 5 and up[0, 0, -1] == 2 and up[0, -1, 0] == 3
    np.testing.assert_allclose(up[0, 1, 2], 2.5)  # the centre: the mean of the four middle values


def test_the_summary_gives_each_images_target_and_its_peak(cam_model) -> None:
    result = cam_model("vgg").cam(INPUTS, method="xgradcam")
    summary = result.summary()
    assert summary["method"] == "xgradcam" and summary["layers"] == ["conv5"]
    assert list(summary["images"]) == ["image0", "image1"]
    for entry, heatmap, top1 in zip(summary["images"].values(), result.raw(), REFERENCES["vgg/top1"], strict=True):
        assert entry["target"]["kind"] == "class" and entry["target"]["class"] == top1
        assert heatmap[tuple(entry["peak"])] == heatmap.max()
    assert result.figure().ndim == 3


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"layer": ["fc1"]}, "needs a 4-D layer"),
        ({"layer": ["conv3"], "target": "conv2[0,0,0,0]"}, "not on the path to the target"),
        ({"target": 99}, "Class 99 does not exist"),
        ({"layer": ["no-such-layer"]}, "No node, tensor or alias"),
    ],
)
def test_bad_requests_are_refused_with_onnxvizs_own_error(demo_model, given, message) -> None:
    with pytest.raises(UsageError, match=message):
        demo_model.cam("models/images/triangle.png", **given)


def test_one_array_is_one_image(cam_model) -> None:
    model = cam_model("vgg")
    alone = model.cam(INPUTS[1])
    assert alone.images == ["image0"]
    np.testing.assert_allclose(alone.raw(), model.cam(INPUTS).raw()[1:], atol=1e-6)


def test_no_image_is_refused(demo_model) -> None:
    with pytest.raises(UsageError, match="at least one image"):
        demo_model.cam([])
