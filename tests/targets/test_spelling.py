"""Every spelling of a target reads as its kind; every misspelling is a UsageError that says why."""

from __future__ import annotations

import numpy as np
import pytest

from onnxviz.errors import UsageError
from onnxviz.targets.classes import ClassTarget
from onnxviz.targets.spelling import parse_target
from onnxviz.targets.tensors import ChannelTarget, ElementTarget


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        (None, ClassTarget()),
        (281, ClassTarget(281)),
        (np.int64(7), ClassTarget(7)),
        ("281", ClassTarget(281)),
        (" 0 ", ClassTarget(0)),
        ("logits[0,3]", ElementTarget("logits", (0, 3))),
        ("conv2[0, 5, 1, 2]", ElementTarget("conv2", (0, 5, 1, 2))),
        ("/features/relu2/Relu_output_0[0,1,2,3]", ElementTarget("/features/relu2/Relu_output_0", (0, 1, 2, 3))),
        ("scores[-1]", ElementTarget("scores", (-1,))),  # read here, refused against the tensor's shape
        ("odd[name][0,1]", ElementTarget("odd[name]", (0, 1))),  # the last bracket is the index
        ("empty[]", ElementTarget("empty", ())),
    ],
)
def test_every_spelling_reads_as_its_kind(spelling, expected) -> None:
    assert parse_target(spelling) == expected


def test_a_target_built_in_python_is_taken_as_it_is() -> None:
    channel = ChannelTarget("conv2", 5)
    assert parse_target(channel) is channel


@pytest.mark.parametrize(
    ("spelling", "needle"),
    [
        ("cat", "Cannot read the target 'cat'"),
        ("", "Cannot read the target ''"),
        ("box:1,2,3", "Cannot read the target 'box:1,2,3'"),
        ("box:5,5,1,1", "The box 5,5,1,1 is empty"),
        ("detection:first", "Cannot read the target 'detection:first'"),
        ("mask:predicted", "Cannot read the target 'mask:predicted'"),
        ("3.5", "Cannot read the target '3.5'"),
        (3.5, "Cannot read the target 3.5"),
        (True, "Cannot read the target True"),
        ("logits[0,a]", "the index of an element is integers"),
        ("logits[0;3]", "the index of an element is integers"),
        ("[0,3]", "the index of an element is integers"),
        ("-1", "Class -1 does not exist: classes count from 0"),
        (-4, "Class -4 does not exist"),
    ],
)
def test_a_misspelt_target_is_a_usage_error_that_says_why(spelling, needle: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_target(spelling)
    assert needle in str(caught.value)
    assert caught.value.exit_code == 2


def test_the_usage_error_lists_the_spellings() -> None:
    with pytest.raises(UsageError) as caught:
        parse_target("cat")
    assert "281" in caught.value.hint and "NAME[0,i,...]" in caught.value.hint
