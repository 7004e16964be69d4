"""Embed: codes equal a plain onnxruntime session's, PCA equals numpy's SVD, t-SNE keeps
neighbourhoods, every grid cell holds one image, thumbnails land where the points say."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import helper

import onnxviz
from onnxviz.analyses import embed as embedding
from onnxviz.errors import OnnxvizError, UsageError
from tests.helpers import DEMO, session

COLOURS = [(230, 40, 40), (40, 200, 60), (40, 60, 230), (240, 220, 30), (30, 30, 30)]


def make_folder(root: Path) -> Path:
    """Filled shapes on coloured grounds (two sizes, a sub-folder), one .npy input, one broken file."""
    rng = np.random.default_rng(0)
    for i in range(9):
        picture = np.full((80, 96, 3), COLOURS[i % 5], np.uint8)
        centre = (int(rng.integers(25, 70)), int(rng.integers(25, 55)))
        cv2.circle(picture, centre, int(rng.integers(8, 20)), COLOURS[(i + 2) % 5], -1)
        folder = root / "more" if i >= 6 else root
        folder.mkdir(exist_ok=True)
        cv2.imwrite(str(folder / f"shape_{i}.png"), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    np.save(root / "tensor.npy", rng.standard_normal((1, 3, 64, 64)).astype(np.float32))
    (root / "broken.png").write_bytes(b"not a png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("embed"))


def brute_force_codes(model: onnxviz.Model, folder: Path, tensor: str) -> tuple[list[str], np.ndarray]:
    """The original file with ``tensor`` as its only output, run image by image."""
    cut = onnx.load(str(DEMO))
    del cut.graph.output[:]
    cut.graph.output.append(helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    plain = session(cut)
    names, codes = [], []
    for path in sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix()):
        try:
            x = model.prepare(path)[0]
        except onnxviz.ImageError:
            continue
        names.append(path.relative_to(folder).as_posix())
        codes.append(plain.run(None, {"input": x})[0].reshape(-1))
    return names, np.stack(codes)


def last_gemm_input() -> str:
    """The code layer by its definition, read from the file: the input of the last Gemm."""
    return [node for node in onnx.load(str(DEMO)).graph.node if node.op_type == "Gemm"][-1].input[0]


@pytest.mark.parametrize(("node", "tensor"), [(None, None), ("pool2", "/features/pool2/MaxPool_output_0")])
def test_codes_equal_a_plain_session_image_by_image(demo_model, folder, node, tensor) -> None:
    tensor = tensor or last_gemm_input()
    result = embedding.embed(demo_model, folder, embedding.EmbedOptions(node=node, method="pca", batch_size=4))
    names, expected = brute_force_codes(demo_model, folder, tensor)
    assert result.images == names == sorted(names)
    assert result.skipped == ["broken.png"]
    assert result.codes.dtype == np.float32 and result.codes.shape == expected.shape
    np.testing.assert_allclose(result.codes, expected, rtol=1e-5, atol=1e-5)
    assert [entry["image"] for entry in result.summary()["images"]] == names


def test_pca_equals_the_projection_on_numpys_singular_vectors() -> None:
    codes = np.random.default_rng(1).standard_normal((40, 12)).astype(np.float32) * np.arange(1, 13)
    centred = codes.astype(np.float64) - codes.mean(axis=0)
    u, s, _ = np.linalg.svd(centred)
    expected = u[:, :2] * s[:2]
    got = embedding.embed_codes(codes, "pca", 30.0, seed=0)
    for axis in range(2):
        sign = np.sign(got[:, axis] @ expected[:, axis])
        np.testing.assert_allclose(got[:, axis], sign * expected[:, axis], rtol=1e-9, atol=1e-9)


def clustered_codes(count: int, dims: int, seed: int = 0) -> np.ndarray:
    """Five clusters, each a Gaussian on its own 3-D subspace, plus a little noise everywhere."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 5
    centres = rng.normal(0, 1, (5, dims))
    bases = rng.normal(0, 0.5, (5, 3, dims))
    spread = np.einsum("nk,nkd->nd", rng.normal(0, 1, (count, 3)), bases[labels])
    return (centres[labels] + spread + rng.normal(0, 0.05, (count, dims))).astype(np.float32)


def test_tsne_keeps_neighbourhoods_and_is_seeded() -> None:
    pytest.importorskip("openTSNE")
    manifold = pytest.importorskip("sklearn.manifold")
    codes = clustered_codes(150, 80)  # above 50 dimensions: t-SNE runs on 50 principal components
    points = embedding.embed_codes(codes, "tsne", 20.0, seed=3)
    assert points.shape == (150, 2)
    assert manifold.trustworthiness(codes, points, n_neighbors=5) >= 0.9
    np.testing.assert_array_equal(points, embedding.embed_codes(codes, "tsne", 20.0, seed=3))


def test_a_small_folder_lowers_the_perplexity(demo_model, folder) -> None:
    pytest.importorskip("openTSNE")
    result = demo_model.embed(folder, method="tsne", perplexity=30.0)
    assert len(result.images) == 10 and result.perplexity == pytest.approx(3.0)
    assert demo_model.embed(folder, method="tsne", perplexity=2.0).perplexity == 2.0


@pytest.mark.parametrize("count", [1, 7, 16, 37])
@pytest.mark.parametrize("scipy", [True, False])
def test_the_grid_gives_every_image_its_own_cell(monkeypatch, count: int, scipy: bool) -> None:
    if not scipy:
        monkeypatch.setitem(sys.modules, "scipy.optimize", None)  # the import fails: the greedy fallback
    points = np.random.default_rng(count).normal(size=(count, 2))
    cells, how = embedding.snap_to_grid(points)
    side = int(np.ceil(np.sqrt(count)))
    assert how == ("optimal" if scipy else "greedy")
    assert cells.shape == (count, 2) and cells.min() >= 0 and cells.max() < side
    assert len({tuple(cell) for cell in cells}) == count


def test_the_grid_assignment_is_the_cheapest_of_all() -> None:
    pytest.importorskip("scipy")
    points = np.random.default_rng(5).normal(size=(5, 2))
    cells, _ = embedding.snap_to_grid(points)  # 5 images on a 3x3 grid
    rows, columns = np.divmod(np.arange(9), 3)
    centres = np.stack([(columns + 0.5) / 3, (rows + 0.5) / 3], axis=1)
    cost = ((embedding.unit_square(points)[:, None] - centres[None]) ** 2).sum(axis=2)
    cheapest = min(cost[np.arange(5), list(chosen)].sum() for chosen in itertools.permutations(range(9), 5))
    assert cost[np.arange(5), cells[:, 0] * 3 + cells[:, 1]].sum() == pytest.approx(cheapest, abs=1e-12)


def solid(colour: tuple[int, int, int]) -> np.ndarray:
    return np.full((embedding.THUMBNAIL, embedding.THUMBNAIL, 3), colour, np.uint8)


def test_thumbnails_land_at_their_points_and_on_their_cells() -> None:
    red, blue, green = (255, 0, 0), (0, 0, 255), (0, 160, 0)
    points = np.array([[0.0, 0.0], [10.0, 5.0], [10.0, 0.0]])  # top-left, bottom-right, top-right
    codes = np.zeros((3, 4), np.float32)
    result = embedding.Embedding("n", "pca", ["a", "b", "c"], codes, points, [solid(c) for c in (red, blue, green)], [])
    body = result.figure()[28:]  # under the title line
    t = embedding.THUMBNAIL
    assert (body[:t, :t] == red).all() and (body[-t:, -t:] == blue).all() and (body[:t, -t:] == green).all()
    result.cells = np.array([[1, 1], [0, 0], [0, 1]])
    body = result.figure()[28:]  # a 2x2 grid of cells, widened on the right to fit the title
    assert (body[t : 2 * t, t : 2 * t] == red).all() and (body[:t, :t] == blue).all()
    assert (body[:t, t : 2 * t] == green).all() and (body[t : 2 * t, :t] == 255).all()


def test_without_opentsne_tsne_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "openTSNE", None)
    with pytest.raises(OnnxvizError, match=r"onnxviz\[embed\]"):
        embedding.embed_codes(np.zeros((10, 3), np.float32), "tsne", 3.0, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"method": "umap"}, "Unknown method 'umap'"),
        ({"perplexity": 0.5}, "^perplexity must be"),
        ({"perplexity": float("nan")}, "^perplexity must be a finite number"),
        ({"node": "no_such_layer"}, "no_such_layer"),
    ],
)
def test_bad_requests_are_usage_errors(demo_model, folder, kwargs: dict, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        demo_model.embed(folder, **kwargs)
