"""Hostile names in pages onnxviz writes: a file name or node name shows as text, never as markup.

The pages are parsed with the standard library's HTML parser, which reads markup the way a
browser's tokenizer does: a live ``<script>`` element or an ``onerror`` attribute would show up as a
start tag, and the escaped names must come back as text.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import helper

from onnxviz.markup import Markup, escape, fill, join, url
from tests.helpers import make_model
from tests.test_cli import run_cli

PICTURE_NAME = "<img src=x onerror=alert(1)>.png"
CONV_NAME = "<script>alert('conv')</script>"
SIGMOID_NAME = "<img src=y onerror=alert(2)>"


class PageReader(HTMLParser):
    """Every start tag with its attributes, and all text, of one page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def read_page(path: Path) -> PageReader:
    reader = PageReader()
    reader.feed(path.read_text(encoding="utf-8"))
    reader.close()
    return reader


def assert_no_live_markup(page: PageReader) -> None:
    assert not [tag for tag, _ in page.tags if tag == "script"]
    handlers = [(tag, name) for tag, attrs in page.tags for name in attrs if name.startswith("on")]
    assert not handlers
    sources = [attrs.get("src") or "" for tag, attrs in page.tags if tag == "img"]
    assert all(src.startswith("data:image/png;base64,") or src.endswith(".png") for src in sources)
    assert all(src != "x" and "javascript:" not in src for src in sources)


@pytest.fixture(scope="module")
def hostile_model(tmp_path_factory) -> Path:
    """conv (named with a script tag) → relu → sigmoid (named with an img tag) → conv → relu."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name=CONV_NAME),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu_a"),
        helper.make_node("Sigmoid", ["r1"], ["s1"], name=SIGMOID_NAME),
        helper.make_node("Conv", ["s1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv_b"),
        helper.make_node("Relu", ["c2"], ["y"], name="relu_b"),
    ]
    inits = {
        "w1": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "w2": rng.standard_normal((4, 4, 3, 3)).astype(np.float32),
    }
    path = tmp_path_factory.mktemp("hostile") / "hostile.onnx"
    onnx.save(make_model(nodes, (1, 3, 16, 16), "y", inits), str(path))
    return path


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(1)
    for name in (PICTURE_NAME, "plain.png"):
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    return folder


def test_topk_index_shows_hostile_file_and_node_names_as_text(capsys, tmp_path, hostile_model, hostile_folder):
    out = tmp_path / "out"
    code, _, err = run_cli(
        capsys, "topk", hostile_model, hostile_folder, "--node", SIGMOID_NAME, "--channels", "0,1", "--k", "2",
        "--out", out, "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    page = read_page(out / "index.html")
    assert_no_live_markup(page)
    text = "".join(page.text)
    assert PICTURE_NAME in text and SIGMOID_NAME in text
    assert [attrs["src"] for tag, attrs in page.tags if tag == "img"] == ["channel_0000.png", "channel_0001.png"]


def test_report_shows_hostile_file_and_node_names_as_text(capsys, tmp_path, hostile_model, hostile_folder):
    out = tmp_path / "report.html"
    code, _, err = run_cli(
        capsys, "report", hostile_model, hostile_folder / PICTURE_NAME, "--out", out, "--top", "1",
        "--layers", "conv1", "--layers", SIGMOID_NAME, "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    page = read_page(out)
    assert_no_live_markup(page)
    text = "".join(page.text)
    assert PICTURE_NAME in text and CONV_NAME in text and SIGMOID_NAME in text
    assert len([tag for tag, _ in page.tags if tag == "img"]) >= 3


def test_fill_escapes_values_but_not_markup_it_made() -> None:
    inner = fill("<b>{name}</b>", name="<i>&")
    assert inner == "<b>&lt;i&gt;&amp;</b>" and isinstance(inner, Markup)
    assert fill("<p>{x}</p>", x=inner) == "<p><b>&lt;i&gt;&amp;</b></p>"
    assert fill('<a title="{t}">', t="\" onclick='x'") == '<a title="&quot; onclick=&#x27;x&#x27;">'
    assert escape(escape("<")) == "&lt;"
    assert join(["<raw>", Markup("<ok>")]) == "&lt;raw&gt;<ok>"


def test_url_keeps_file_names_relative() -> None:
    assert url("javascript:alert(1).png") == "javascript%3Aalert%281%29.png"
    assert url('a "b".png') == "a%20%22b%22.png"
    assert url("sub/c.png") == "sub/c.png"
