"""``onnxviz embed``: the JSON contract, the codes file, the picture, and one exit 2 per bad request."""

from __future__ import annotations

import json
import shutil
import sys

import cv2
import numpy as np
import pytest

from tests.analyses.test_embed import make_folder
from tests.cli_helpers import run_cli
from tests.helpers import DEMO


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("embed_cli"))


def test_json_lists_every_readable_image_sorted_by_path(capsys, folder) -> None:
    code, out, err = run_cli(capsys, "embed", DEMO, folder, "--method", "pca", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"node", "method", "images"}
    assert data["node"] == "relu4" and data["method"] == "pca"
    names = [entry["image"] for entry in data["images"]]
    assert names == sorted(names) and len(names) == 10 and "broken.png" not in names
    assert all(set(entry) == {"image", "x", "y"} for entry in data["images"])


def test_codes_file_and_picture_are_the_apis(capsys, folder, demo_model, tmp_path) -> None:
    codes, picture = tmp_path / "codes.npy", tmp_path / "map.png"
    args = ("embed", DEMO, folder, "--method", "pca", "--grid", "--codes", codes, "--out", picture, "--json")
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    expected = demo_model.embed(folder, method="pca", grid=True)
    saved = np.load(codes)
    assert saved.dtype == np.float32
    np.testing.assert_array_equal(saved, expected.codes)
    assert [entry["image"] for entry in json.loads(out)["images"]] == expected.images
    drawn = cv2.cvtColor(cv2.imread(str(picture)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(drawn, expected.figure())


def test_tsne_by_default_with_a_seed(capsys, folder) -> None:
    pytest.importorskip("openTSNE")
    runs = [json.loads(run_cli(capsys, "embed", DEMO, folder, "--seed", "4", "--json")[1]) for _ in range(2)]
    assert runs[0]["method"] == "tsne" and runs[0] == runs[1]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--method", "umap"], "Unknown --method 'umap'"),
        (["--perplexity", "0"], "--perplexity"),
        (["--node", "no_such_layer"], "no_such_layer"),
    ],
)
def test_bad_options_exit_2(capsys, folder, args: list[str], needle: str) -> None:
    code, _, err = run_cli(capsys, "embed", DEMO, folder, "--method", "pca", *args)
    assert code == 2 and needle in err


def test_an_empty_folder_exits_2(capsys, tmp_path) -> None:
    code, _, err = run_cli(capsys, "embed", DEMO, tmp_path)
    assert code == 2 and "No pictures" in err


def test_too_few_images_for_tsne_exit_2(capsys, folder, tmp_path) -> None:
    small = tmp_path / "small"
    shutil.copytree(folder / "more", small)  # three pictures
    (small / "broken.png").write_bytes(b"not a png")
    code, _, err = run_cli(capsys, "embed", DEMO, small)
    assert code == 2 and "at least 4 readable images" in err and "1 unreadable" in err


def test_tsne_without_opentsne_names_the_extra(capsys, folder, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "openTSNE", None)
    code, _, err = run_cli(capsys, "embed", DEMO, folder)
    assert code == 1 and "onnxviz[embed]" in err
