"""Preprocessing: presets, layouts, .npy passthrough, and refusing what does not fit."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from onnxviz.data.preprocess import Preprocessing, picture_from_tensor, prepare, read_image
from onnxviz.errors import ImageError, UsageError


def _solid(rgb: tuple[int, int, int], size: int = 8) -> np.ndarray:
    return np.tile(np.asarray(rgb, np.uint8), (size, size, 1))


def test_imagenet_preset_is_rgb_over_255_minus_mean_over_std() -> None:
    tensor = prepare(_solid((255, 0, 51)), (1, 3, 8, 8), "nchw", Preprocessing.preset("imagenet")).tensor
    expected = (np.array([1.0, 0.0, 0.2]) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(tensor[0, :, 3, 3], expected, rtol=1e-5)


def test_caffe_preset_is_bgr_minus_mean_without_scaling() -> None:
    tensor = prepare(_solid((200, 100, 50)), (1, 3, 8, 8), "nchw", Preprocessing.preset("caffe")).tensor
    np.testing.assert_allclose(tensor[0, :, 0, 0], [50 - 103.939, 100 - 116.779, 200 - 123.68], rtol=1e-5)


def test_tf_preset_maps_pixels_to_minus_one_one_in_nhwc() -> None:
    tensor = prepare(_solid((0, 255, 0)), (1, 8, 8, 3), "nhwc", Preprocessing.preset("tf")).tensor
    assert tensor.shape == (1, 8, 8, 3)
    np.testing.assert_allclose(tensor[0, 0, 0], [-1.0, 1.0, -1.0], atol=1e-6)


def test_resize_to_the_model_size_and_back_to_a_picture() -> None:
    picture = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    prep = Preprocessing.preset("imagenet")
    prepared = prepare(picture, (1, 3, 20, 30), "nchw", prep)
    assert prepared.tensor.shape == (1, 3, 20, 30)
    restored = picture_from_tensor(prepared.tensor[0], "nchw", prep)
    assert np.abs(restored.astype(int) - prepared.picture.astype(int)).max() <= 1


def test_npy_input_is_used_as_is_with_or_without_batch(tmp_path) -> None:
    array = np.random.default_rng(1).standard_normal((3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", array)
    loaded = read_image(tmp_path / "x.npy")
    tensor = prepare(loaded, (1, 3, 8, 8), "nchw", Preprocessing()).tensor
    np.testing.assert_array_equal(tensor[0], array)
    assert prepare(array[None], (1, 3, 8, 8), "nchw", Preprocessing()).tensor.shape == (1, 3, 8, 8)


def test_wrong_tensor_shape_names_both_shapes() -> None:
    with pytest.raises(ImageError, match=r"\(1, 3, 8, 8\)") as info:
        prepare(np.zeros((3, 9, 8), np.float32), (1, 3, 8, 8), "nchw", Preprocessing())
    assert info.value.exit_code == 2


def test_nan_input_is_refused() -> None:
    with pytest.raises(ImageError, match="NaN"):
        prepare(np.full((1, 3, 8, 8), np.nan, np.float32), (1, 3, 8, 8), "nchw", Preprocessing())


def test_unreadable_files_are_image_errors(tmp_path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "bad.npy").write_bytes(b"nope")
    for name in ("broken.png", "bad.npy", "missing.png"):
        with pytest.raises(ImageError):
            read_image(tmp_path / name)


def test_grayscale_picture_feeds_a_colour_model(tmp_path) -> None:
    gray = np.random.default_rng(2).integers(0, 256, (10, 10), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    tensor = prepare(read_image(tmp_path / "gray.png"), (1, 3, 10, 10), "nchw", Preprocessing.preset("raw")).tensor
    np.testing.assert_allclose(tensor[0, 0], tensor[0, 2])


def test_unknown_preset_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="imagenet"):
        Preprocessing.preset("keras")


@pytest.mark.parametrize(("shape", "layout"), [((1, 2, 16, 16), "nchw"), ((1, 16, 16, 5), "nhwc")])
def test_a_model_input_a_picture_cannot_fill_is_an_image_error_not_a_broadcast(shape, layout) -> None:
    """Found by the fuzz: an input of 2 (or 5) channels reached numpy's broadcast of the mean."""
    with pytest.raises(ImageError, match=f"has {shape[1 if layout == 'nchw' else 3]} channels"):
        prepare(_solid((10, 20, 30)), shape, layout, Preprocessing.preset("imagenet"))


def test_a_layout_that_reads_the_size_as_channels_names_the_layout() -> None:
    with pytest.raises(UsageError, match="the NHWC layout does not fit"):
        prepare(_solid((10, 20, 30)), (1, 3, 16, 16), "nhwc", Preprocessing.preset("imagenet"))


def test_a_png_whose_header_claims_too_many_pixels_is_an_image_error(tmp_path) -> None:
    """Found by the fuzz: OpenCV raises (rather than returning None) past its pixel limit."""
    from tests.fuzz.inputs import forged_png

    path = tmp_path / "forged.png"
    path.write_bytes(forged_png(100_000, 100_000))
    with pytest.raises(ImageError, match="cannot be decoded"):
        read_image(path)


@pytest.mark.parametrize(("shape", "layout"), [((3, 64, 64), "nhwc"), ((2, 8, 8), "nchw"), ((8, 8, 4), "nhwc")])
def test_a_tensor_whose_channels_are_not_colours_is_shown_as_a_gray_picture(shape, layout) -> None:
    """Found by the fuzz: correspondence with --layout nhwc on an NCHW model's .npy input reached a
    broadcast of the mean in picture_from_tensor."""
    tensor = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    picture = picture_from_tensor(tensor, layout, Preprocessing.preset("imagenet"))
    hw = shape[:2] if layout == "nhwc" else shape[1:]
    assert picture.dtype == np.uint8 and picture.shape == (*hw, 3)
    assert (picture[..., 0] == picture[..., 2]).all() and picture.min() == 0 and picture.max() == 255


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, "U3"])
def test_an_array_of_values_that_are_not_numbers_is_an_image_error(dtype) -> None:
    """Found by the long fuzz: a complex .npy input printed numpy's ComplexWarning and ran on the
    real parts; strings failed inside numpy."""
    array = np.zeros((3, 8, 8), dtype=dtype)
    with pytest.raises(ImageError, match="takes float32 numbers"):
        prepare(array, (1, 3, 8, 8), "nchw", Preprocessing())


def test_a_truncated_png_is_one_image_error_with_no_opencv_log_lines(tmp_path, capfd) -> None:
    """Found by the long fuzz (report on a cut PNG): OpenCV's own WARN/ERROR lines reached stderr
    beside onnxviz's error."""
    import skimage.data

    whole = cv2.imencode(".png", skimage.data.chelsea())[1].tobytes()
    path = tmp_path / "cut.png"
    path.write_bytes(whole[:20])  # inside the header: OpenCV logs a WARN and an ERROR line
    before = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_WARNING)  # OpenCV's default: it would print
    try:
        capfd.readouterr()
        with pytest.raises(ImageError, match="not an image OpenCV can read"):
            read_image(path)
        assert "grfmt_png" not in capfd.readouterr().err
        assert cv2.utils.logging.getLogLevel() == cv2.utils.logging.LOG_LEVEL_WARNING  # restored afterwards
    finally:
        cv2.utils.logging.setLogLevel(before)
