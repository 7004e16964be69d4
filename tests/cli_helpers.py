"""Running the ``onnxviz`` command in-process, for the CLI's tests and every command's tests.

In-process (not a subprocess) so a run costs milliseconds and pytest's ``capsys`` sees stdout
and stderr; ``main()`` is called exactly as the console script calls it.
"""

from __future__ import annotations

import sys

from onnxviz import cli


def invoke(capsys, *args: object) -> tuple[int, str, str]:
    """``onnxviz ARGS``: (exit code, stdout, stderr), whatever stderr holds."""
    argv = sys.argv
    sys.argv = ["onnxviz", *map(str, args)]
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_cli(capsys, *args: object) -> tuple[int, str, str]:
    """``invoke``, asserting no traceback reached stderr (only ``--debug`` may print one)."""
    code, out, err = invoke(capsys, *args)
    assert "Traceback" not in err, err
    return code, out, err
