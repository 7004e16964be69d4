"""Data movement: Slice with steps, Pad in every mode, Expand, Tile, Gather(Elements),
DepthToSpace/SpaceToDepth, Split and Concat. Each inverse is checked by the adjoint test in both
emitted forms; the folded borders of reflect/edge/wrap padding also against numpy's np.pad."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from onnx import helper

from onnxviz.errors import UnsupportedOpError
from onnxviz.inverse.rules.shape import INT64_MIN
from tests.helpers import Linearisation, make_model, session
from tests.test_adjoint_ops import SETTINGS, assert_adjoint

FEWER = settings(SETTINGS, max_examples=15)

SHAPE = (1, 3, 5, 6)
INT64_MAX = 2**63 - 1


def _x(seed: int, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


bound = st.one_of(st.integers(-8, 8), st.sampled_from([INT64_MIN, INT64_MAX]))
slice_cases = st.fixed_dictionaries(
    {
        "axes": st.lists(st.sampled_from([1, 2, 3, -1, -2]), min_size=1, max_size=3, unique_by=lambda a: a % 4),
        "starts": st.lists(bound, min_size=3, max_size=3),
        "ends": st.lists(bound, min_size=3, max_size=3),
        "steps": st.lists(st.sampled_from([1, 2, 3, -1, -2, -3, 7]), min_size=3, max_size=3),
        "seed": st.integers(0, 10_000),
    }
)


def _non_empty(start: int, end: int, step: int, length: int) -> tuple[int, int, int]:
    """The drawn slice, or the nearest one that keeps something: reversed, then run to the end."""
    for candidate in ((start, end, step), (start, end, -step), (start, INT64_MAX if step > 0 else INT64_MIN, step)):
        if len(range(*slice(*candidate).indices(length))):
            return candidate
    return (0, INT64_MAX, step) if step > 0 else (-1, INT64_MIN, step)


@FEWER
@given(slice_cases)
def test_slice_with_steps_is_the_adjoint(case: dict) -> None:
    n = len(case["axes"])
    starts, ends, steps = case["starts"][:n], case["ends"][:n], case["steps"][:n]
    for i, axis in enumerate(case["axes"]):
        starts[i], ends[i], steps[i] = _non_empty(starts[i], ends[i], steps[i], SHAPE[axis])
    inits = {
        "starts": np.array(starts, np.int64),
        "ends": np.array(ends, np.int64),
        "axes": np.array(case["axes"], np.int64),
        "steps": np.array(steps, np.int64),
    }
    node = helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"], name="slice")
    model = make_model([node], SHAPE, "y", inits)
    x = _x(case["seed"])
    index = [slice(None)] * 4
    for axis, start, end, step in zip(case["axes"], starts, ends, steps, strict=True):
        index[axis] = slice(start, end, step)
    np.testing.assert_array_equal(session(model).run(None, {"x": x})[0], x[tuple(index)])
    assert_adjoint(model, "y", x, case["seed"])


pad_cases = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["constant", "reflect", "edge", "wrap"]),
        "pads": st.lists(st.integers(0, 4), min_size=6, max_size=6),
        "seed": st.integers(0, 10_000),
    }
)


@FEWER
@given(pad_cases)
def test_pad_modes_fold_the_border_back(case: dict) -> None:
    """The adjoint of a reflected/edge/wrapped border is a sum onto the interior, not a copy."""
    begin, end = case["pads"][:3], case["pads"][3:]
    if case["mode"] == "reflect":
        assume(all(p < n for p, n in zip(begin + end, SHAPE[1:] * 2, strict=True)))
    pads = np.array([0, *begin, 0, *end], np.int64)
    node = helper.make_node("Pad", ["x", "pads"], ["y"], mode=case["mode"], name="pad")
    model = make_model([node], SHAPE, "y", {"pads": pads}, opset=19)
    x = _x(case["seed"])
    widths = [(0, 0), *zip(begin, end, strict=True)]
    np.testing.assert_array_equal(session(model).run(None, {"x": x})[0], np.pad(x, widths, mode=case["mode"]))
    assert_adjoint(model, "y", x, case["seed"])


def test_edge_padding_adds_the_whole_border_to_the_edge_value() -> None:
    """A ones seed counts how often each input value was copied: 1 + the border it fills."""
    pads = np.array([0, 0, 0, 2, 0, 0, 0, 3], np.int64)
    model = make_model([helper.make_node("Pad", ["x", "pads"], ["y"], mode="edge")], (1, 1, 1, 4), "y", {"pads": pads})
    lin = Linearisation(model, "y", _x(1, (1, 1, 1, 4)))
    counts = lin.vjp(np.ones((1, 1, 1, 9), np.float32))
    np.testing.assert_array_equal(counts.reshape(-1), [3, 1, 1, 4])


def test_negative_constant_pads_crop_and_reflect_pads_with_axes_input() -> None:
    nodes = [
        helper.make_node("Pad", ["x", "crop"], ["c"], name="crop"),
        helper.make_node("Pad", ["c", "pads", "", "axes"], ["y"], mode="reflect", name="reflect"),
    ]
    inits = {
        "crop": np.array([0, 0, -1, 2, 0, 0, 1, -2], np.int64),
        "pads": np.array([2, 1, 0, 3], np.int64),
        "axes": np.array([-1, 2], np.int64),
    }
    model = make_model(nodes, SHAPE, "y", inits, opset=18)
    assert_adjoint(model, "y", _x(2), 3)


@pytest.mark.parametrize(
    ("op", "inits", "attrs"),
    [
        ("Expand", {"shape": np.array([1, 3, 4, 6], np.int64)}, {}),
        ("Tile", {"repeats": np.array([1, 2, 3, 1], np.int64)}, {}),
    ],
)
def test_expand_and_tile_sum_over_their_copies(op: str, inits: dict, attrs: dict) -> None:
    shape = (1, 3, 1, 6) if op == "Expand" else SHAPE
    node = helper.make_node(op, ["x", next(iter(inits))], ["y"], name=op.lower(), **attrs)
    model = make_model([node], shape, "y", inits)
    assert_adjoint(model, "y", _x(4, shape), 5)


@pytest.mark.parametrize(
    ("indices", "axis"),
    [(np.array(0, np.int64), 1), (np.array(-1, np.int64), 3), (np.array([[4, -1], [0, 4]], np.int64), 2)],
)
def test_gather_with_constant_indices_is_the_adjoint(indices: np.ndarray, axis: int) -> None:
    """x[:, 0] (a class token), a negative scalar index, and repeated indices (their signals add)."""
    node = helper.make_node("Gather", ["x", "i"], ["y"], axis=axis, name="gather")
    model = make_model([node], SHAPE, "y", {"i": indices})
    assert_adjoint(model, "y", _x(6), 7)


def test_gather_elements_with_constant_indices_is_the_adjoint() -> None:
    indices = np.random.default_rng(8).integers(-5, 5, (1, 3, 4, 6)).astype(np.int64)
    node = helper.make_node("GatherElements", ["x", "i"], ["y"], axis=2, name="gather")
    model = make_model([node], SHAPE, "y", {"i": indices})
    assert_adjoint(model, "y", _x(9), 10)


@pytest.mark.parametrize(
    ("op", "attrs", "shape"),
    [
        ("DepthToSpace", {"blocksize": 2, "mode": "DCR"}, (1, 8, 3, 2)),
        ("DepthToSpace", {"blocksize": 2, "mode": "CRD"}, (1, 8, 3, 2)),
        ("SpaceToDepth", {"blocksize": 2}, (1, 2, 4, 6)),
    ],
)
def test_depth_and_space_rearrangements_are_undone(op: str, attrs: dict, shape: tuple[int, ...]) -> None:
    model = make_model([helper.make_node(op, ["x"], ["y"], name="move", **attrs)], shape, "y")
    lin = Linearisation(model, "y", _x(11, shape))
    seeds = np.random.default_rng(12).standard_normal((2, *lin.values["y"].shape[1:])).astype(np.float32)
    # A permutation: its adjoint is its inverse, so the seeds' values come back, rearranged.
    back = lin.vjp(seeds)
    np.testing.assert_array_equal(np.sort(back.reshape(2, -1)), np.sort(seeds.reshape(2, -1)))
    assert_adjoint(model, "y", lin.x, 13)


@pytest.mark.parametrize("form", ["split_input", "num_outputs"])
def test_split_by_sizes_or_by_count_is_the_adjoint(form: str) -> None:
    """Only two of three parts carry a signal on: the third gets zeros."""
    if form == "split_input":
        split = helper.make_node("Split", ["x", "sizes"], ["a", "b", "c"], axis=3, name="split")
        inits = {"sizes": np.array([1, 4, 2], np.int64)}
    else:
        split = helper.make_node("Split", ["x"], ["a", "b", "c"], axis=3, num_outputs=3, name="split")
        inits = {}
    nodes = [split, helper.make_node("Concat", ["c", "a"], ["y"], axis=3, name="cat")]
    model = make_model(nodes, (1, 3, 5, 7), "y", inits, opset=18)
    assert_adjoint(model, "y", _x(14, (1, 3, 5, 7)), 15)


def test_concat_with_a_constant_class_token_then_gather_it_back() -> None:
    """ViT: a learnt token concatenated before the patch tokens; x[:, 0] and x[:, 1:] both read."""
    token = np.random.default_rng(16).standard_normal((1, 1, 6)).astype(np.float32)
    nodes = [
        helper.make_node("Reshape", ["x", "tokens_shape"], ["t"], name="tokens"),
        helper.make_node("Concat", ["token", "t"], ["c"], axis=1, name="with_token"),
        helper.make_node("Mul", ["c", "c"], ["sq"], name="square"),
        helper.make_node("Gather", ["sq", "zero"], ["cls"], axis=1, name="cls"),
        helper.make_node("Slice", ["sq", "one", "end", "one"], ["patches"], name="patches"),
        helper.make_node("ReduceSum", ["patches", "one"], ["pooled"], keepdims=0, name="pool"),
        helper.make_node("Add", ["cls", "pooled"], ["y"], name="head"),
    ]
    inits = {
        "tokens_shape": np.array([1, 15, 6], np.int64),
        "token": token,
        "zero": np.array(0, np.int64),
        "one": np.array([1], np.int64),
        "end": np.array([INT64_MAX], np.int64),
    }
    model = make_model(nodes, SHAPE, "y", inits)
    assert_adjoint(model, "y", _x(17), 18)


@pytest.mark.parametrize(
    ("node", "inits", "reason"),
    [
        (helper.make_node("Tile", ["x", "r"], ["y"]), {"r": np.array([2, 1, 1, 1], np.int64)}, "batch axis"),
        (helper.make_node("Gather", ["x", "i"], ["y"], axis=0), {"i": np.array(0, np.int64)}, "batch axis"),
        (helper.make_node("Expand", ["x", "s"], ["y"]), {"s": np.array([2, 1, 3, 5, 6], np.int64)}, "batch axis"),
    ],
)
def test_moving_the_batch_axis_is_refused(node, inits: dict, reason: str) -> None:
    node.name = "bad"
    model = make_model([node], SHAPE, "y", inits)
    with pytest.raises(UnsupportedOpError, match=reason):
        Linearisation(model, "y", _x(19))
