"""Ctrl-C: SIGINT to a real ``onnxviz`` process in the middle of its work.

It exits 130 with one line ("interrupted", where the progress bar was), leaves none of its output
files (not even a temporary), and an interrupted ``topk`` continues with ``--resume`` to the result
an uninterrupted scan gives. The signal is sent once the work is seen under way (a progress frame
with at least one step done, or a finished shard of the scan on disk), never after a fixed sleep.
The progress bar shows because the child is told its stderr is a terminal (``TTY_COMPATIBLE``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import DEMO, ROOT

ESCAPE = re.compile(r"(\x1b\[[0-9;?]*[A-Za-z]|\r|\n)")
STEPS_DONE = re.compile(r"\b([1-9]\d*)/\d+\b")


def screen(raw: str) -> list[str]:
    """What a terminal shows for ``raw``: carriage returns, line erases and cursor-up applied."""
    lines, row, column = [""], 0, 0
    for token in ESCAPE.split(raw):
        if token == "\n":
            row, column = row + 1, 0
            lines += [""] * (row + 1 - len(lines))
        elif token == "\r":
            column = 0
        elif token.startswith("\x1b["):
            if token.endswith("K"):
                lines[row] = ""
            elif token.endswith("A"):
                row = max(0, row - int(token[2:-1] or 1))
        elif token:
            line = lines[row].ljust(column)
            lines[row] = line[:column] + token + line[column + len(token) :]
            column += len(token)
    return [line for line in lines if line.strip()]


class Running:
    """``onnxviz ARGS`` in a subprocess, its stderr collected as it comes."""

    def __init__(self, *args: object) -> None:
        env = os.environ | {"TTY_COMPATIBLE": "1", "FORCE_COLOR": "1", "COLUMNS": "120"}
        command = [sys.executable, "-c", "from onnxviz.cli import main; main()", *map(str, args)]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while chunk := self.process.stderr.read1(4096):
            self.chunks.append(chunk)

    @property
    def stderr(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")

    def interrupt_when(self, ready: Callable[[], bool], timeout_s: float = 120.0) -> tuple[int, list[str]]:
        """Send SIGINT once ``ready()`` holds; (exit code, the terminal's lines other than notes)."""
        deadline = time.monotonic() + timeout_s
        while not ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"the work was never seen under way (exit {self.process.poll()}): {self.stderr[-800:]}")
            time.sleep(0.01)  # polling the condition
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=120)
        self.reader.join(timeout=10)
        return code, [line for line in screen(self.stderr) if not line.startswith("onnxviz:")]

    def steps_done(self) -> bool:
        frames = screen(self.stderr)
        return bool(frames) and bool(STEPS_DONE.search(frames[-1]))


def _nothing_written(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_ctrl_c_during_maximize_exits_130_with_one_line_and_no_picture(tmp_path) -> None:
    run = Running("maximize", DEMO, "--node", "fc2", "--channel", "1", "--steps", "100000", "--out", tmp_path / "m.png")
    code, lines = run.interrupt_when(run.steps_done)
    assert (code, lines) == (130, ["interrupted"])
    assert _nothing_written(tmp_path) == []


def test_ctrl_c_during_occlude_exits_130_with_one_line_and_no_files(tmp_path) -> None:
    picture = DEMO.parent / "images" / "chelsea.png"
    out, raw = tmp_path / "o.png", tmp_path / "o.npy"
    run = Running(
        "occlude", DEMO, picture, "--patch", "2", "--stride", "1", "--batch-size", "1", "--out", out, "--raw", raw
    )
    code, lines = run.interrupt_when(run.steps_done)
    assert (code, lines) == (130, ["interrupted"])
    assert _nothing_written(tmp_path) == []


@pytest.fixture(scope="module")
def many_inputs(tmp_path_factory) -> Path:
    """400 preprocessed inputs of the demo (``.npy``) and 8 pictures: a scan that takes a while."""
    folder = tmp_path_factory.mktemp("scan")
    rng = np.random.default_rng(0)
    for i in range(400):
        np.save(folder / f"x{i:03d}.npy", rng.standard_normal((3, 64, 64)).astype(np.float32))
    for i, name in enumerate(sorted((DEMO.parent / "images").glob("*.png"))[:8]):
        cv2.imwrite(str(folder / f"p{i}_{name.name}"), cv2.imread(str(name)))
    return folder


def _scan(folder: Path, out: Path, *extra: object) -> tuple[object, ...]:
    common = ("--node", "conv2", "--top", "3", "--k", "4", "--shard-size", "8", "--batch-size", "1", "--out", out)
    return ("topk", DEMO, folder, *common, *extra)


def _shards(out: Path) -> list[Path]:
    return sorted((out / "scan").glob("shard_*.json"))


def test_ctrl_c_during_topk_leaves_only_the_scan_state_and_resume_finishes_it(many_inputs, tmp_path) -> None:
    out = tmp_path / "interrupted"
    run = Running(*_scan(many_inputs, out))
    code, lines = run.interrupt_when(lambda: len(_shards(out)) >= 2)
    assert (code, lines) == (130, ["interrupted"])
    kept = {p.name: p.stat().st_mtime_ns for p in _shards(out)}
    assert set(_nothing_written(out)) == {f"scan/{name}" for name in kept} | {"scan/manifest.json"}

    resumed = subprocess.run(
        [sys.executable, "-c", "from onnxviz.cli import main; main()", *map(str, _scan(many_inputs, out, "--resume"))],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert all(out.joinpath("scan", name).stat().st_mtime_ns == mtime for name, mtime in kept.items())  # reused
    fresh = tmp_path / "fresh"
    done = subprocess.run(
        [sys.executable, "-c", "from onnxviz.cli import main; main()", *map(str, _scan(many_inputs, fresh))],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "topk.json").read_text()) == json.loads((fresh / "topk.json").read_text())


@pytest.mark.slow
def test_ctrl_c_during_a_ray_scan_exits_130_with_one_line(many_inputs, tmp_path) -> None:
    pytest.importorskip("ray", reason="Ray is not installed (the test extra has it)")
    out = tmp_path / "ray"
    run = Running(*_scan(many_inputs, out, "--engine", "ray", "--workers", "1"))
    code, lines = run.interrupt_when(lambda: len(_shards(out)) >= 1, timeout_s=300)
    # Ray's core worker may log a line of its own while the actors start (its C++ logger, not onnxviz)
    assert code == 130 and lines[-1] == "interrupted" and "Traceback" not in run.stderr, lines
    assert not [p for p in _nothing_written(out) if not p.startswith("scan/")]
