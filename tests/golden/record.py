"""Record the golden outputs (``python -m tests.golden.record``): run once, before a refactor."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from tests.golden.commands import STORED, STORED_JSON, execute, runs


class _Capture:
    """What pytest's ``capsys`` gives ``invoke``: the text written since the last read."""

    def __init__(self) -> None:
        import io

        self._out, self._err = io.StringIO(), io.StringIO()
        sys.stdout, sys.stderr = self._out, self._err

    def readouterr(self):
        from types import SimpleNamespace

        out, err = self._out.getvalue(), self._err.getvalue()
        self._out.seek(0), self._out.truncate(), self._err.seek(0), self._err.truncate()
        return SimpleNamespace(out=out, err=err)


def main() -> None:
    """Record; with ``--compare``, say instead which commands' arrays are bit-identical to the stored."""
    compare = "--compare" in sys.argv
    stdout, stderr = sys.stdout, sys.stderr
    arrays, summaries = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        capture = _Capture()
        try:
            for run in runs():
                summary, array = execute(capture, run, Path(folder))
                summaries[run.name] = summary
                if array is not None:
                    arrays[run.name] = array
        finally:
            sys.stdout, sys.stderr = stdout, stderr
    if compare:
        stored = np.load(STORED)
        for name, array in arrays.items():
            same = array.shape == stored[name].shape and np.array_equal(array, stored[name])
            print(f"{name}: {'bit-identical' if same else 'differs'}")
        return
    np.savez_compressed(STORED, **arrays)
    STORED_JSON.write_text(json.dumps(summaries, indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(summaries)} commands, {len(arrays)} arrays -> {STORED.name}, {STORED_JSON.name}")


if __name__ == "__main__":
    main()
