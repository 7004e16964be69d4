"""MkDocs hook: the operator support table, generated at build time from the rule registry and the
installed ONNX package's schemas (``onnxviz.inverse.coverage``).

The page ``reference/ops.md`` holds the marker ``<!-- op-table -->``; this hook replaces it with
one row per default-domain ONNX operator that may carry a float tensor, so a new rule, a new
reason or a new ONNX release changes the table. Per operator: the opset versions onnx defines
for it, what the inverse does (a rule: its family module and whether the three modes differ
there; a zero gradient; or the reason it is refused), and the test that checks the rule
(``tests/inverse/rule_cases.py``). The modes differ exactly where a rule family calls
``onnxviz.inverse.modes.rectify``. Activations that exporters write as several nodes
(``onnxviz.graph.composite.KINDS``) follow the table.
"""

from __future__ import annotations

import html
import importlib
import sys
from collections.abc import Callable
from pathlib import Path

import onnx

from onnxviz.graph.composite import KINDS
from onnxviz.inverse.coverage import summary, support_table

ROOT = Path(__file__).resolve().parents[2]

MARKER = "<!-- op-table -->"
STATUS = {"rule": "rule", "zero": "zero gradient", "refused": "refused", "missing": "**missing**"}


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace the marker, on whichever page carries it, with the generated table."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render_table())


def _checked_by() -> Callable[[str], str]:
    """The test cases' index (``tests.inverse.rule_cases.checked_by``), importable from the
    checkout whichever way mkdocs was started (``mkdocs`` does not put the working directory on
    ``sys.path``; ``python -m mkdocs`` does)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("tests.inverse.rule_cases").checked_by


def _cell(text: str) -> str:
    return html.escape(text).replace("|", "\\|")


def render_table() -> str:
    """The operators in alphabetical order, then the recognised composite activations."""
    table = support_table()
    counts = summary(table)
    checked_by = _checked_by()
    rows = []
    for row in table:
        versions = ", ".join(str(v) for v in row.versions)
        tests = checked_by(row.op_type) if row.status == "rule" else "—"
        tests = ", ".join(f"`{t}`" for t in tests.split(", ")) if tests != "—" else tests
        rows.append(f"| `{row.op_type}` | {versions} | {STATUS[row.status]}: {_cell(row.detail)} | {tests} |")
    header = [
        f"{len(table)} operators with a float type in onnx {onnx.__version__}: {counts['rule']} with a rule, "
        f"{counts['zero']} with a zero gradient, {counts['refused']} refused with a reason, "
        f"{counts['missing']} missing.",
        "",
        "| operator | opset versions (onnx) | inverse | tested by |",
        "| --- | --- | --- | --- |",
    ]
    composites = ", ".join(f"`{kind}`" for kind in KINDS)
    footer = [
        "",
        f"Composite activations recognised by the function they compute, and rectified as one activation: "
        f"{composites}.",
    ]
    return "\n".join([*header, *rows, *footer])
