"""The viewer's JSON API is the CLI's JSON, and its pictures are the analyses' pictures.

Each endpoint is checked against something it does not share a request path with: the CLI run
in-process on the same file, a fresh ``onnxviz.load`` of the model, or a plain onnxruntime session
on the original model file with the layer's tensor exposed as an output.
"""

from __future__ import annotations

import json
import threading

import cv2
import numpy as np
import onnx
import pytest
from starlette.testclient import TestClient

import onnxviz
from onnxviz.analyses.explain.analysis import ATTRIBUTE_METHODS, CAM_METHODS
from onnxviz.render import pictures as render
from onnxviz.render.viewer import SPRITE_COLUMNS, SPRITE_TILE
from onnxviz.runtime import engines
from onnxviz.serve import Viewer, create_app
from tests.cli_helpers import run_cli
from tests.helpers import DEMO, session
from tests.serve.conftest import HOSTILE

TIMED = ("timings_ms", "positions_per_second")


def untimed(summary: dict) -> dict:
    """A summary without what depends on the clock (and without the CLI's written paths)."""
    return {k: v for k, v in summary.items() if k not in (*TIMED, "out", "raw")}


def decoded(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    picture = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(picture, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def fresh() -> onnxviz.Model:
    """The model loaded again: what a script using the Python API would get."""
    return onnxviz.load(DEMO, device="cpu")


def plain_activation(tensor: str, x: np.ndarray) -> np.ndarray:
    """``tensor`` of the original model file for input ``x``, by a plain onnxruntime session."""
    model = onnx.load(DEMO)
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
    return session(model).run([tensor], {model.graph.input[0].name: x})[0]


def test_layers_json_is_the_cli_json(client, capsys) -> None:
    code, out, err = run_cli(capsys, "layers", DEMO, "--json")
    assert code == 0, err
    assert client.get("/api/layers").json() == json.loads(out)


def test_project_json_is_the_cli_json_and_the_png_is_the_projection_picture(client, served, fresh, capsys) -> None:
    picture = served["images"] / "chelsea.png"
    params = {"image": "chelsea.png", "node": "conv2", "channel": 5, "rule": "guided"}
    answer = client.get("/api/project", params=params).json()
    code, out, err = run_cli(
        capsys, "project", DEMO, picture, "--node", "conv2", "-c", "5", "--rule", "guided", "--json"
    )
    assert code == 0, err
    assert untimed(answer) == untimed(json.loads(out))
    expected = fresh.project(picture, node="conv2", channels=[5], rule="guided")
    shown = decoded(client.get("/api/project.png", params=params))
    np.testing.assert_array_equal(shown, render.projection_to_rgb(expected.projections[0], "nchw", "rgb"))
    x = fresh.prepare(picture)[0]
    np.testing.assert_allclose(answer["activations"][0], plain_activation(answer["tensor"], x)[0, 5].max(), rtol=1e-5)


def test_the_rule_toggle_changes_the_projection(client, served, fresh) -> None:
    picture = served["images"] / "triangle.png"
    shown = {}
    for rule in ("deconvnet", "guided", "saliency"):
        params = {"image": "triangle.png", "node": "conv3", "channel": 2, "rule": rule}
        shown[rule] = decoded(client.get("/api/project.png", params=params))
        expected = fresh.project(picture, node="conv3", channels=[2], rule=rule).projections[0]
        np.testing.assert_array_equal(shown[rule], render.projection_to_rgb(expected, "nchw", "rgb"))
    assert not np.array_equal(shown["deconvnet"], shown["guided"])
    assert not np.array_equal(shown["guided"], shown["saliency"])


def test_project_without_channel_projects_the_strongest(client, served, fresh) -> None:
    answer = client.get("/api/project", params={"image": "circle.png", "node": "conv1"}).json()
    assert answer["channels"] == [int(fresh.project(served["images"] / "circle.png", node="conv1").channels[0])]


def test_activations_json_is_the_cli_json_and_the_sprite_holds_every_map(client, served, fresh, capsys) -> None:
    picture = served["images"] / "nested" / "stripes.png"
    params = {"image": "nested/stripes.png", "node": "conv2"}
    answer = client.get("/api/activations", params=params).json()
    code, out, err = run_cli(capsys, "activations", DEMO, picture, "--node", "conv2", "--json")
    assert code == 0, err
    assert answer == untimed(json.loads(out))
    maps = plain_activation(answer["tensor"], fresh.prepare(picture)[0])[0]
    np.testing.assert_allclose(answer["max_per_map"], maps.reshape(len(maps), -1).max(axis=1), rtol=1e-5)
    sprite = decoded(client.get("/api/activations.png", params=params))
    columns = min(SPRITE_COLUMNS, len(maps))
    assert sprite.shape == (-(-len(maps) // columns) * SPRITE_TILE, columns * SPRITE_TILE, 3)
    peak = np.abs(maps).max()
    nearest = np.arange(SPRITE_TILE) * maps.shape[1] // SPRITE_TILE  # the source row of each tile row
    for channel in (0, 7, len(maps) - 1):
        row, col = divmod(channel, columns)
        tile = sprite[row * SPRITE_TILE : (row + 1) * SPRITE_TILE, col * SPRITE_TILE : (col + 1) * SPRITE_TILE, 0]
        expected = np.clip(np.abs(maps[channel]) / peak * 255, 0, 255).astype(np.uint8)[np.ix_(nearest, nearest)]
        np.testing.assert_array_equal(tile, expected)


def test_the_menu_runs_each_viewer_analysis_on_the_picture_and_layer_on_show(client, served, fresh) -> None:
    menu = {
        entry["name"]: (entry["subject"], entry["layer"]) for entry in client.get("/api/analyses").json()["analyses"]
    }
    assert {name: menu.get(name) for name in ("layers", "project", "activations", "topk")} == {
        "layers": ("model", False),
        "project": ("image", True),
        "activations": ("image", True),
        "topk": None,  # registered, but reads a folder and is not for the viewer
    }
    params = {"image": "nested/stripes.png", "node": "conv2"}
    answer = client.get("/api/run/activations", params=params).json()
    assert answer == client.get("/api/activations", params=params).json()
    expected = fresh.activations(served["images"] / "nested" / "stripes.png", node="conv2").figure()
    np.testing.assert_array_equal(decoded(client.get("/api/run/activations.png", params=params)), expected)
    assert client.get("/api/run/layers").json() == client.get("/api/layers").json()
    assert client.get("/api/run/topk", params=params).status_code == 404
    refused = client.get("/api/run/activations", params={"image": "nested/stripes.png"})
    assert refused.status_code == 400 and "node" in refused.json()["error"]  # no layer on show


def test_the_method_menu_draws_a_cam_over_the_image_and_an_attribution_beside_it(client) -> None:
    drawn = {entry["name"]: entry["drawn"] for entry in client.get("/api/methods").json()["methods"]}
    assert {drawn[name] for name in CAM_METHODS} == {"over"}
    assert {drawn[name] for name in ATTRIBUTE_METHODS} == {"beside"}
    assert list(drawn) == [*CAM_METHODS, *ATTRIBUTE_METHODS]


@pytest.mark.parametrize(("method", "target"), [("gradcam", 2), ("ig", 5), ("layercam", None)])
def test_explain_returns_the_methods_map_for_the_target_picked(client, served, fresh, method, target) -> None:
    picture = served["images"] / "chelsea.png"
    params = {"image": "chelsea.png", "method": method, **({} if target is None else {"target": target})}
    answer = client.get("/api/explain", params=params).json()
    expected = fresh.explain(picture, methods=[method], target=target)
    assert answer["methods"] == expected.summary()["methods"]
    top1 = fresh.cam([picture]).targets[0].class_index
    assert answer["methods"][method]["target"]["class"] == (top1 if target is None else target)
    if method in CAM_METHODS:
        alone = fresh.cam([picture], method=method, target=target).heatmaps[0]
    else:
        attribution = np.abs(fresh.attribute([picture], method=method, target=target).attribution[0]).sum(axis=0)
        alone = (attribution - attribution.min()) / (1e-7 + (attribution - attribution.min()).max())
    np.testing.assert_array_equal(expected.panels[0].map, alone.astype(np.float32))
    shown = decoded(client.get("/api/explain.png", params=params))
    np.testing.assert_array_equal(shown, expected.drawn(expected.panels[0]))


def test_explain_refuses_an_unknown_method_and_a_class_the_model_lacks(client) -> None:
    cases = [
        ({"image": "chelsea.png", "method": "magic"}, 400, "magic"),
        ({"image": "chelsea.png", "method": "gradcam", "target": 99}, 400, "99"),
        ({"image": "chelsea.png", "method": "gradcam", "target": "two"}, 400, "Cannot read the target 'two'"),
        ({"image": "chelsea.png"}, 400, "method"),
        ({"method": "gradcam"}, 400, "image"),
    ]
    for params, status, needle in cases:
        response = client.get("/api/explain", params=params)
        assert response.status_code == status and needle in response.json()["error"], (params, response.text)


def test_occlusion_json_is_model_occlude_and_the_heatmap_is_drawn_from_it(client, served, fresh) -> None:
    picture = served["images"] / "chelsea.png"
    params = {"image": "chelsea.png", "patch": 16, "stride": 8}
    answer = client.get("/api/occlude", params={**params, "job": "sweep"}).json()
    expected = fresh.occlude(picture, patch=16, stride=8)
    assert untimed(answer) == untimed(expected.summary())
    rows, cols = answer["grid"]["rows"], answer["grid"]["cols"]
    assert client.get("/api/progress", params={"job": "sweep"}).json() == {"done": rows * cols, "total": rows * cols}
    heat = decoded(client.get("/api/occlude.png", params=params))
    shown = fresh.prepare(picture)[1]
    np.testing.assert_array_equal(heat, render.heatmap_overlay(shown, expected.scores, 16, 8))


def test_an_uploaded_picture_is_explained_like_the_same_file(client, served) -> None:
    data = (served["images"] / "triangle.png").read_bytes()
    reference = client.post("/api/upload", content=data).json()["image"]
    assert reference.startswith("upload:")
    for endpoint, extra in (("project", {"node": "conv2", "channel": 1}), ("activations", {"node": "conv1"})):
        uploaded = client.get(f"/api/{endpoint}", params={"image": reference, **extra}).json()
        from_file = client.get(f"/api/{endpoint}", params={"image": "triangle.png", **extra}).json()
        assert untimed(uploaded) == untimed(from_file)
    np.testing.assert_array_equal(
        decoded(client.get("/api/picture.png", params={"image": reference})),
        decoded(client.get("/api/picture.png", params={"image": "triangle.png"})),
    )


def test_images_lists_the_folder_without_links_that_lead_out(client) -> None:
    assert client.get("/api/images").json()["images"] == sorted(
        ["chelsea.png", "circle.png", "nested/stripes.png", "triangle.png", HOSTILE]
    )


def test_galleries_show_the_topk_and_maximize_outputs_under_state(client, served) -> None:
    found = client.get("/api/galleries").json()["galleries"]
    summary = json.loads((served["state"] / "topk_conv1" / "topk.json").read_text())
    assert [g["title"] for g in found] == ["top-k of conv1 (topk_conv1)", "maximisation"]
    assert [p[0] for p in found[0]["pictures"]] == ["topk_conv1/channel_0000.png", "topk_conv1/channel_0003.png"]
    assert summary["channels"]["3"][0]["image"] in found[0]["pictures"][1][1]
    assert found[1]["pictures"] == [["fc2_maximize.png", "fc2_maximize.png"]]
    page = client.get("/").text
    for name in ("topk_conv1/channel_0000.png", "topk_conv1/channel_0003.png", "fc2_maximize.png"):
        assert f'src="/state/{name}"' in page
        assert client.get(f"/state/{name}").content == (served["state"] / name).read_bytes()


def test_the_page_escapes_every_name_and_loads_nothing_from_elsewhere(client) -> None:
    response = client.get("/")
    page = response.text
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;.png" in page
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.count('class="maps"') == sum(len(r["shape"]) == 4 for r in client.get("/api/layers").json()["layers"])


def test_errors_are_json_with_a_message(client) -> None:
    cases = [
        ({"image": "chelsea.png", "node": "conv9"}, 400, "conv9"),
        ({"image": "chelsea.png", "node": "conv1", "rule": "magic"}, 400, "magic"),
        ({"image": "chelsea.png", "node": "conv1", "channel": 999}, 400, "999"),
        ({"image": "chelsea.png", "node": "conv1", "channel": "two"}, 400, "integer"),
        ({"node": "conv1"}, 400, "image"),
        ({"image": "upload:0000", "node": "conv1"}, 404, "upload"),
        ({"image": "missing.png", "node": "conv1"}, 404, "missing.png"),
    ]
    for params, status, needle in cases:
        response = client.get("/api/project", params=params)
        assert response.status_code == status and needle in response.json()["error"], (params, response.text)
    response = client.get("/api/activations", params={"image": "chelsea.png", "node": "fc1"})
    assert response.status_code == 400 and "spatial" in response.json()["error"]
    response = client.get("/api/occlude", params={"image": "chelsea.png", "patch": 100})
    assert response.status_code == 400 and "larger than the model input" in response.json()["error"]


def test_concurrent_clicks_build_each_projector_once(served, monkeypatch) -> None:
    built = []

    class Counting(engines.Projector):
        def __init__(self, *args, **kwargs) -> None:
            built.append(args[1])  # the InverseSpec
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(engines, "Projector", Counting)
    client = TestClient(create_app(Viewer(onnxviz.load(DEMO, device="cpu"), served["images"])))
    answers = {}

    def click(channel: int, rule: str) -> None:
        params = {"image": "circle.png", "node": "conv2", "channel": channel, "rule": rule}
        answers[channel, rule] = client.get("/api/project", params=params).json()

    threads = [threading.Thread(target=click, args=(c, r)) for c in range(6) for r in ("deconvnet", "saliency")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(spec.rule for spec in built) == ["deconvnet", "saliency"]  # one build per (layer, rule)
    assert all(a["channels"] == [c] and a["rule"] == r for (c, r), a in answers.items()) and len(answers) == 12
    for rule in ("deconvnet", "saliency"):  # back to a rule already seen: served from the warm projector
        client.get("/api/project", params={"image": "chelsea.png", "node": "conv2", "channel": 0, "rule": rule})
    assert len(built) == 2
