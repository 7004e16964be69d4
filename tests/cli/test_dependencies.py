"""The command runs on the declared dependencies alone.

typer no longer depends on click (it carries its own copy), so a module of the CLI that imports
``click`` works only where some other package happens to install it: this test runs a command in a
fresh interpreter where importing click fails.
"""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT

WITHOUT_CLICK = """
import builtins, sys
real = builtins.__import__
def refuse(name, *args, **kwargs):
    if name == "click" or name.startswith("click."):
        raise ImportError("click is not a dependency of onnxviz")
    return real(name, *args, **kwargs)
builtins.__import__ = refuse
sys.argv = ["onnxviz", "layers", sys.argv[1], "--json", "--device", "cpu"]
from onnxviz.cli import main
main()
"""


def test_the_cli_runs_where_click_is_not_installed() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_CLICK, str(ROOT / "models" / "demo.onnx")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert '"alias": "conv1"' in done.stdout
