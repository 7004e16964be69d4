"""Resize / Upsample: the inverse is the transposed sampling of onnxruntime's own kernel.

Checked three ways: the adjoint test over modes × coordinate modes × scales or sizes (hypothesis),
the Jacobian measured column by column on the forward (onnxruntime alone), and the spec's own
formulas for linear/half_pixel and nearest/asymmetric written out in numpy.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from onnx import helper

from onnxviz.errors import UnsupportedOpError
from onnxviz.inverse.rules.resize import AxisResize, axis_sampling_matrix
from tests.helpers import Linearisation, make_model, session
from tests.test_adjoint_ops import SETTINGS, assert_adjoint

SHAPE = (1, 2, 4, 5)
COORDINATE_MODES = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize"]
NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


def resize_model(
    mode: str,
    coordinate_mode: str | None,
    scales: list[float] | None = None,
    sizes: list[int] | None = None,
    opset: int = 13,
    shape: tuple[int, ...] = SHAPE,
    **attrs,
):
    inits: dict[str, np.ndarray] = {}
    if opset < 11:
        inputs = ["x", "scales"]
    else:
        inputs = ["x", "roi", "scales"]
        inits["roi"] = np.array([0, 0, -0.2, 0.1, 1, 1, 0.8, 1.3], np.float32)  # reaches outside: extrapolates
    inits["scales"] = np.array(scales or [], np.float32)
    if sizes is not None:
        inputs.append("sizes")
        inits["sizes"] = np.array(sizes, np.int64)
    if coordinate_mode is not None:
        attrs["coordinate_transformation_mode"] = coordinate_mode
    node = helper.make_node("Resize", inputs, ["y"], mode=mode, name="resize", **attrs)
    return make_model([node], shape, "y", inits, opset=opset)


def _runs(model) -> bool:
    """Whether onnxruntime runs this forward at all (some combinations it refuses)."""
    try:
        session(model).run(None, {"x": np.zeros(SHAPE, np.float32)})
    except (ort.capi.onnxruntime_pybind11_state.Fail, ort.capi.onnxruntime_pybind11_state.InvalidArgument):
        return False
    return True


resize_cases = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["nearest", "linear", "cubic"]),
        "coordinate_mode": st.sampled_from([*COORDINATE_MODES, "half_pixel_symmetric", "tf_half_pixel_for_nn"]),
        "nearest_mode": st.sampled_from(NEAREST_MODES),
        "scales": st.tuples(*[st.sampled_from([0.5, 0.7, 1.0, 1.5, 2.0, 3.0])] * 2),
        "use_sizes": st.booleans(),
        "opset": st.sampled_from([11, 13, 18, 19]),
        "antialias": st.sampled_from([0, 0, 1]),
        "exclude_outside": st.sampled_from([0, 1]),
        "cubic_coeff_a": st.sampled_from([-0.75, -0.5]),
        "extrapolation_value": st.sampled_from([0.0, 0.5]),
        "seed": st.integers(0, 10_000),
    }
)


@SETTINGS
@given(resize_cases)
def test_resize_saliency_is_the_adjoint(case: dict) -> None:
    opset = case["opset"]
    assume(case["coordinate_mode"] != "half_pixel_symmetric" or opset >= 19)
    attrs = {"nearest_mode": case["nearest_mode"], "extrapolation_value": case["extrapolation_value"]}
    if case["mode"] == "cubic":
        attrs["exclude_outside"] = case["exclude_outside"]
        attrs["cubic_coeff_a"] = case["cubic_coeff_a"]
    if opset >= 18 and case["mode"] != "nearest":
        attrs["antialias"] = case["antialias"]
    sh, sw = case["scales"]
    if case["use_sizes"]:
        model = resize_model(
            case["mode"], case["coordinate_mode"], sizes=[1, 2, max(1, int(4 * sh)), max(1, int(5 * sw))], opset=opset
        )
    else:
        model = resize_model(case["mode"], case["coordinate_mode"], [1, 1, sh, sw], opset=opset)
    for key, value in attrs.items():
        model.graph.node[0].attribute.append(helper.make_attribute(key, value))
    assume(_runs(model))
    rng = np.random.default_rng(case["seed"])
    assert_adjoint(model, "y", rng.standard_normal(SHAPE).astype(np.float32), case["seed"])


@pytest.mark.parametrize(
    ("op_type", "opset", "mode"),
    [("Resize", 10, "nearest"), ("Resize", 10, "linear"), ("Upsample", 9, "nearest"), ("Upsample", 9, "linear")],
)
def test_opset_9_and_10_resizes_are_the_adjoint(op_type: str, opset: int, mode: str) -> None:
    node = helper.make_node(op_type, ["x", "scales"], ["y"], mode=mode, name="up")
    model = make_model([node], SHAPE, "y", {"scales": np.array([1, 1, 2, 1.5], np.float32)}, opset=opset)
    assert_adjoint(model, "y", np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32), 2)


def test_opset_7_upsample_is_upgraded_and_inverted() -> None:
    node = helper.make_node("Upsample", ["x"], ["y"], mode="nearest", scales=[1.0, 1.0, 2.0, 3.0], name="up")
    model = make_model([node], SHAPE, "y", opset=7)
    assert_adjoint(model, "y", np.random.default_rng(3).standard_normal(SHAPE).astype(np.float32), 4)


def test_resize_of_an_nhwc_tensor_and_of_a_listed_axis_subset() -> None:
    """Opset 18's ``axes``: scales given for the spatial axes only, here of a channels-last tensor."""
    node = helper.make_node(
        "Resize", ["x", "", "scales"], ["y"], mode="linear", axes=[1, 2], name="resize", antialias=1
    )
    model = make_model([node], (1, 6, 5, 3), "y", {"scales": np.array([0.5, 1.6], np.float32)}, opset=18)
    assert_adjoint(model, "y", np.random.default_rng(5).standard_normal((1, 6, 5, 3)).astype(np.float32), 6)


def _jacobian_by_columns(model, shape: tuple[int, ...]) -> np.ndarray:
    """J[out, in] of a linear forward, measured on onnxruntime alone: the image of each basis
    vector, all in one batch (Resize leaves the batch axis alone)."""
    n = int(np.prod(shape[1:]))
    dynamic = model
    dynamic.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    basis = np.eye(n, dtype=np.float32).reshape(n, *shape[1:])
    images = session(dynamic).run(None, {"x": basis})[0]
    return images.reshape(n, -1).T


def _spec_linear_half_pixel(length_in: int, scale: float) -> np.ndarray:
    """The ONNX spec's linear weights under half_pixel, written out for one axis."""
    length_out = int(np.floor(length_in * scale))
    matrix = np.zeros((length_out, length_in))
    for i in range(length_out):
        x = min(max((i + 0.5) / scale - 0.5, 0), length_in - 1)
        lo = int(np.floor(x))
        hi = min(lo + 1, length_in - 1)
        matrix[i, lo] += 1 - (x - lo)
        matrix[i, hi] += x - lo
    return matrix


def _spec_nearest_asymmetric_floor(length_in: int, scale: float) -> np.ndarray:
    length_out = int(np.floor(length_in * scale))
    matrix = np.zeros((length_out, length_in))
    for i in range(length_out):
        matrix[i, min(int(np.floor(i / scale)), length_in - 1)] = 1
    return matrix


@pytest.mark.parametrize(
    ("mode", "coordinate_mode", "spec"),
    [("linear", "half_pixel", _spec_linear_half_pixel), ("nearest", "asymmetric", _spec_nearest_asymmetric_floor)],
)
def test_resize_inverse_matches_the_spec_and_the_measured_jacobian(mode, coordinate_mode, spec) -> None:
    shape, scales = (1, 1, 4, 5), (1.5, 2.0)
    model = resize_model(mode, coordinate_mode, [1, 1, *scales], shape=shape, nearest_mode="floor")
    rng = np.random.default_rng(7)
    lin = Linearisation(model, "y", rng.standard_normal(shape).astype(np.float32))
    seeds = rng.standard_normal((3, *lin.values["y"].shape[1:]))
    got = lin.vjp(seeds).reshape(3, -1)
    measured = _jacobian_by_columns(model, shape)
    np.testing.assert_allclose(got, seeds.reshape(3, -1) @ measured, rtol=1e-5, atol=1e-5)
    a_h, a_w = spec(4, scales[0]), spec(5, scales[1])
    expected = np.einsum("kij,ia,jb->kab", seeds[:, 0], a_h, a_w).reshape(3, -1)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_two_axis_resizes_are_the_product_of_one_axis_resizes(mode: str) -> None:
    """The separability the rule rests on, checked on onnxruntime's 2-D kernels."""
    model = resize_model(mode, "half_pixel", [1, 1, 1.7, 0.6], shape=(1, 1, 6, 7))
    x = np.random.default_rng(8).standard_normal((1, 1, 6, 7)).astype(np.float32)
    y = session(model).run(None, {"x": x})[0][0, 0]
    attrs = tuple(a.SerializeToString() for a in model.graph.node[0].attribute)
    a_h = axis_sampling_matrix("Resize", 13, attrs, AxisResize(6, y.shape[0], 1.7, None, (0.0, 1.0)))
    a_w = axis_sampling_matrix("Resize", 13, attrs, AxisResize(7, y.shape[1], 0.6, None, (0.0, 1.0)))
    np.testing.assert_allclose(y, a_h @ x[0, 0] @ a_w.T, rtol=1e-5, atol=1e-5)


def test_resizing_the_batch_axis_is_refused() -> None:
    model = resize_model("nearest", "asymmetric", [2, 1, 1, 1])
    with pytest.raises(UnsupportedOpError, match="batch axis"):
        Linearisation(model, "y", np.zeros(SHAPE, np.float32))


def test_keep_aspect_ratio_policy_is_refused_with_a_reason() -> None:
    model = resize_model("linear", "half_pixel", sizes=[1, 2, 8, 8], opset=18, keep_aspect_ratio_policy="not_larger")
    with pytest.raises(UnsupportedOpError, match="keep_aspect_ratio_policy"):
        Linearisation(model, "y", np.zeros(SHAPE, np.float32))


@pytest.mark.parametrize("mode", ["deconvnet", "guided"])
def test_data_movement_is_the_same_in_every_mode(mode: str) -> None:
    """No ReLU-family op on the path: deconvnet and guided project exactly as the gradient does."""
    nodes = [
        helper.make_node("Resize", ["x", "", "scales"], ["up"], mode="cubic", name="up"),
        helper.make_node("Pad", ["up", "pads"], ["padded"], mode="reflect", name="pad"),
        helper.make_node("ReduceMax", ["padded", "axes"], ["y"], keepdims=0, name="max"),
    ]
    inits = {
        "scales": np.array([1, 1, 1.5, 2], np.float32),
        "pads": np.array([0, 0, 2, 1, 0, 0, 1, 2], np.int64),
        "axes": np.array([2], np.int64),
    }
    model = make_model(nodes, SHAPE, "y", inits, opset=18)
    x = np.random.default_rng(9).standard_normal(SHAPE).astype(np.float32)
    saliency = Linearisation(model, "y", x, "saliency")
    seeds = np.random.default_rng(10).standard_normal((2, *saliency.values["y"].shape[1:]))
    np.testing.assert_array_equal(Linearisation(model, "y", x, mode).vjp(seeds), saliency.vjp(seeds))
