"""Every command on broken models, pictures and arrays: a result or onnxviz's own error, nothing else.

The bounded profile runs in CI: each command of the app (read from the app itself, so commands
added later join) on ``CASES_PER_COMMAND`` drawn cases, derandomised so a failure is the same on
every machine. The long profile draws the command too, over ``ONNXVIZ_FUZZ_CASES`` cases (5,000
by default); it is marked ``slow`` and runs only where ``ONNXVIZ_FUZZ_LONG=1``:

    ONNXVIZ_FUZZ_LONG=1 nice -n 19 python -m pytest tests/fuzz -m slow -q

A finding prints the command line, what was drawn and what went wrong; hypothesis shrinks it first.
"""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from tests.fuzz import harness, inputs, recipes

CASES_PER_COMMAND = 6
FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
COMMANDS = recipes.commands()


@st.composite
def drawn_cases(draw: st.DrawFn) -> harness.Drawn:
    model = draw(inputs.models())
    names = harness.aliases(model.source)
    node = draw(st.one_of(st.sampled_from(names), st.sampled_from(["logits", "no_such_layer", "conv", ""])))
    return harness.Drawn(model, draw(inputs.images(model.source)), node)


def run_drawn(data: st.DataObject, name: str) -> None:
    drawn = data.draw(drawn_cases(), label="case")
    with harness.case_files(drawn) as case:
        words = data.draw(recipes.argv(name, COMMANDS[name], case), label="argv")
        problem, took = harness.run_case(words, case)
    note(f"onnxviz {' '.join(words)}\ncase: {drawn}\ntook {took:.2f} s")
    assert problem is None, f"onnxviz {name} on {drawn}: {problem}"


def test_every_command_has_a_recipe() -> None:
    gaps = {name: recipes.missing(name, command) for name, command in COMMANDS.items()}
    assert not {name: gap for name, gap in gaps.items() if gap}, "add them to tests/fuzz/recipes.py"
    assert {"project", "occlude", "serve", "topk", "maximize"} <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
@settings(FUZZ, max_examples=CASES_PER_COMMAND, derandomize=True)
@given(data=st.data())
def test_command_ends_in_a_result_or_its_own_error(name: str, data: st.DataObject) -> None:
    run_drawn(data, name)


LONG = int(os.environ.get("ONNXVIZ_FUZZ_CASES", "5000"))
counted = {"cases": 0, "started": 0.0}


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("ONNXVIZ_FUZZ_LONG") != "1", reason="the long profile: set ONNXVIZ_FUZZ_LONG=1")
@settings(FUZZ, max_examples=LONG)
@given(data=st.data(), name=st.sampled_from(sorted(COMMANDS)))
def test_long_profile(data: st.DataObject, name: str) -> None:
    counted["cases"] += 1
    counted["started"] = counted["started"] or time.perf_counter()
    run_drawn(data, name)
    if counted["cases"] % 50 == 0:
        print(f"fuzz: {counted['cases']} cases in {time.perf_counter() - counted['started']:.0f} s", flush=True)
