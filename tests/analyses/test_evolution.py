"""Feature evolution: at every checkpoint the winners equal a brute-force scan of that file with a
plain onnxruntime session; checkpoints sort naturally; the crops are the receptive fields."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import helper

import onnxviz
from onnxviz.analyses.evolution import EvolutionResult, natural_key
from onnxviz.render.pictures import projection_to_rgb
from tests.helpers import DEMO, ROOT, session

CHECKPOINTS = ROOT / "models" / "checkpoints"
FILES = sorted(CHECKPOINTS.glob("epoch*.onnx"), key=lambda p: int(p.stem[len("epoch") :]))
PROBES = CHECKPOINTS / "images"
CONV2 = "/features/relu2/Relu_output_0"  # conv2's rectified output in every checkpoint
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def load_cpu(path: Path) -> onnxviz.Model:
    return onnxviz.load(path, device="cpu")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """The committed probe pictures, one of them twice (a tie broken by path), a .npy input, a broken file."""
    root = tmp_path_factory.mktemp("probes")
    shutil.copytree(PROBES, root / "pictures")
    first = sorted((root / "pictures").glob("*.png"))[0]
    shutil.copy(first, root / "pictures" / f"{first.stem}_again.png")
    np.save(root / "tensor.npy", np.random.default_rng(0).standard_normal((3, 64, 64)).astype(np.float32))
    (root / "broken.png").write_bytes(b"not a png")
    return root


def plain_input(path: Path) -> np.ndarray | None:
    """The imagenet preset by hand (the probes are 64x64 already: no resize), None for unreadable files."""
    if path.suffix == ".npy":
        return np.load(path)[None]
    bgr = cv2.imread(str(path))
    if bgr is None:
        return None
    rgb = bgr[:, :, ::-1].astype(np.float32) / 255.0
    return ((rgb - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32)


def brute_force(checkpoint: Path, folder: Path, tensor: str) -> dict[int, tuple[float, str, int, int]]:
    """Per channel, the strongest (activation, image, y, x) over every image: the checkpoint's
    tensor as an extra graph output, numpy's argmax (first maximum), ties by path."""
    model = onnx.load(str(checkpoint))
    model.graph.output.append(helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    plain = session(model)
    best: dict[int, tuple[float, str, int, int]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        x = plain_input(path)
        if x is None:
            continue
        maps = plain.run([tensor], {"input": x})[0][0]
        name = path.relative_to(folder).as_posix()
        for c in range(maps.shape[0]):
            y, xx = divmod(int(np.argmax(maps[c])), maps.shape[2])
            candidate = (-float(maps[c, y, xx]), name, y, xx)
            best[c] = min(best.get(c, candidate), candidate)
    return best


@pytest.fixture(scope="module")
def result(folder) -> EvolutionResult:
    return onnxviz.evolution(CHECKPOINTS, images=folder, node="conv2", loader=load_cpu, top_channels=5)


def test_the_committed_checkpoints_are_in_place() -> None:
    assert [p.stem for p in FILES] == [f"epoch{i}" for i in range(1, len(FILES) + 1)] and len(FILES) >= 5
    assert len(list(PROBES.glob("*.png"))) >= 16


def test_winners_equal_a_brute_force_scan_at_every_checkpoint(result, folder) -> None:
    assert result.checkpoints == [p.stem for p in FILES]
    expected = [brute_force(path, folder, CONV2) for path in FILES]
    last = expected[-1]
    ranked = sorted(last, key=lambda c: last[c])
    assert result.channels == sorted(ranked[:5])  # the five strongest at the last checkpoint
    for channel in result.channels:
        for cell, scan in zip(result.rows[channel], expected, strict=True):
            entry = cell.entries[0]
            activation, image, y, x = scan[channel]
            assert (entry.image, entry.y, entry.x) == (image, y, x)
            assert entry.activation == pytest.approx(-activation, rel=1e-5)
    assert result.skipped == ["broken.png"] and result.images == len(list(folder.rglob("*.*")))


def test_ties_go_to_the_first_path(folder) -> None:
    first = sorted((folder / "pictures").glob("*.png"))[0]
    only = folder.parent / "tie"
    (only / "a").mkdir(parents=True, exist_ok=True)
    shutil.copy(first, only / "a" / "x.png")
    shutil.copy(first, only / "a" / "w.png")
    tied = onnxviz.evolution(FILES[-2:], images=only, node="conv1", loader=load_cpu, channels=[0, 3])
    assert {cell.entries[0].image for row in tied.rows.values() for cell in row} == {"a/w.png"}


def test_a_folder_of_checkpoints_sorts_naturally(tmp_path, folder) -> None:
    for name, source in (("epoch10", FILES[2]), ("epoch2", FILES[1]), ("epoch1", FILES[0])):
        shutil.copy(source, tmp_path / f"{name}.onnx")
    got = onnxviz.evolution(tmp_path, images=folder, node="conv3", loader=load_cpu, channels=[1, 6])
    assert got.checkpoints == ["epoch1", "epoch2", "epoch10"]
    tensor = "/features/relu3/Relu_output_0"
    for cell, source in zip(got.rows[6], FILES[:3], strict=True):  # each column comes from its own file
        assert cell.entries[0].activation == pytest.approx(-brute_force(source, folder, tensor)[6][0], rel=1e-5)
    assert sorted(["epoch10", "epoch2", "Epoch1b", "epoch1"], key=natural_key) == [
        "epoch1",
        "Epoch1b",
        "epoch2",
        "epoch10",
    ]


def test_the_summary_follows_the_contract(result) -> None:
    summary = result.summary()
    assert list(summary) == ["node", "checkpoints", "channels"]
    assert summary["node"] == "conv2" and summary["checkpoints"] == [p.stem for p in FILES]
    assert list(summary["channels"]) == [str(c) for c in result.channels]
    for channel, cells in summary["channels"].items():
        assert [cell["checkpoint"] for cell in cells] == summary["checkpoints"]
        for cell, winner in zip(cells, result.rows[int(channel)], strict=True):
            assert set(cell) == {"checkpoint", "image", "y", "x", "activation"}
            assert (cell["image"], cell["y"], cell["x"]) == (
                winner.entries[0].image,
                winner.entries[0].y,
                winner.entries[0].x,
            )
            assert isinstance(cell["y"], int) and isinstance(cell["activation"], float)


def test_each_crop_is_the_receptive_field_of_its_position(result, folder) -> None:
    """conv2 after conv3x3(pad 1) → pool 2x2 → conv3x3(pad 1): an 8-pixel field, jump 2, whose
    position (y, x) starts at 2y − 3, 2x − 3 (clipped to the 64x64 input)."""
    assert result.field == (8, 8)
    for channel in result.channels[:2]:
        for cell, path in zip(result.rows[channel], FILES, strict=True):
            entry = cell.entries[0]
            top, left = max(0, 2 * entry.y - 3), max(0, 2 * entry.x - 3)
            bottom, right = min(64, 2 * entry.y + 5), min(64, 2 * entry.x + 5)
            model = load_cpu(path)
            x = model.prepare(folder / entry.image)[0]
            full = model.projector(CONV2, "deconvnet", (1, 3, 64, 64)).project_position(
                x, "input", channel, entry.y, entry.x
            )
            outside = np.ones(full.shape[1:], bool)
            outside[top:bottom, left:right] = False
            assert np.abs(full[:, outside]).max() == 0  # nothing of the projection is cut away
            shown = projection_to_rgb(full, "nchw", "rgb")
            np.testing.assert_array_equal(cell.projections[0], shown[top:bottom, left:right])


def test_each_checkpoint_is_freed_before_the_next(folder) -> None:
    loaded: list[onnxviz.Model] = []
    held_at_load: list[bool] = []  # did an earlier checkpoint still hold sessions when the next was loaded?
    ran: list[int] = []

    def watch(path: Path) -> onnxviz.Model:
        held_at_load.append(any(m.engines.projectors or m.engines.sessions for m in loaded))
        model = load_cpu(path)
        forward, index = model.engines.forward, len(loaded)
        model.engines.forward = lambda key: ran.append(index) or forward(key)
        loaded.append(model)
        return model

    onnxviz.evolution(FILES[:3], images=folder, node="conv1", loader=watch, channels=[2])
    assert len(loaded) == 6 and sorted(set(ran)) == [3, 4, 5]  # three checked, then three scanned
    assert not any(held_at_load)
    assert not any(m.engines.projectors or m.engines.sessions for m in loaded)


def test_checkpoints_of_another_architecture_are_refused(folder) -> None:
    with pytest.raises(onnxviz.UsageError, match="not one architecture"):
        onnxviz.evolution([FILES[0], DEMO], images=folder, node="conv2", loader=load_cpu)
