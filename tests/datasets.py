"""A small dataset for scans (ties, pictures in a sub-folder, unreadable files) and the brute-force
top-k it is checked against: a plain onnxruntime session on the model cut at the layer, one image
at a time."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

import onnxviz
from tests.helpers import FIXTURES, session

VGG = FIXTURES / "vgg_like_torchscript.onnx"
IMAGES = FIXTURES.parents[2] / "models" / "images"


def scan_folder(root: Path) -> Path:
    """Random inputs as .npy (two identical, for ties), two pictures in a sub-folder, a broken file and
    an input of the wrong shape (both unreadable as inputs)."""
    rng = np.random.default_rng(0)
    for i in range(11):
        np.save(root / f"img_{i:02d}.npy", rng.standard_normal((3, 32, 32)).astype(np.float32))
    shutil.copy(root / "img_03.npy", root / "img_03_copy.npy")
    (root / "pictures").mkdir()
    shutil.copy(IMAGES / "circle.png", root / "pictures" / "circle.png")
    shutil.copy(IMAGES / "chelsea.png", root / "pictures" / "chelsea.png")
    (root / "broken.png").write_bytes(b"not a png")
    np.save(root / "wrong_shape.npy", np.zeros((3, 8, 8), np.float32))
    return root


def brute_force(model: onnxviz.Model, folder, node: str, channels: list[int], k: int) -> dict:
    tensor = model.resolve(node).tensor
    cut = onnx.ModelProto()
    cut.CopyFrom(model.graph.model)
    del cut.graph.output[:]
    cut.graph.output.append(helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    plain = session(cut)
    rows = {c: [] for c in channels}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            x = model.prepare(path)[0]
        except onnxviz.ImageError:
            continue
        maps = plain.run(None, {"input": x})[0][0]
        name = path.relative_to(folder).as_posix()
        for c in channels:
            best = int(np.argmax(maps[c]))  # first maximum in row-major order
            y, xx = divmod(best, maps.shape[2])
            rows[c].append((-float(maps[c, y, xx]), name, y, xx))
    return {
        str(c): [{"image": n, "y": y, "x": x, "activation": -a} for a, n, y, x in sorted(rows[c])[:k]] for c in channels
    }
