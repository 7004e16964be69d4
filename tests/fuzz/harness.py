"""One fuzz case from start to verdict: its files written, the command run in-process under a
deadline, and the ending judged.

An acceptable ending is a result (exit 0; its ``--json`` parses, every file it wrote is whole) or
one of onnxviz's own errors (exit 2 or 1, one paragraph starting ``error:`` on stderr, no output
file left behind). Anything else is a finding: "internal error", a traceback, another exit code, a
run past its deadline, a temporary or half-written file.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import onnx
from typer.testing import CliRunner

from onnxviz.cli import app
from onnxviz.core.files import TEMPORARY_PREFIX
from onnxviz.graph.model import ModelGraph
from tests.fuzz.inputs import SOURCES, ModelInput
from tests.fuzz.recipes import Case

# A case past either deadline is a hang: 60 s of CPU (a loop; the slowest honest case here takes a
# few seconds), or 600 s of wall time (a deadlock, which burns no CPU). CPU time, not wall time, is
# what a loaded machine cannot stretch: a starved process gets little of either.
CPU_DEADLINE_S = 60.0
WALL_DEADLINE_S = 600.0
# Commands that exit 1 with a report of their own (the layers that failed) rather than one error.
REPORTS_ON_FAILURE = ("check", "compare")


class CaseTimeout(BaseException):
    """Raised in the main thread when a case runs past its deadline: a BaseException, so that no
    ``except Exception`` in the code under test can swallow it."""


@contextmanager
def deadline(cpu_seconds: float, wall_seconds: float | None = None) -> Iterator[None]:
    """Raise ``CaseTimeout`` in the main thread once the process has used ``cpu_seconds`` of CPU
    (all its threads) or ``wall_seconds`` have passed, whichever comes first."""
    timers = [(signal.ITIMER_PROF, signal.SIGPROF, cpu_seconds, "CPU")]
    if wall_seconds is not None:
        timers.append((signal.ITIMER_REAL, signal.SIGALRM, wall_seconds, "wall"))
    previous = {}
    for timer, number, seconds, kind in timers:

        def expire(signum, frame, seconds=seconds, kind=kind):
            raise CaseTimeout(f"still running after {seconds:g} s of {kind} time")

        previous[number] = signal.signal(number, expire)
        signal.setitimer(timer, seconds)
    try:
        yield
    finally:
        for timer, number, _, _ in timers:
            signal.setitimer(timer, 0)
            signal.signal(number, previous[number])


class Drawn:
    """What hypothesis drew for a case: the model, the image, the node asked for (a plain class:
    hypothesis prints a failing case by its ``repr``, the recipe rather than the bytes)."""

    def __init__(self, model: ModelInput, image: tuple[str, bytes, str], node: str) -> None:
        self.model, self.image, self.node = model, image, node

    def __repr__(self) -> str:  # hypothesis prints it for a failing case: the recipe, not the bytes
        return str(self)

    def __str__(self) -> str:
        defects = "; ".join(self.model.defects) or "intact"
        return f"{self.model.source} ({defects}), image {self.image[0]}{self.image[2]}, node {self.node}"


_ALIASES: dict[str, list[str]] = {}


def aliases(source: str) -> list[str]:
    """The intact source's layer aliases: the nodes a case asks for."""
    if source not in _ALIASES:
        _ALIASES[source] = [layer.alias for layer in ModelGraph.load(SOURCES[source]).layers]
    return _ALIASES[source]


@contextmanager
def case_files(drawn: Drawn) -> Iterator[Case]:
    """The case's folder, and a port held busy, for the length of the case."""
    with tempfile.TemporaryDirectory(prefix="onnxviz-fuzz-") as root, socket.socket() as busy:
        folder = Path(root)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        _, data, suffix = drawn.image
        image = folder / f"input{suffix}"
        image.write_bytes(data)
        pictures = folder / "pictures"
        (pictures / "nested").mkdir(parents=True)
        (pictures / f"input{suffix}").write_bytes(data)
        good = SOURCES["demo"].parent / "images" / "chelsea.png"
        (pictures / "nested" / "chelsea.png").write_bytes(good.read_bytes())
        (pictures / "notes.txt").write_text("not a picture")
        masks = folder / "masks.json"
        rectangle = {"part": [4, 4, 8, 8]}
        masks.write_text(json.dumps({"images": {image.name: rectangle, "pictures/nested/chelsea.png": rectangle}}))
        out = folder / "out"
        out.mkdir()
        model = drawn.model.write(folder)
        port = busy.getsockname()[1]
        yield Case(model, SOURCES[drawn.model.source], image, good, pictures, masks, drawn.node, port, out)


def _whole(path: Path) -> str | None:
    """Why the file at ``path`` is not a whole file of its kind, or None."""
    try:
        if path.suffix == ".png" and cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is None:
            return "an unreadable PNG"
        if path.suffix == ".npy":
            np.load(path, allow_pickle=False)
        if path.suffix == ".json":
            json.loads(path.read_text())
        if path.suffix == ".onnx":
            onnx.load(str(path), load_external_data=False)
        if path.suffix == ".html" and not path.read_text().rstrip().endswith("</html>"):
            return "an HTML page cut short"
    except Exception as exc:
        return f"unreadable ({type(exc).__name__}: {exc})"
    return None


def outputs_verdict(out: Path, code: int) -> str | None:
    """What is wrong with the files the run left in ``out``, or None."""
    files = [p for p in out.rglob("*") if p.is_file()]
    temporary = [p.name for p in files if p.name.startswith(TEMPORARY_PREFIX)]
    if temporary:
        return f"temporary files left behind: {temporary}"
    if code != 0 and files:
        return f"exit {code} left outputs: {[str(p.relative_to(out)) for p in files]}"
    broken = [f"{p.relative_to(out)} is {why}" for p in files if (why := _whole(p))]
    return "; ".join(broken) or None


@contextmanager
def inside(folder: Path) -> Iterator[None]:
    """The working directory set to ``folder`` for the block (``contextlib.chdir`` is 3.11's)."""
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


# What C libraries write straight to the stderr file descriptor, under CliRunner's Python-level
# capture: onnxruntime's logs, for one. A user sees it beside onnxviz's paragraph, so it is a
# finding, except libpng's own warning on a forged header, which OpenCV offers no way to silence
# (the picture is then refused with onnxviz's error).
SILENT_ELSEWHERE = ("libpng warning:", "libpng error:")


class NativeStderr:
    """What arrived on file descriptor 2 during a ``native_stderr`` block (read when it ends)."""

    def __init__(self) -> None:
        self.captured = ""

    def text(self) -> str:
        return self.captured


@contextmanager
def native_stderr() -> Iterator[NativeStderr]:
    """File descriptor 2 sent to a temporary file for the block."""
    found = NativeStderr()
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield found
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            found.captured = sink.read().decode("utf-8", "replace")


def judge(code: int, stderr: str, command: str) -> str | None:
    """Why this ending is not acceptable, or None: a result, or one onnxviz error paragraph (its
    notes, ``onnxviz: ...`` lines, and blank lines aside)."""
    if "Traceback" in stderr or "internal error" in stderr:
        return f"exit {code}: {stderr.strip()[-600:]}"
    if code not in (0, 1, 2):
        return f"exit code {code}"
    if code == 0 or (code == 1 and command in REPORTS_ON_FAILURE and "error:" not in stderr):
        return None
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("onnxviz:")]
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    if errors != [0] or any(line.startswith(("warning", "ERROR", "INFO")) for line in lines):
        return f"exit {code} without one error paragraph: {stderr.strip()[-600:]!r}"
    return None


def run_case(argv: list[str], case: Case) -> tuple[str | None, float]:
    """Run ``onnxviz ARGV`` in-process; (what is wrong with how it ended or None, seconds taken)."""
    runner = CliRunner()
    started = time.perf_counter()
    try:  # in the case's out folder: a command's default outputs land there and are judged too
        with inside(case.out), native_stderr() as native, deadline(CPU_DEADLINE_S, WALL_DEADLINE_S):
            result = runner.invoke(app, argv, prog_name="onnxviz")
    except CaseTimeout as exc:
        return f"hang: {exc}", time.perf_counter() - started
    took = time.perf_counter() - started
    code = result.exit_code
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return f"escaped {type(result.exception).__name__}: {result.exception}", took
    printed = [line for line in native.text().splitlines() if line.strip() and not line.startswith(SILENT_ELSEWHERE)]
    if printed:
        return f"printed on stderr beside onnxviz's own lines: {printed[:3]}", took
    problem = judge(code, result.stderr, argv[0]) or outputs_verdict(case.out, code)
    if problem is None and code == 0 and "--json" in argv:
        try:
            json.loads(result.stdout)
        except ValueError:
            problem = f"--json printed no JSON: {result.stdout[-300:]!r}"
    return problem, took
