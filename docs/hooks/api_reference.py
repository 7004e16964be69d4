"""MkDocs hook: the result types of the API reference, listed at build time.

The page ``reference/api.md`` holds the marker ``<!-- result-types -->``; this hook replaces it
with a mkdocstrings block for every subclass of the results' common base, wherever it is defined,
so a new analysis's result appears without editing the page and a moved module cannot leave a
dangling reference. The base is found through ``onnxviz.Projection``, a public name.
"""

from __future__ import annotations

import onnxviz
import onnxviz.api  # imports every analysis, so every result type is defined

MARKER = "<!-- result-types -->"
BASE_NAME = "Result"


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace the marker, on whichever page carries it, with one block per result type."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render_results())


def render_results() -> str:
    """The base first, then its subclasses by name, each a ``:::`` block mkdocstrings expands."""
    base = next(cls for cls in onnxviz.Projection.__mro__ if cls.__name__ == BASE_NAME)
    ordered = [base, *sorted(_subclasses(base), key=lambda cls: cls.__qualname__)]
    return "\n\n".join(f"::: {cls.__module__}.{cls.__qualname__}" for cls in ordered)


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in cls.__subclasses__():
        found |= _subclasses(sub)
    return found
