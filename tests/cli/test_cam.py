"""``onnxviz cam``: several images in one call, the arrays pytorch-grad-cam gives, the JSON the
contract gives, and bad input refused with exit code 2 and one paragraph."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli_helpers import run_cli
from tests.helpers import DEMO, FIXTURES

REFERENCES = np.load(FIXTURES.parent / "cam_references.npz")
TRIANGLE = DEMO.parent / "images" / "triangle.png"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list:
    folder = tmp_path_factory.mktemp("cam_inputs")
    paths = [folder / "chelsea.npy", folder / "astronaut.npy"]
    for path, x in zip(paths, REFERENCES["inputs"], strict=True):
        np.save(path, x)
    return paths


def test_cam_writes_pytorch_grad_cams_arrays_for_several_images(capsys, tmp_path, inputs) -> None:
    raw, layer, picture = tmp_path / "raw.npy", tmp_path / "layer.npy", tmp_path / "cam.png"
    model = FIXTURES / "cam_resnet.onnx"
    layer_name = str(REFERENCES["resnet/layer"])
    args = ["--method", "gradcam++", "--layer", layer_name, "--raw", raw, "--raw-layer", layer, "--out", picture]
    code, out, _ = run_cli(capsys, "cam", model, *inputs, *args)
    assert code == 0
    for found, expected in ((np.load(raw), REFERENCES["resnet/gradcam++/raw"]), (np.load(layer), None)):
        expected = REFERENCES["resnet/gradcam++/layer"] if expected is None else expected
        assert found.dtype == np.float32 and found.shape == expected.shape
        assert np.abs(found - expected).max() <= 1e-3 * expected.max()
    assert picture.stat().st_size > 0
    assert "chelsea.npy" in out and "astronaut.npy" in out and "peak at" in out


def test_cam_json_names_each_image_as_given_with_its_target_and_peak(capsys, tmp_path, inputs) -> None:
    raw = tmp_path / "raw.npy"
    code, out, _ = run_cli(capsys, "cam", FIXTURES / "cam_vgg.onnx", *inputs, "--raw", raw, "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["method"] == "gradcam" and summary["layers"] == ["conv5"]
    assert list(summary["images"]) == [str(path) for path in inputs]
    heatmaps = np.load(raw)
    for entry, heatmap, top1 in zip(summary["images"].values(), heatmaps, REFERENCES["vgg/top1"], strict=True):
        assert set(entry["target"]) == {"kind", "class", "index", "box", "score"}
        assert entry["target"]["class"] == top1
        assert list(np.unravel_index(heatmap.argmax(), heatmap.shape)) == entry["peak"]
    assert summary["raw"] == str(raw)


def test_cam_takes_several_layers_as_a_comma_list(capsys, tmp_path, inputs) -> None:
    raw = tmp_path / "raw.npy"
    layers = f"{REFERENCES['vgg/layer']},{REFERENCES['vgg/second_layer']}"
    code, _, _ = run_cli(capsys, "cam", FIXTURES / "cam_vgg.onnx", *inputs, "--layer", layers, "--raw", raw)
    assert code == 0
    expected = REFERENCES["vgg/two_layers/gradcam/raw"]
    assert np.abs(np.load(raw) - expected).max() <= 1e-3 * expected.max()


@pytest.mark.parametrize("method", ["scorecam", "ablationcam"])
def test_cam_rescoring_methods_write_pytorch_grad_cams_arrays_in_batches(capsys, tmp_path, inputs, method) -> None:
    raw = tmp_path / "raw.npy"
    layer_name = str(REFERENCES["vgg/layer"])
    args = ["--method", method, "--layer", layer_name, "--batch-size", "7", "--raw", raw, "--json"]
    code, out, _ = run_cli(capsys, "cam", FIXTURES / "cam_vgg.onnx", *inputs, *args)
    assert code == 0
    assert json.loads(out)["method"] == method
    expected = REFERENCES[f"vgg/{method}/raw"]
    assert np.abs(np.load(raw) - expected).max() <= 1e-3 * expected.max()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "fullgrad"], "Unknown --method 'fullgrad'"),
        (["--layer", "no-such-layer"], "No node, tensor or alias named 'no-such-layer'"),
        (["--target", "99"], "Class 99 does not exist"),
        (["--layer", "conv3", "--target", "conv2[0,0,0,0]"], "not on the path to the target"),
        (["--layer", "fc1"], "needs a 4-D layer"),
        (["--method", "ablationcam", "--layer", "fc1"], "needs a 4-D layer"),
        (["--layer", "conv2,conv3", "--raw-layer", "x.npy"], "--raw-layer writes the maps of one layer"),
    ],
)
def test_cam_refuses_bad_input_with_exit_2_and_one_paragraph(capsys, args, message) -> None:
    code, out, err = run_cli(capsys, "cam", DEMO, TRIANGLE, *args)
    assert code == 2
    assert out == ""
    assert message in " ".join(err.split())


def test_ablationcam_on_a_layer_that_a_skip_connection_goes_around(capsys, tmp_path, inputs) -> None:
    raw = tmp_path / "raw.npy"
    args = ["--method", "ablationcam", "--layer", str(REFERENCES["resnet_inside/layer"]), "--raw", raw]
    code, _, err = run_cli(capsys, "cam", FIXTURES / "cam_resnet.onnx", *inputs, *args)
    assert code == 0, err
    expected = REFERENCES["resnet_inside/ablationcam/raw"]
    assert np.abs(np.load(raw) - expected).max() <= 1e-3 * np.abs(expected).max()
