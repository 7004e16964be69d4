"""Every command on the demo model gives the numbers it gave before the redesign moved the code.

The stored arrays and summaries were recorded by ``tests/golden/record.py`` on the tree before
the move. Arrays are compared to float32 round-off (1e-5 of the array's scale) rather than bit for
bit, so that a CI machine whose CPU picks other onnxruntime kernels still passes; on the machine
that recorded them they were bit-identical (``record.py --compare`` says so).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.golden.commands import STORED, STORED_JSON, execute, runs

RELATIVE = 1e-5


def assert_same(actual, expected, where: str = "") -> None:
    """Equal structure, equal strings and integers, floats within ``RELATIVE`` of their scale."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and sorted(actual) == sorted(expected), f"{where}: keys differ"
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: lengths differ"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert isinstance(actual, int | float), f"{where}: {actual!r} is not a number"
        assert math.isclose(actual, expected, rel_tol=RELATIVE, abs_tol=1e-6), f"{where}: {actual} != {expected}"
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


@pytest.mark.parametrize("run", runs(), ids=lambda run: run.name)
def test_every_command_gives_the_numbers_recorded_before_the_redesign(run, capsys, tmp_path) -> None:
    summaries = json.loads(STORED_JSON.read_text())
    summary, array = execute(capsys, run, tmp_path)
    assert_same(summary, summaries[run.name], run.name)
    if run.raw_flag:
        expected = np.load(STORED)[run.name]
        assert array.shape == expected.shape and array.dtype == expected.dtype
        scale = float(np.abs(expected).max()) or 1.0
        np.testing.assert_allclose(array, expected, rtol=RELATIVE, atol=RELATIVE * scale)
