"""``onnxviz evolution``: the JSON is the API's, the picture has a row per channel and a column per
checkpoint, and every bad input exits 2 with one paragraph."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

import onnxviz
from onnxviz.analyses.evolution import TILE
from tests.cli_helpers import run_cli
from tests.helpers import DEMO, ROOT

CHECKPOINTS = ROOT / "models" / "checkpoints"
FILES = [CHECKPOINTS / f"epoch{i}.onnx" for i in (1, 3, 5)]
PROBES = CHECKPOINTS / "images"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A dozen of the committed probe pictures."""
    root = tmp_path_factory.mktemp("probes")
    for path in sorted(PROBES.glob("*.png"))[:12]:
        shutil.copy(path, root / path.name)
    return root


def test_json_is_the_api_summary(capsys, folder) -> None:
    code, out, err = run_cli(
        capsys, "evolution", *FILES, "--images", folder, "--node", "conv3", "--top-channels", "3", "--json"
    )
    assert code == 0, err
    expected = onnxviz.evolution(
        FILES, images=folder, node="conv3", loader=lambda p: onnxviz.load(p, device="cpu"), top_channels=3
    )
    assert json.loads(out) == json.loads(json.dumps(expected.summary()))
    assert json.loads(out)["checkpoints"] == ["epoch1", "epoch3", "epoch5"]


def test_the_picture_has_a_row_per_channel_and_a_column_per_checkpoint(capsys, folder, tmp_path) -> None:
    picture = tmp_path / "evolution.png"
    code, out, err = run_cli(
        capsys, "evolution", *FILES, "--images", folder, "--node", "conv2", "--channels", "4,1,9,12", "--out", picture
    )
    assert code == 0, err
    assert f"picture: {picture}" in out
    shown = cv2.cvtColor(cv2.imread(str(picture)), cv2.COLOR_BGR2RGB)
    result = onnxviz.evolution(
        FILES, images=folder, node="conv2", loader=lambda p: onnxviz.load(p, device="cpu"), channels=[4, 1, 9, 12]
    )
    tops, lefts = np.zeros((4, 3), int), np.zeros((4, 3), int)
    for r, channel in enumerate([4, 1, 9, 12]):
        for c in range(3):
            tile = result.tile(result.rows[channel][c].projections[0])
            inked = np.argwhere((tile != 255).any(axis=2))  # a crop clipped by the border sits centred on white
            (y0, x0), (y1, x1) = inked.min(axis=0), inked.max(axis=0) + 1
            template = np.ascontiguousarray(tile[y0:y1, x0:x1])
            scores = cv2.matchTemplate(shown, template, cv2.TM_SQDIFF)
            y, x = np.unravel_index(int(scores.argmin()), scores.shape)
            np.testing.assert_array_equal(shown[y : y + y1 - y0, x : x + x1 - x0], template)  # pixel for pixel
            tops[r, c], lefts[r, c] = y - y0, x - x0  # where the cell's tile starts
    assert (tops == tops[:, :1]).all() and (lefts == lefts[:1]).all()  # a grid: rows share tops, columns lefts
    assert (np.diff(tops[:, 0]) > TILE).all() and (np.diff(lefts[0]) > TILE).all()  # channels down, checkpoints across
    row_step, column_step = np.diff(tops[:, 0]), np.diff(lefts[0])
    assert (row_step == row_step[0]).all() and (column_step == column_step[0]).all()
    below_title = tops[0, 0] - 40  # the column labels and the first captions sit above the first tiles
    assert (shown[tops[-1, 0] + TILE :] == 255).all()  # no fifth row
    assert (shown[below_title:, lefts[0, -1] + TILE :] == 255).all()  # no fourth column


@pytest.mark.parametrize(
    ("checkpoints", "images", "node", "needle"),
    [
        (["missing.onnx"], "probes", "conv2", "does not exist"),
        ([FILES[0], DEMO], "probes", "conv2", "not one architecture"),
        (["empty"], "probes", "conv2", "holds no .onnx files"),
        (FILES[:2], "empty", "conv2", "No pictures"),
        (FILES[:2], "probes", "conv9", "conv9"),
    ],
    ids=[
        "missing checkpoint",
        "architecture mismatch",
        "empty checkpoint folder",
        "empty image folder",
        "unknown node",
    ],
)
def test_bad_input_exits_2(capsys, tmp_path, folder, checkpoints, images, node, needle) -> None:
    (tmp_path / "empty").mkdir()
    given = [tmp_path / c if isinstance(c, str) else c for c in checkpoints]
    where = folder if images == "probes" else tmp_path / "empty"
    code, out, err = run_cli(capsys, "evolution", *given, "--images", where, "--node", node, "--json")
    assert code == 2 and needle in err and out == ""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--channels", "1", "--top-channels", "2"], "either"),
        (["--channels", "99"], "Channel 99"),
        (["--top-channels", "0"], "--top-channels"),
    ],
)
def test_bad_channels_exit_2(capsys, folder, args: list[str], needle: str) -> None:
    code, _, err = run_cli(capsys, "evolution", *FILES[:2], "--images", folder, "--node", "conv2", *args)
    assert code == 2 and needle in err
