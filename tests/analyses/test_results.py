"""Every analysis returns a ``Result``: the PNG it saves is its figure, its summary is the CLI's
JSON, and the facade only forwards to the analyses."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import onnxviz
from onnxviz.analyses import report as reporting
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.result import Result
from tests.cli_helpers import run_cli
from tests.helpers import FIXTURES

DEMO = FIXTURES.parents[2] / "models" / "demo.onnx"
IMAGES = FIXTURES.parents[2] / "models" / "images"
TRIANGLE = IMAGES / "triangle.png"


@pytest.fixture(scope="module")
def model() -> onnxviz.Model:
    return onnxviz.load(DEMO, device="cpu")


def _results(model: onnxviz.Model, tmp_path) -> dict[str, Result]:
    (tmp_path / "set").mkdir()
    for name in ("triangle.png", "chelsea.png"):
        (tmp_path / "set" / name).write_bytes((IMAGES / name).read_bytes())
    return {
        "project": model.project(TRIANGLE, node="conv2", top=2),
        "occlude": model.occlude(TRIANGLE, patch=16, stride=8),
        "activations": model.activations(TRIANGLE, node="conv2"),
        "filters": model.filters(node="conv1"),
        "topk": model.topk(tmp_path / "set", node="conv2", top_channels=2, k=1),
        "layers": model.layers(),
        "check": model.check(),
        "compare": onnxviz.compare(model, model, [TRIANGLE], layers=["conv2"]),
    }


def test_every_result_saves_and_shows_its_own_figure(model, tmp_path) -> None:
    for name, result in _results(model, tmp_path).items():
        assert isinstance(result, Result), name
        figure = result.figure()
        assert figure.dtype == np.uint8 and figure.ndim == 3 and figure.shape[2] == 3, name
        shown = cv2.imdecode(np.frombuffer(result._repr_png_(), np.uint8), cv2.IMREAD_COLOR)
        np.testing.assert_array_equal(shown[:, :, ::-1], figure, err_msg=name)
        json.dumps(result.summary())  # plain JSON types only
        if name != "topk":  # a top-k result saves a folder (one PNG per channel, index, JSON)
            result.save(tmp_path / f"{name}.png")
            np.testing.assert_array_equal(cv2.imread(str(tmp_path / f"{name}.png"))[:, :, ::-1], figure)


def test_layers_summary_is_what_layers_json_prints(capsys) -> None:
    code, out, err = run_cli(capsys, "layers", DEMO, "--json")
    assert code == 0, err
    assert json.loads(out) == onnxviz.load(DEMO, device="cpu").layers().summary()


def test_check_summary_is_what_check_json_prints(capsys) -> None:
    code, out, err = run_cli(capsys, "check", DEMO, "--json")
    assert code == 0, err
    printed = json.loads(out)
    report = onnxviz.load(DEMO, device="cpu").check()
    summary = report.summary()
    for rows in (printed["layers"], summary["layers"]):
        for row in rows:
            assert row.pop("ms") >= 0  # wall time: the one field two runs do not share
    assert printed == summary and report.ok and len(report) == 6


def test_a_cached_projector_costs_no_build_time_and_prepare_is_never_negative(model) -> None:
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    model.engines.projectors.clear()
    first = model.project(x, node="conv3")
    second = model.project(x, node="conv3")
    assert first.timings["build"] > 0
    assert second.timings["build"] == 0.0
    for timings in (first.timings, second.timings):
        assert min(timings.values()) >= 0
        assert timings["prepare"] + timings["build"] + timings["forward"] + timings["inverse"] <= timings["total"]


def test_the_report_is_drawn_from_results_without_the_facade(model, tmp_path) -> None:
    """The report analysis runs on a bare ``LoadedModel``: it never calls back into ``Model``."""
    bare = LoadedModel(model.graph, model.device, model.preprocessing)
    result = reporting.report(bare, [TRIANGLE], reporting.ReportOptions(top=2, layers=["conv2"]))
    assert [view.name for view in result.images] == ["triangle.png"]
    (layer,) = result.images[0].layers
    expected = model.project(TRIANGLE, node="conv2", top=2)
    np.testing.assert_array_equal(layer.projection.projections, expected.projections)
    assert result.summary()["images"][0]["occlusion"]["kind"] == "class"
    page = result.html()
    # occlusion, the methods side by side, conv2's projections and activations, 3 invariance figures,
    # the sanity grid and the deletion and insertion curves
    assert page.count("data:image/png;base64,") == 1 + 1 + 2 + 3 + 3 and "<td>conv3</td>" in page
    assert result.images[0].explanation.raw().shape == (4, 64, 64)
    path = model.report([TRIANGLE], out=tmp_path / "r.html", top=2, layers=["conv2"], trust=False)
    assert path.read_text().count("data:image/png;base64,") == 7
