#!/usr/bin/env python
"""Print how the inverse treats every default-domain ONNX operator with a float type constraint.

One row per operator of the installed onnx package (``onnx.defs.get_all_schemas_with_history``):
its opset versions, whether it has an inverse rule (and in which family, exact or rectified by
the mode), a zero gradient, or a stated reason for refusing it, or is MISSING; and the property
test that checks its rule (``tests/inverse/rule_cases.py``). Exits 1 when an operator is MISSING.

Usage::

    python scripts/operator_coverage.py [--markdown]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from onnxviz.inverse.coverage import summary, support_table
from tests.inverse.rule_cases import checked_by


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    table = support_table()
    for row in table:
        versions = ",".join(str(v) for v in row.versions)
        status = "MISSING" if row.status == "missing" else row.status
        test = checked_by(row.op_type) if row.status == "rule" else "-"
        if args.markdown:
            print(f"| `{row.op_type}` | {versions} | {status}: {row.detail} | {test} |")
        else:
            print(f"{row.op_type:<28} {versions:<22} {status:<8} {row.detail}  [{test}]")
    counts = summary(table)
    untested = [r.op_type for r in table if r.status == "rule" and checked_by(r.op_type) == "-"]
    elsewhere = [r.op_type for r in table if r.status == "rule" and "test_rule_properties" not in checked_by(r.op_type)]
    print(
        f"\n{len(table)} float operators: {counts['rule']} with a rule, {counts['zero']} zero-gradient, "
        f"{counts['refused']} refused with a reason, {counts['missing']} MISSING; "
        f"{len(untested)} rules without a test; {len(elsewhere)} checked outside the property test "
        f"({', '.join(elsewhere)})."
    )
    return 1 if counts["missing"] else 0


if __name__ == "__main__":
    sys.exit(main())
