"""``correspondence``: the JSON contract, the picture's layout, and exit 2 for every bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import helper

import onnxviz
from onnxviz.analyses.correspondence import PART_COLOURS
from tests.cli_helpers import run_cli
from tests.helpers import DEMO, ROOT, make_model

IMAGES = ROOT / "models" / "images"
MASKS = {
    "images": {
        "circle.png": {"centre": [24, 24, 16, 16], "corner": [0, 0, 12, 12]},
        "triangle.png": {"centre": [22, 28, 18, 14], "corner": [0, 0, 12, 12]},
        "chelsea.png": {"centre": [20, 30, 16, 16]},
    }
}


def masks_in(folder: Path, masks: object) -> Path:
    """``masks`` written as ``folder/masks.json`` beside copies of the demo images it may name."""
    for name in ("circle.png", "triangle.png", "chelsea.png"):
        shutil.copy(IMAGES / name, folder / name)
    path = folder / "masks.json"
    path.write_text(json.dumps(masks), encoding="utf-8")
    return path


def test_json_is_the_contract_and_equals_the_api(capsys, tmp_path) -> None:
    masks = masks_in(tmp_path, MASKS)
    code, out, err = run_cli(capsys, "correspondence", DEMO, "--masks", masks, "--random", "3", "--seed", "5", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert list(summary) == ["layers", "parts", "random", "pairs"]
    api = onnxviz.load(DEMO, device="cpu").correspondence(masks, random=3, seed=5)
    assert summary == api.summary()
    assert summary["layers"] == ["conv3", "relu4"] and summary["pairs"] == {"centre": 3, "corner": 1}
    assert all(
        set(summary[key][part]) == {"conv3", "relu4"} for key in ("parts", "random") for part in ("centre", "corner")
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*MASKS["images"], "masks.json"])  # no picture


def test_picture_is_the_table_beside_the_marked_images(capsys, tmp_path) -> None:
    masks = masks_in(tmp_path, MASKS)
    png = tmp_path / "out" / "table.png"
    code, out, err = run_cli(capsys, "correspondence", DEMO, "--masks", masks, "--layers", "conv1,conv2", "--out", png)
    assert code == 0, err
    assert f"picture: {png}" in out and "centre (3 pairs): conv1" in out
    shown = cv2.imread(str(png))[..., ::-1]
    api = onnxviz.load(DEMO, device="cpu").correspondence(masks, layers=["conv1", "conv2"])
    assert np.array_equal(shown, api.figure())
    # Each part's rectangles are outlined in its colour on every image that has it, enlarged 3x
    # (64 px inputs are shown at 192 px), right of the table, whose swatch is the one small square.
    for colour, part in zip(PART_COLOURS, ["centre", "corner"], strict=False):
        count, _, stats, _ = cv2.connectedComponentsWithStats(np.all(shown == colour, axis=2).astype(np.uint8))
        boxes = sorted((int(s[2]), int(s[3])) for s in stats[1:])
        having = [rects[part] for rects in MASKS["images"].values() if part in rects]
        assert boxes == sorted([(12, 12)] + [(3 * w, 3 * h) for _, _, w, h in having])
        swatch = min(range(1, count), key=lambda i: stats[i][2])
        assert all(stats[i][0] > stats[swatch][0] + 200 for i in range(1, count) if i != swatch)
    assert not list(png.parent.glob("*.tmp"))


def test_default_picture_name(capsys, tmp_path, monkeypatch) -> None:
    masks = masks_in(tmp_path, MASKS)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "correspondence", DEMO, "--masks", masks, "--random", "1")
    assert code == 0 and "picture: masks_correspondence.png" in out
    assert cv2.imread(str(tmp_path / "masks_correspondence.png")) is not None


def _rects(**changes: object) -> dict:
    """MASKS with parts of some images changed (``circle_png={"centre": …}``), or the image's value replaced."""
    images = {name: dict(parts) for name, parts in MASKS["images"].items()}
    for key, parts in changes.items():
        name = key.replace("_", ".")
        images[name] = {**images.get(name, {}), **parts} if isinstance(parts, dict) else parts
    return {"images": images}


BAD_MASKS = {
    "not JSON": ("{images:", "not valid JSON"),
    "no images object": ({"pictures": {}}, 'no "images" object'),
    "images not an object": ({"images": ["circle.png"]}, 'no "images" object'),
    "parts not an object": (_rects(circle_png=[[0, 0, 4, 4]]), "must map part names"),
    "three numbers": (_rects(circle_png={"centre": [0, 0, 4]}), "four integers"),
    "text coordinates": (_rects(circle_png={"centre": ["0", 0, 4, 4]}), "four integers"),
    "image missing": (_rects(dog_png={"centre": [0, 0, 4, 4]}), "'dog.png', but"),
    "outside the image": (_rects(circle_png={"centre": [56, 0, 16, 16]}), "reaches outside the model input"),
    "negative corner": (_rects(circle_png={"centre": [-1, 0, 16, 16]}), "reaches outside the model input"),
    "empty rectangle": (_rects(circle_png={"centre": [0, 0, 0, 16]}), "empty rectangle"),
    "negative height": (_rects(circle_png={"centre": [8, 8, 4, -3]}), "empty rectangle"),
    "part in one image": (_rects(chelsea_png={"centre": [0, 0, 8, 8], "nose": [1, 1, 4, 4]}), "'nose' occurs only"),
}


@pytest.mark.parametrize("case", list(BAD_MASKS))
def test_bad_masks_file_exits_2(capsys, tmp_path, case: str) -> None:
    content, message = BAD_MASKS[case]
    masks = masks_in(tmp_path, {})
    masks.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    code, out, err = run_cli(capsys, "correspondence", DEMO, "--masks", masks, "--json")
    assert code == 2 and out == ""
    assert message in " ".join(err.split())


def test_missing_masks_file_exits_2(capsys, tmp_path) -> None:
    code, _, err = run_cli(capsys, "correspondence", DEMO, "--masks", tmp_path / "none.json")
    assert code == 2 and "Cannot read the masks file" in " ".join(err.split())


def test_masks_option_is_required(capsys) -> None:
    code, _, err = run_cli(capsys, "correspondence", DEMO)
    assert code == 2 and "--masks" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--layers", "conv9"), "No node, tensor or alias named 'conv9'"),
        (("--fill", "black"), "Unknown --fill 'black'"),
        (("--fill", "nan"), "--fill must be finite"),
        (("--random", "0"), "--random must be a positive number"),
    ],
    ids=["unknown layer", "bad fill", "non-finite fill", "no random draws"],
)
def test_bad_options_exit_2(capsys, tmp_path, args: tuple[str, str], message: str) -> None:
    masks = masks_in(tmp_path, MASKS)
    code, out, err = run_cli(capsys, "correspondence", DEMO, "--masks", masks, *args, "--json")
    assert code == 2 and out == ""
    assert message in " ".join(err.split())


def test_images_of_different_sizes_need_one_input_size(capsys, tmp_path) -> None:
    """A model with a free input size takes each picture's own size, unless --size sets one."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="pool"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1, name="fc"),
    ]
    inits = {"w": rng.standard_normal((4, 3, 3, 3)), "fc": rng.standard_normal((2, 4))}
    model = tmp_path / "free.onnx"
    onnx.save(make_model(nodes, ("N", 3, "H", "W"), "y", {k: v.astype(np.float32) for k, v in inits.items()}), model)
    masks = masks_in(tmp_path, MASKS)
    code, _, err = run_cli(capsys, "correspondence", model, "--masks", masks, "--json")
    assert code == 2 and "makes an input of shape" in " ".join(err.split()) and "--size" in err
    code, out, err = run_cli(capsys, "correspondence", model, "--masks", masks, "--size", "64,64", "--json")
    assert code == 0, err
    assert json.loads(out)["layers"] == ["conv1", "flatten"]


def test_a_listed_file_that_is_no_picture_exits_2(capsys, tmp_path) -> None:
    masks = masks_in(tmp_path, _rects(broken_png={"centre": [0, 0, 8, 8]}))
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    code, out, err = run_cli(capsys, "correspondence", DEMO, "--masks", masks, "--json")
    assert code == 2 and out == "" and "broken.png is not an image OpenCV can read" in " ".join(err.split())


def test_a_folder_given_as_the_masks_file_exits_2(capsys, tmp_path) -> None:
    code, _, err = run_cli(capsys, "correspondence", DEMO, "--masks", tmp_path)
    assert code == 2 and "Cannot read the masks file" in " ".join(err.split())
