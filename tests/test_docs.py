"""The documentation keeps up with the code: every command has a page that documents it, every
page in the site's nav exists, the README's command table lists every command, every registered
analysis has a page, and the pages generated at build time cover what they are generated from."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import typer

from onnxviz.analyses.attribute.options import METHODS as ATTRIBUTION_METHODS
from onnxviz.analyses.cam.methods import METHODS as CAM_METHODS
from onnxviz.cli import app
from onnxviz.inverse.rules import RULES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NAV_PAGE = re.compile(r"^\s*-\s+(?:[^:\n]+:\s+)?(?P<page>[\w./-]+\.md)\s*$")
README_COMMAND_ROW = re.compile(r"^\|\s*\[`onnxviz (?P<command>[\w-]+)`\]\((?P<link>[^)]+)\)\s*\|")


def _commands() -> list[str]:
    """The registered commands, as ``onnxviz --help`` lists them."""
    return [name for name, command in typer.main.get_command(app).commands.items() if not command.hidden]


def _nav_pages() -> list[str]:
    """The pages of mkdocs.yml's ``nav``, relative to docs/ (read as text: no YAML library needed)."""
    lines = (ROOT / "mkdocs.yml").read_text(encoding="utf-8").splitlines()
    nav = lines[lines.index("nav:") + 1 :]
    return [match["page"] for line in nav if (match := NAV_PAGE.match(line))]


def _command_page(command: str) -> str:
    return f"commands/{command}.md"


def _hook(name: str) -> ModuleType:
    """A docs hook module, loaded from its file as mkdocs loads it."""
    spec = importlib.util.spec_from_file_location(f"docs_hook_{name}", DOCS / "hooks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_page_in_the_nav_exists():
    pages = _nav_pages()
    assert len(pages) > len(_commands())
    assert [page for page in pages if not (DOCS / page).is_file()] == []


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_a_page_in_the_nav_that_shows_it(command):
    page = _command_page(command)
    assert page in _nav_pages(), f"{page} is not in mkdocs.yml's nav"
    assert f"onnxviz {command}" in (DOCS / page).read_text(encoding="utf-8"), f"{page} never shows `onnxviz {command}`"


def test_the_readme_command_table_lists_every_command_with_its_page():
    rows = [
        match
        for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
        if (match := README_COMMAND_ROW.match(line))
    ]
    assert [row["command"] for row in rows] == _commands()
    assert [row["link"] for row in rows] == [f"docs/{_command_page(command)}" for command in _commands()]


def test_ci_runs_exactly_the_readme_development_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^## Development\n+```bash\n(?P<commands>.*?)```", readme, re.MULTILINE | re.DOTALL)
    assert block is not None, "README.md has no Development section with a bash block"
    commands = block["commands"].strip().splitlines()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-len(commands) :] == commands


def test_every_registered_analysis_has_a_page():
    from onnxviz.analyses.registry import ANALYSES

    missing = [name for name in ANALYSES if _command_page(name) not in _nav_pages()]
    assert missing == [], f"registered analyses without a page in the nav: {missing}"


@pytest.mark.parametrize("method", [*CAM_METHODS, *ATTRIBUTION_METHODS])
def test_every_cam_and_attribute_method_has_a_page_with_its_picture(method):
    slug = method.replace("+", "-plus")
    assert f"methods/{slug}.md" in _nav_pages()
    page = (DOCS / "methods" / f"{slug}.md").read_text(encoding="utf-8")
    assert f"--method {method} " in page and "**Paper**" in page
    picture = f"images/methods/{slug}.jpg"
    assert f"(../{picture})" in page and (DOCS / picture).stat().st_size > 10_000


def test_the_cli_reference_has_a_section_for_every_command():
    reference = _hook("cli_reference").render_reference()
    for command in _commands():
        assert f"## `onnxviz {command}`" in reference


def test_the_operator_table_has_a_row_for_every_rule():
    table = _hook("op_table").render_table()
    assert [op for op in RULES if f"| `{op}` |" not in table] == []


def test_the_api_reference_lists_the_result_types():
    blocks = _hook("api_reference").render_results()
    assert re.search(r"^::: onnxviz\.[\w.]+\.Projection$", blocks, re.MULTILINE)
    assert blocks.startswith(":::") and blocks.count(":::") > 10


def test_the_site_builds_with_no_warning(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install '.[docs]')")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr[-3000:]
