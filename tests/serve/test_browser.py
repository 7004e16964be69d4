"""The viewer in a real browser: Debian's headless Chromium driven by Playwright against uvicorn.

Load the page, pick an image, click a channel, wait for the projection to decode, toggle the rule
(the picture changes), walk with the arrow keys, run an occlusion (the heatmap appears), run an
analysis from the menu (its figure and summary appear), draw a cam and an attribution for a class
from the method menu, upload a picture; no console
error on the way. Screenshots land in the test's tmp folder. Skips, saying why, only where Chromium
or Playwright is missing.
"""

from __future__ import annotations

import shutil

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (the test extra has it)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def page(live_server, tmp_path):
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed here (.ci/run installs Debian's chromium package)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.messages = []
        page.on("console", lambda message: page.messages.append((message.type, message.text)))
        page.on("pageerror", lambda error: page.messages.append(("error", str(error))))
        page.goto(live_server + "/")
        yield page
        browser.close()


def _decoded_source(page, selector: str, previous: str | None = None) -> str:
    """Wait until ``selector`` shows a decoded picture other than ``previous``; its ``src``."""
    page.wait_for_function(
        "([selector, previous]) => { const i = document.querySelector(selector);"
        " return i.src && i.src !== previous && i.complete && i.naturalWidth > 0; }",
        arg=[selector, previous or ""],
        timeout=15000,
    )
    return page.eval_on_selector(selector, "i => i.src")


def _pixels(page, selector: str) -> list[int]:
    """The decoded picture's RGBA bytes, read back through a canvas."""
    return page.eval_on_selector(
        selector,
        "i => { const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight;"
        " const g = c.getContext('2d'); g.drawImage(i, 0, 0); return Array.from(g.getImageData(0, 0, c.width,"
        " c.height).data); }",
    )


def test_the_viewer_works_in_headless_chromium(page, served, tmp_path) -> None:
    assert page.locator("#layers tr.maps").count() >= 3
    page.select_option("#image-picker", "chelsea.png")
    page.wait_for_selector("#grid .channel")
    _decoded_source(page, "#picture")
    assert page.locator("#grid .channel").count() == 16  # conv1 of the demo model: 16 maps

    page.click("#layers tr[data-node=conv2]")
    page.wait_for_function("() => document.querySelectorAll('#grid .channel').length === 32")
    page.click("#grid .channel[data-channel='5']")
    page.wait_for_function("() => document.querySelector('#projection').src.includes('channel=5')")
    deconvnet = _decoded_source(page, "#projection")
    before = _pixels(page, "#projection")
    assert "conv2 channel 5" in page.inner_text("#projection-caption")
    page.screenshot(path=str(tmp_path / "projection.png"), full_page=True)

    page.check("input[name=rule][value=guided]")
    guided = _decoded_source(page, "#projection", deconvnet)
    assert "rule=guided" in guided and _pixels(page, "#projection") != before

    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('#projection').src.includes('channel=6')")
    _decoded_source(page, "#projection", guided)
    page.keyboard.press("ArrowDown")
    page.wait_for_function("() => document.querySelector('#layers tr.selected').dataset.node !== 'conv2'")

    page.fill("#patch", "16")
    page.fill("#stride", "4")
    page.click("#occlude")
    _decoded_source(page, "#heatmap")
    assert "13×13 positions" in page.inner_text("#occlusion-caption")
    assert page.eval_on_selector("#occlusion-progress", "p => p.value === p.max")
    assert page.locator(".gallery img").count() == 3
    page.wait_for_function(
        "() => [...document.querySelectorAll('.gallery img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    page.screenshot(path=str(tmp_path / "occlusion.png"), full_page=True)

    layer = page.eval_on_selector("#layers tr.selected", "row => row.dataset.node")
    page.select_option("#analysis-picker", "activations")
    page.click("#analysis-run")
    _decoded_source(page, "#analysis-picture")
    assert f'"node": "{layer}"' in page.inner_text("#analysis-summary")

    page.select_option("#method-picker", "gradcam")
    page.fill("#target", "2")
    page.click("#explain")
    cam = _decoded_source(page, "#explain-picture")
    assert "target=2" in cam and "gradcam of class 2" in page.inner_text("#explain-caption")
    assert page.get_attribute("#explain-image", "src") is None  # a cam is drawn over the image
    page.select_option("#method-picker", "saliency")
    page.click("#explain")
    _decoded_source(page, "#explain-picture", cam)
    _decoded_source(page, "#explain-image")  # an attribution is drawn beside the image
    assert "saliency of class 2" in page.inner_text("#explain-caption")

    shown = page.eval_on_selector("#picture", "i => i.src")
    page.set_input_files("#upload", str(served["images"] / "nested" / "stripes.png"))
    assert "image=upload%3A" in _decoded_source(page, "#picture", shown)
    page.wait_for_function("() => document.querySelector('#heatmap').getAttribute('src') === null")
    assert page.get_attribute("#analysis-picture", "src") is None
    assert page.get_attribute("#explain-picture", "src") is None
    assert page.inner_text("#status") == ""
    assert [m for m in page.messages if m[0] == "error"] == []


def test_the_viewer_opens_on_the_first_picture_of_the_folder(page, viewer) -> None:
    """No "(choose)" first: the page shows the first picture of --images and its first layer's maps."""
    first = viewer.image_names()[0]
    page.wait_for_selector("#grid .channel")
    assert page.eval_on_selector("#image-picker", "s => s.value") == first
    shown = _decoded_source(page, "#picture")
    assert "image=" in shown and page.evaluate("(src) => new URL(src).searchParams.get('image')", shown) == first
    assert page.locator("#grid .channel").count() == 16  # conv1 of the demo model: 16 maps
    assert not [m for m in page.messages if m[0] == "error"], page.messages
