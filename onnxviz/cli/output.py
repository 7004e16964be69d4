"""What every command does with its results: files, JSON, notes and progress, written once.

Files go through ``onnxviz.render.outputs`` (atomic: complete or absent). Results print on stdout
(a table, a few lines, or ``--json``); notes, progress bars and errors go to stderr so that
``--json`` output can be piped.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from onnxviz.render.outputs import write_npy

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class Saveable(Protocol):
    def save(self, path: Path) -> Any: ...


def note(*lines: str | None) -> None:
    """One dim ``onnxviz:`` line on stderr per non-empty line."""
    for line in lines:
        if line:
            err.print(f"[dim]onnxviz: {escape(line)}[/dim]", highlight=False)


def load_notes(model: Any) -> None:
    """What loading changed or decided (opset upgrade, folding, device) — said once per run."""
    note(*model.graph.notes, model.device.note)


def print_json(data: Any) -> None:
    out.print_json(json.dumps(data))


def safe_name(text: str) -> str:
    """A node name made fit for a default file name (``/features/0/Conv`` → ``features_0_Conv``)."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text).strip("_") or "node"


@dataclass
class Outputs:
    """A command's ``--out`` picture, ``--raw`` array and ``--json`` switch.

    With none of the three given the picture goes to a default name, so a bare command still
    leaves its result somewhere.
    """

    picture: Path | None
    raw: Path | None
    json: bool

    def write(self, result: Saveable, raw: np.ndarray, default: Path) -> dict:
        """Write what was asked for; returns the paths written, as the JSON summary gives them."""
        if self.picture is None and self.raw is None and not self.json:
            self.picture = default
        if self.raw is not None:
            write_npy(self.raw, raw.astype(np.float32))
        if self.picture is not None:
            result.save(self.picture)
        return {"out": _text(self.picture), "raw": _text(self.raw)}

    def print_paths(self) -> None:
        for label, path in (("picture", self.picture), ("raw", self.raw)):
            if path is not None:
                out.print(f"{label}: {path}")


def _text(path: Path | None) -> str | None:
    return str(path) if path is not None else None


class Tracker:
    """The callbacks an analysis reports its progress through, bound to one progress bar."""

    def __init__(self, bar: Progress, rate_unit: str | None) -> None:
        self._bar = bar
        self._task = bar.add_task("", total=None, rate="")
        self._rate_unit = rate_unit
        self._started = time.perf_counter()

    def count(self, done: int, total: int) -> None:
        rate = ""
        if self._rate_unit:
            rate = f"{done / max(time.perf_counter() - self._started, 1e-9):.1f} {self._rate_unit}/s"
        self._bar.update(self._task, completed=done, total=total, rate=rate)

    def describe(self, what: str) -> None:
        self._bar.update(self._task, description=what)


@contextmanager
def progress(
    label: str, *, counted: bool = False, rate_unit: str | None = None, quiet: bool = False
) -> Iterator[Tracker]:
    """A transient progress bar on stderr: done/total with time left (``counted``), else a status line.

    ``quiet`` (``--json``) hides it. While it runs, whatever a library prints on stdout goes to
    stderr (Ray prints its workers' failures on stdout): stdout carries only the command's result.
    """
    columns: list = [TextColumn(label)]
    if counted:
        columns += [BarColumn(), MofNCompleteColumn()]
        columns += [TextColumn("{task.fields[rate]}")] if rate_unit else []
        columns += [TimeRemainingColumn(), TextColumn("{task.description}")]
    else:
        columns.append(TextColumn("{task.description}"))
    with redirect_stdout(sys.stderr), Progress(*columns, console=err, transient=True, disable=quiet) as bar:
        yield Tracker(bar, rate_unit)


def run_counted(
    loaded: Any, call: Callable[[Callable[[int, int], None]], Any], label: str, outputs: Outputs, default: Path
) -> Any | None:
    """The flow of a command that counts its inputs on a loaded model: the model's notes, then
    ``call(progress)`` under a counted bar, ``--out`` written and ``--json`` printed. Returns the
    result for the command's own text lines (after the result's note), or None where ``--json``
    printed it (the command then prints nothing more)."""
    load_notes(loaded)
    with progress(label, counted=True, rate_unit="inputs", quiet=outputs.json) as tracker:
        result = call(tracker.count)
    outputs.write(result, np.empty(0), default)
    if outputs.json:
        print_json(result.summary())
        return None
    note(result.note)
    return result
