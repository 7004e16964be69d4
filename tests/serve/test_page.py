"""The viewer's page with hostile names everywhere: node names, picture names, a top-k gallery of
them. Parsed as a browser's tokenizer would: the only script is the viewer's own, no handler
attribute, and every name comes back as text."""

from __future__ import annotations

from starlette.testclient import TestClient

import onnxviz
from onnxviz.serve import Viewer, create_app
from tests.render.test_html_escape import (  # the hostile model and folder, made once for both test files
    CONV_NAME,
    PICTURE_NAME,
    SIGMOID_NAME,
    PageReader,
    hostile_folder,  # noqa: F401 (fixture)
    hostile_model,  # noqa: F401 (fixture)
)


def read(html: str) -> PageReader:
    reader = PageReader()
    reader.feed(html)
    reader.close()
    return reader


def test_hostile_node_and_file_names_show_as_text(hostile_model, hostile_folder, tmp_path) -> None:  # noqa: F811
    model = onnxviz.load(hostile_model, device="cpu")
    model.topk(hostile_folder, node=SIGMOID_NAME, channels=[0], k=2).save(tmp_path / "gallery")
    client = TestClient(create_app(Viewer(model, hostile_folder, tmp_path)))
    page = read(client.get("/").text)
    scripts = [attrs for tag, attrs in page.tags if tag == "script"]
    assert scripts == [{"src": "/static/viewer.js"}]
    assert not [(tag, name) for tag, attrs in page.tags for name in attrs if name.startswith("on")]
    text = "".join(page.text)
    assert PICTURE_NAME in text and CONV_NAME in text and SIGMOID_NAME in text
    options = [attrs["value"] for tag, attrs in page.tags if tag == "option"]
    assert options == ["", PICTURE_NAME, "plain.png"]
    sources = [attrs["src"] for tag, attrs in page.tags if tag == "img" and "src" in attrs]
    assert sources == ["/state/gallery/channel_0000.png"]
    assert client.get("/api/images").json()["images"] == [PICTURE_NAME, "plain.png"]
    answer = client.get("/api/activations", params={"image": PICTURE_NAME, "node": CONV_NAME})
    assert answer.status_code == 200 and answer.json()["node"] == CONV_NAME  # JSON carries names as data


def test_page_reader_sees_live_markup() -> None:
    """The check above can fail: unescaped, the same names would be tags and handlers."""
    page = read(f"<p>{CONV_NAME}</p><p>{PICTURE_NAME}</p>")
    assert [tag for tag, _ in page.tags] == ["p", "script", "p", "img"] and "onerror" in page.tags[-1][1]
