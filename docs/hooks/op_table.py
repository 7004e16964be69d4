"""MkDocs hook: the table of supported operators, generated at build time from the rule registry.

The page ``reference/ops.md`` holds the marker ``<!-- op-table -->``; this hook replaces it with
one row per operator that ``onnxviz.inverse.rules.ALL_RULES`` can carry a signal back through,
so adding a rule adds its row. Per operator: the opset versions onnx defines for it (the rule
handles each unless its check refuses a node, with the reason), the rule family module, and
whether the three modes differ there. They differ exactly where a rule family calls
``onnxviz.inverse.modes.rectify``, the one place the modes are written. Activations that
exporters write as several nodes (``onnxviz.graph.composite.KINDS``) follow the table.
"""

from __future__ import annotations

import sys
from collections import defaultdict

import onnx.defs

from onnxviz.graph.composite import KINDS
from onnxviz.inverse.modes import rectify
from onnxviz.inverse.rules import ALL_RULES

MARKER = "<!-- op-table -->"
RULES_PACKAGE = "onnxviz.inverse.rules."
SAME_IN_EVERY_MODE = "same in all three"
PER_MODE = "deconvnet: relu(ḡ) · guided: relu(ḡ)·[f′(x) > 0] · saliency: ḡ·f′(x)"


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace the marker, on whichever page carries it, with the generated table."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render_table())


def render_table() -> str:
    """The operators in alphabetical order, then the recognised composite activations."""
    versions = _onnx_versions()
    rows = []
    for rule in ALL_RULES:
        module = rule.emit.__module__
        modes = PER_MODE if getattr(sys.modules[module], "rectify", None) is rectify else SAME_IN_EVERY_MODE
        for op_type in rule.op_types:
            opsets = ", ".join(str(v) for v in versions.get(op_type, [])) or "—"
            rows.append(f"| `{op_type}` | {opsets} | `{module.removeprefix(RULES_PACKAGE)}` | {modes} |")
    header = [
        f"{len(rows)} operators, onnx {onnx.__version__}.",
        "",
        "| operator | opset versions (onnx) | rule family | the three modes |",
        "| --- | --- | --- | --- |",
    ]
    composites = ", ".join(f"`{kind}`" for kind in KINDS)
    footer = [
        "",
        f"Composite activations recognised by the function they compute, and rectified as one activation: "
        f"{composites}.",
    ]
    return "\n".join([*header, *sorted(rows, key=str.lower), *footer])


def _onnx_versions() -> dict[str, list[int]]:
    """``op_type -> [opset of each version]`` for the default domain, as the installed onnx knows it."""
    versions: dict[str, set[int]] = defaultdict(set)
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain in ("", "ai.onnx"):
            versions[schema.name].add(schema.since_version)
    return {name: sorted(found) for name, found in versions.items()}
