"""Options declared once: bounds and choices checked when the options are made, errors naming the
option as the caller spelled it (the argument in Python, the flag typed on the command line), old
names and flags still accepted, list flags as ``3,7`` or repeated."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pytest

from onnxviz.analyses.correspondence import CorrespondenceOptions
from onnxviz.analyses.project import ProjectOptions
from onnxviz.analyses.topk import TopKOptions
from onnxviz.core.options import Options, option
from onnxviz.errors import OptionError, UsageError
from tests.cli_helpers import run_cli
from tests.helpers import DEMO


@dataclass(frozen=True)
class Bounded(Options):
    count: int = field(default=3, metadata=option("A count.", min=1, max=10))
    ratio: float = field(default=0.5, metadata=option("A ratio.", min=0, max=1))
    mode: str = field(default="a", metadata=option("A mode.", choices=("a", "b")))
    sizes: list[int] | None = field(default=None, metadata=option("Sizes.", min=1))
    new: int = field(default=0, metadata=option("Renamed.", renamed=("old",)))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"count": 0}, "count must be a positive number; got 0."),
        ({"count": 11}, "count must be ≤ 10; got 11."),
        ({"ratio": -0.1}, "ratio must not be negative; got -0.1."),
        ({"ratio": float("nan")}, "ratio must be a finite number; got 'nan'."),
        ({"ratio": "half"}, "ratio must be a finite number; got 'half'."),
        ({"mode": "c"}, "Unknown mode 'c'."),
        ({"sizes": [2, 0]}, "sizes must be a positive number; got 0."),
    ],
)
def test_bounds_and_choices_are_enforced_naming_the_argument(values: dict, message: str) -> None:
    with pytest.raises(OptionError) as caught:
        Bounded(**values)
    assert caught.value.message == message
    assert caught.value.option == next(iter(values))


def test_values_inside_the_bounds_are_kept() -> None:
    options = Bounded(count=10, ratio=1, mode="b", sizes=[1, 4])
    assert (options.count, options.ratio, options.mode, options.sizes) == (10, 1, "b", [1, 4])


def test_numpy_values_are_checked_like_python_ones() -> None:
    assert Bounded(count=np.int64(2), sizes=np.array([1, 4])).count == 2
    with pytest.raises(OptionError, match="sizes must be a positive number; got 0"):
        Bounded(sizes=np.array([3, 0]))


def test_one_name_given_for_a_list_option_is_a_list_of_one(demo_model, picture) -> None:
    by_name = demo_model.cam(picture, layer="conv2")
    assert by_name.layers == ["conv2"]
    np.testing.assert_array_equal(by_name.raw(), demo_model.cam(picture, layer=["conv2"]).raw())


def test_old_names_are_accepted_and_unknown_or_doubled_ones_refused() -> None:
    assert Bounded.of({"old": 4}).new == 4
    with pytest.raises(OptionError, match="Unknown option colour"):
        Bounded.of({"colour": 1})
    with pytest.raises(OptionError, match="given twice"):
        Bounded.of({"old": 1, "new": 2})
    with pytest.raises(OptionError, match="node is required"):
        ProjectOptions.of({})


def test_an_error_is_spelled_as_the_flag_by_the_caller_that_asks() -> None:
    error = OptionError("top", "Give either {channels} or {option}, not both.", "Drop {option}.")
    assert error.message == "Give either channels or top, not both." and error.hint == "Drop top."
    spelled = error.spelled({"top": "--top-channels", "channels": "--channel"})
    assert spelled.message == "Give either --channel or --top-channels, not both."
    assert spelled.hint == "Drop --top-channels." and isinstance(spelled, UsageError)


def test_each_analysis_checks_its_own_options() -> None:
    with pytest.raises(OptionError, match=r"^random must be a positive number"):
        CorrespondenceOptions(random=0)
    with pytest.raises(OptionError, match="Unknown rule 'deconv'"):
        ProjectOptions(node="conv1", rule="deconv")
    with pytest.raises(OptionError, match=r"^Give either channels or top"):
        ProjectOptions(node="conv1", channels=[1], top=2)
    with pytest.raises(OptionError, match=r"^resume needs state_dir"):
        TopKOptions(node="conv1", resume=True)


def test_python_names_the_argument(demo_model, picture) -> None:
    with pytest.raises(UsageError, match=r"^top must be a positive number; got 0"):
        demo_model.project(picture, node="conv2", top=0)
    with pytest.raises(UsageError, match=r"^top must be between 1 and \d+"):
        demo_model.project(picture, node="conv2", top=10_000)
    with pytest.raises(OptionError, match=r"^Channel 999 does not exist"):
        demo_model.project(picture, node="conv2", channels=[999])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--top", "0"), "error: --top must be a positive number; got 0."),
        (("--top", "10000"), "error: --top must be between 1 and"),
        (("-c", "999"), "error: Channel 999 does not exist"),
        (("--channel", "1", "--top", "2"), "error: Give either --channel or --top, not both."),
        (("--channel", "one"), "error: --channel must be comma-separated integers; got 'one'."),
        (("--rule", "deconv"), "error: Unknown --rule 'deconv'."),
    ],
)
def test_the_cli_names_the_flag_as_typed(capsys, picture, args: tuple, message: str) -> None:
    code, _, err = run_cli(capsys, "project", DEMO, picture, "--node", "conv2", "--device", "cpu", *args)
    assert code == 2 and message in err, err


@pytest.mark.parametrize("spelling", ["--top", "--top-channels"])
def test_an_old_flag_is_named_as_typed(capsys, picture, spelling: str) -> None:
    folder = picture.parent
    code, _, err = run_cli(capsys, "topk", DEMO, folder, "--node", "conv2", spelling, "0", "--device", "cpu")
    assert code == 2 and f"error: {spelling} must be a positive number" in err, err


def test_list_flags_take_commas_or_repeats_under_every_spelling(capsys, picture) -> None:
    def channels(*args: str) -> list[int]:
        code, out, err = run_cli(capsys, "project", DEMO, picture, "--node", "conv2", "--json", *args)
        assert code == 0, err
        return json.loads(out)["channels"]

    assert channels("--channel", "3,7") == channels("--channel", "3", "--channel", "7") == [3, 7]
    assert channels("--channels", "3", "-c", "7") == [3, 7]


def test_old_python_names_still_work(demo_model, picture) -> None:
    folder = picture.parent
    old = demo_model.topk(folder, node="conv2", top_channels=2, k=1, project=False)
    new = demo_model.topk(folder, node="conv2", top=2, k=1, project=False)
    assert old.to_json() == new.to_json() and len(new.scan.channels) == 2
    given = demo_model.project(picture, options=ProjectOptions(node="conv2", top=2))
    np.testing.assert_array_equal(given.projections, demo_model.project(picture, node="conv2", top=2).projections)
    with pytest.raises(OptionError, match=r"^Give top inside options="):
        demo_model.project(picture, options=ProjectOptions(node="conv2"), top=2)
