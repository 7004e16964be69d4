"""The progress callbacks analyses report through, one named type per kind of report.

They differ in what a report carries, so they stay three types: a sweep counts items done of a
total, an ascent also says its objective, and a comparison names the stage it starts.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]  # (done, total): batches of a sweep, images of a scan
StepProgress = Callable[[int, int, float], None]  # (step, steps, mean objective) of a gradient ascent
StageProgress = Callable[[str], None]  # the name of the stage a multi-stage analysis starts
