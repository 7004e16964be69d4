"""Adding a method is one module and one registry entry: docs/adding-a-method.md's toy, gradient ×
sign (``tests/toy_method.py``), registered here and nowhere else, is a command, a facade method and
in the viewer's menu, and each computes the same numbers as an independent route to them (the
``saliency`` projection of the logit, times the sign of the input). Without the entry, none exist.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from starlette.testclient import TestClient

import onnxviz
from onnxviz.analyses.registry import ANALYSES, Analysis, Subject
from onnxviz.serve import Viewer, create_app
from tests.cli_helpers import invoke, run_cli
from tests.helpers import DEMO
from tests.toy_method import GradSign, GradSignOptions, gradsign

PICTURES = DEMO.parent / "images"
IMAGE = PICTURES / "triangle.png"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def registered(monkeypatch) -> Analysis:
    """The docs page's one registry line."""
    entry = Analysis("gradsign", GradSignOptions, gradsign, Subject.IMAGE, viewer=True)
    monkeypatch.setitem(ANALYSES, "gradsign", entry)
    return entry


@pytest.fixture(scope="module")
def model() -> onnxviz.Model:
    return onnxviz.load(DEMO, device="cpu")


def saliency_times_sign(capsys, tmp_path: Path, model: onnxviz.Model) -> tuple[int, np.ndarray]:
    """The top-1 class and its ∂logit/∂x ⊙ sign(x) by another route: ``project --rule saliency`` of
    the strongest logit (a 1-D layer is seeded with a one-hot 1, so the projection is ∂logit/∂x),
    and the input ``prepare`` makes."""
    raw = tmp_path / "saliency.npy"
    arguments = ("project", DEMO, IMAGE, "--node", "fc2", "--rule", "saliency", "--raw", raw, "--json")
    code, out, err = run_cli(capsys, *arguments, "--device", "cpu")
    assert code == 0, err
    projection = json.loads(out)
    x = model.prepare(IMAGE)[0]
    return projection["channels"][0], np.load(raw) * np.sign(x)


def test_the_toy_is_a_command_that_computes_gradient_times_sign(registered, model, capsys, tmp_path) -> None:
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and "gradsign" in out
    raw = tmp_path / "gradsign.npy"
    code, out, err = run_cli(capsys, "gradsign", DEMO, IMAGE, "--json", "--raw", raw, "--device", "cpu")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["raw"] == str(raw)
    attribution = np.load(raw)
    top1, expected = saliency_times_sign(capsys, tmp_path, model)
    assert summary["target"]["kind"] == "class" and summary["target"]["class"] == top1
    assert attribution.shape == expected.shape == (1, 3, 64, 64)
    np.testing.assert_allclose(attribution, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    assert summary["total"] == pytest.approx(float(attribution.sum()), rel=1e-5)


def test_the_toy_command_takes_its_options_as_flags_and_refuses_bad_ones(registered, capsys, tmp_path) -> None:
    picture = tmp_path / "gradsign.png"
    code, out, err = run_cli(capsys, "gradsign", DEMO, IMAGE, "--target", "3", "--out", picture, "--device", "cpu")
    assert code == 0, err
    assert cv2.imread(str(picture)) is not None and str(picture) in out
    code, _, err = run_cli(capsys, "gradsign", DEMO, IMAGE, "--target", "99", "--json", "--device", "cpu")
    assert code == 2 and "Class 99 does not exist" in err


def test_the_toy_is_a_method_of_a_loaded_model(registered, model) -> None:
    assert "gradsign" in dir(model)
    signature = inspect.signature(model.gradsign)
    assert list(signature.parameters) == ["image", "target", "options"]
    assert signature.parameters["target"].kind is inspect.Parameter.KEYWORD_ONLY
    result = model.gradsign(IMAGE, target=3)
    assert isinstance(result, GradSign) and result.target.class_index == 3
    same = model.gradsign(IMAGE, options=GradSignOptions(target=3))
    np.testing.assert_array_equal(result.attribution, same.attribution)
    with pytest.raises(onnxviz.errors.OptionError, match="Unknown option strength"):
        model.gradsign(IMAGE, strength=2)


def test_the_toy_is_in_the_viewers_menu_and_computed_on_the_picture_on_show(registered, model) -> None:
    client = TestClient(create_app(Viewer(onnxviz.load(DEMO, device="cpu"), PICTURES)))
    entries = {entry["name"]: entry for entry in client.get("/api/analyses").json()["analyses"]}
    assert entries["gradsign"] == {
        "name": "gradsign",
        "subject": "image",
        "help": "Gradient × sign of the target's score for one image: which pixels, as they are, raise it.",
        "layer": False,
    }
    expected = model.gradsign(IMAGE)
    answer = client.get("/api/run/gradsign", params={"image": IMAGE.name})
    assert answer.status_code == 200, answer.text
    assert answer.json() == json.loads(json.dumps(expected.summary()))
    picture = client.get("/api/run/gradsign.png", params={"image": IMAGE.name})
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(picture.content, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(decoded, expected.figure())
    assert client.get("/api/run/gradsign").status_code == 400  # no picture on show


def test_without_the_registry_entry_the_toy_exists_nowhere(model, capsys) -> None:
    assert "gradsign" not in ANALYSES
    code, _, err = invoke(capsys, "gradsign", DEMO, IMAGE, "--json")
    assert code == 2 and "No such command" in err
    assert not hasattr(model, "gradsign") and "gradsign" not in dir(model)
    client = TestClient(create_app(Viewer(onnxviz.load(DEMO, device="cpu"), PICTURES)))
    assert "gradsign" not in {entry["name"] for entry in client.get("/api/analyses").json()["analyses"]}
    assert client.get("/api/run/gradsign", params={"image": IMAGE.name}).status_code == 404


def test_the_docs_page_shows_the_toys_code_as_tested() -> None:
    page = (ROOT / "docs" / "adding-a-method.md").read_text(encoding="utf-8")
    assert '--8<-- "tests/toy_method.py"' in page
