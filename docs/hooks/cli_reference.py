"""MkDocs hook: the CLI reference, rendered at build time from the typer app itself.

The page ``reference/cli.md`` holds the marker ``<!-- cli-reference -->``; this hook replaces it
with one section per registered command (usage, help, and a table of its arguments and options),
so the reference cannot drift from the flags the ``onnxviz`` command really accepts. The help
records come from ``get_help_record`` (typer's own copy of click), filled with defaults and
``[required]``; typer's commands are not ``click`` objects, which is why no click-based plugin is used.
"""

from __future__ import annotations

import html

import typer

from onnxviz.cli import app

MARKER = "<!-- cli-reference -->"
PROGRAM = "onnxviz"


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace the marker, on whichever page carries it, with the rendered reference."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render_reference())


def render_reference() -> str:
    """The global options, then every command in the order ``onnxviz --help`` lists them."""
    group = typer.main.get_command(app)
    root = typer.Context(group, info_name=PROGRAM)
    sections = [_section(PROGRAM, group, root, usage=f"{PROGRAM} [GLOBAL OPTIONS] COMMAND ...")]
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        if command.hidden:
            continue
        context = typer.Context(command, info_name=name, parent=root)
        sections.append(_section(f"{PROGRAM} {name}", command, context, usage=_usage(name, command)))
    return "\n\n".join(sections)


def _usage(name: str, command: typer.core.TyperCommand) -> str:
    """``onnxviz NAME [OPTIONS] ARG ...``: optional arguments in brackets, variadic ones with ``...``."""
    pieces = [PROGRAM, name, "[OPTIONS]"]
    for param in command.params:
        if param.param_type_name == "argument":
            piece = param.name.upper() + (" ..." if param.nargs == -1 else "")
            pieces.append(piece if param.required else f"[{piece}]")
    return " ".join(pieces)


def _section(title: str, command: typer.core.TyperCommand, context: typer.Context, usage: str) -> str:
    lines = [f"## `{title}`", "", "```", usage, "```", ""]
    if command.help:
        lines += [_plain(command.help.strip()), ""]
    rows = [
        record
        for param in command.params
        if not getattr(param, "hidden", False)
        if (record := param.get_help_record(context)) is not None
    ]
    if rows:
        lines += ["| argument or option | meaning |", "| --- | --- |"]
        lines += [f"| `{_cell(spelling)}` | {_cell(_plain(meaning))} |" for spelling, meaning in rows]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Table-safe: a ``|`` would end the cell, a newline the row."""
    return " ".join(text.split()).replace("|", "\\|")


def _plain(text: str) -> str:
    """Help text as it reads in a terminal: no HTML, and ``*``/``_`` (``(K, *input)``,
    ``<image>_<node>.png``) kept literal instead of read as emphasis."""
    return html.escape(text).replace("*", "\\*").replace("_", "\\_")
