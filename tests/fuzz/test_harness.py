"""The fuzz harness can fail: its deadline stops a hang, its judge refuses what the contract
forbids, its file check finds a torn or temporary file."""

from __future__ import annotations

import time

import cv2
import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onnxviz.core.files import TEMPORARY_PREFIX
from tests.fuzz import harness, inputs


def test_the_deadline_stops_a_loop_by_its_cpu_time_and_a_wait_by_the_clock() -> None:
    with pytest.raises(harness.CaseTimeout, match="CPU time"), harness.deadline(0.2, 30):
        while True:
            pass
    started = time.perf_counter()
    with pytest.raises(harness.CaseTimeout, match="wall time"), harness.deadline(30, 0.2):
        while True:
            time.sleep(0.01)
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    ("code", "stderr", "command", "fails"),
    [
        (0, "onnxviz: running on the CPU\n", "project", False),
        (2, "onnxviz: note\n\nerror: No node 'x'.\nhint: run onnxviz layers.\n", "project", False),
        (1, "internal error: ValueError: operands could not be broadcast\n", "project", True),
        (1, "Traceback (most recent call last):\n", "project", True),
        (3, "ERROR: [Errno 98] address already in use\n", "serve", True),
        (1, "ERROR: [Errno 98] address already in use\n", "serve", True),
        (2, "error: one\nerror: two\n", "project", True),
        (1, "conv3 failed: no rule for LpPool\n", "check", False),
    ],
)
def test_the_judge_accepts_only_a_result_or_one_error_paragraph(code, stderr, command, fails) -> None:
    assert (harness.judge(code, stderr, command) is not None) == fails


def test_the_file_check_finds_temporaries_torn_files_and_leftovers(tmp_path) -> None:
    assert harness.outputs_verdict(tmp_path, 0) is None
    picture = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    (tmp_path / "whole.png").write_bytes(picture)
    assert harness.outputs_verdict(tmp_path, 0) is None
    assert "left outputs" in harness.outputs_verdict(tmp_path, 2)
    (tmp_path / "torn.png").write_bytes(picture[: len(picture) // 2])
    assert "torn.png is an unreadable PNG" in harness.outputs_verdict(tmp_path, 0)
    (tmp_path / "torn.png").unlink()
    (tmp_path / f"{TEMPORARY_PREFIX}0123").write_bytes(b"x")
    assert "temporary files left behind" in harness.outputs_verdict(tmp_path, 0)


def test_a_command_whose_arguments_no_recipe_fills_is_named() -> None:
    import typer
    import typer.main

    from tests.fuzz import recipes

    app = typer.Typer()

    @app.command()
    def novel(model: str, weights: str, level: int = typer.Option(..., "--level")) -> None:
        """A command the recipes have never heard of."""

    @app.command()
    def known(model: str, node: str = typer.Option(..., "--node")) -> None:
        """One they can fill."""

    commands = typer.main.get_command(app).commands
    assert recipes.missing("novel", commands["novel"]) == ["argument weights", "required option --level"]
    assert recipes.missing("known", commands["known"]) == []


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_a_retyped_initializer_can_still_be_moved_to_an_external_file(data) -> None:
    """Two defects in a row: the retyped tensor's bytes no longer fit its dims, and moving it out
    must still make a case (it once stopped the long run while generating one)."""
    model = onnx.load_from_string(inputs.SOURCES["demo"].read_bytes())
    largest = max(model.graph.initializer, key=lambda t: len(t.raw_data) or t.ByteSize())
    largest.data_type = onnx.TensorProto.DOUBLE  # 4-byte floats read as 8-byte ones: half a value short
    with pytest.raises(ValueError, match="reshape"):
        onnx.numpy_helper.to_array(largest)
    beside: dict[str, bytes] = {}
    described = inputs._externalise(model, data.draw, beside)
    assert described.startswith("external data") and largest.data_location == onnx.TensorProto.EXTERNAL
    assert not largest.raw_data and {e.key for e in largest.external_data} >= {"location", "offset"}
