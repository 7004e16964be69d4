"""The one place where text becomes HTML: everything is escaped unless it is already markup.

Node names, tensor names and image file names come from files onnxviz did not write; a picture
named ``<img src=x onerror=alert(1)>.png`` or a node named ``<script>`` must show as text in a
page, never run. So pages are built only with ``fill``: it escapes every value it inserts unless
the value is ``Markup`` that ``fill`` itself made (as markupsafe does), so forgetting to escape
is not possible and escaping twice does not happen.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from urllib.parse import quote


class Markup(str):
    """A string that is already safe HTML (made by ``fill`` or ``join``)."""

    __slots__ = ()


def escape(value: object) -> Markup:
    """``value`` as HTML text: markup stays as it is, anything else is escaped (quotes too)."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def url(path: str) -> Markup:
    """A relative file name for ``src``/``href``: percent-encoded, so that no name (``a:b.png``,
    ``javascript:…``) is read as a scheme, then escaped for the attribute."""
    return escape(quote(path, safe="/"))


def fill(template: str, **values: object) -> Markup:
    """``template`` (trusted markup written in onnxviz's code) with every value escaped."""
    return Markup(template.format(**{name: escape(value) for name, value in values.items()}))


def join(parts: Iterable[Markup], separator: str = "") -> Markup:
    """Pieces of markup joined; anything that is not markup is escaped on the way."""
    return Markup(separator.join(escape(part) for part in parts))
