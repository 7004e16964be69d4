"""The helpers every analysis of several images shares (``analyses/_common.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from onnxviz.analyses._common import prepared_images
from onnxviz.errors import UsageError
from tests.helpers import DEMO

PICTURES = DEMO.parent / "images"


def test_several_images_of_different_sizes_run_as_one_batch_at_the_models_size(demo_model) -> None:
    small = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    prepared = prepared_images(demo_model, [PICTURES / "chelsea.png", small])
    assert prepared.inputs.shape == (2, 3, 64, 64) and prepared.shape == (1, 3, 64, 64)
    assert prepared.names == [str(PICTURES / "chelsea.png"), "image1"]
    np.testing.assert_array_equal(prepared.inputs[0], demo_model.prepare(PICTURES / "chelsea.png")[0][0])
    assert [p.shape for p in prepared.pictures] == [(64, 64, 3), (64, 64, 3)]


def test_one_image_alone_is_a_batch_of_one(demo_model) -> None:
    assert prepared_images(demo_model, PICTURES / "circle.png").names == [str(PICTURES / "circle.png")]


@pytest.mark.parametrize(
    ("images", "message"), [([], "at least one image"), ([PICTURES / "circle.png"] * 2, "given more than once")]
)
def test_no_image_or_an_image_twice_is_refused(demo_model, images, message) -> None:
    with pytest.raises(UsageError, match=message):
        prepared_images(demo_model, images)


def test_a_gray_fill_for_more_channels_than_colours_is_one_value_per_channel() -> None:
    """Found by the long fuzz: report with --layout nhwc on an NCHW model's .npy input read 64
    channels and broadcast them against the 3 colours' mean."""
    from onnxviz.analyses._common import fill_values
    from onnxviz.data.preprocess import Preprocessing

    prep = Preprocessing.preset("caffe")
    grey = fill_values("gray", np.zeros((1, 3, 64, 64), np.float32), "nhwc", prep)
    assert grey.shape == (64,) and np.allclose(grey, 128.0 - np.mean(prep.mean))
    np.testing.assert_allclose(
        fill_values("gray", np.zeros((1, 3, 4, 4), np.float32), "nchw", prep), 128.0 - np.asarray(prep.mean), rtol=1e-6
    )
