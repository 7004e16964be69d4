"""A 2-D map of what a network thinks is similar: t-SNE (or PCA) of the CNN codes of a folder.

cs231n's "t-SNE of CNN codes": every image of a folder goes through the model up to one tensor
(by default the code layer, the input of the last dense layer), its output flattened to a
vector of D numbers. The folder is streamed in batches (``data/images.py``: recursive, sorted,
unreadable files skipped and counted) and only the codes and a small thumbnail per image are
kept. The codes are then laid out in 2-D, seeded:

- ``pca``: the projection on the first two principal axes (SVD of the centred codes; each axis'
  sign fixed so that its largest loading is positive, so a run is reproducible to the bit);
- ``tsne``: openTSNE's t-SNE (PCA initialisation), after PCA to 50 dimensions when D > 50.
  t-SNE uses the 3·P nearest neighbours of each point, so the perplexity P is lowered to
  (N − 1) / 3 where a folder of N images has too few for it (``perplexity`` on the result says
  which was used). openTSNE is the ``embed`` extra: ``pip install "onnxviz[embed]"``
  (``benchmarks/README.md`` says why it and why an extra).

The picture places each thumbnail at its 2-D position; ``grid`` snaps them to a square grid,
one image per cell, by the assignment of images to cells with the least total squared
distance (``scipy.optimize.linear_sum_assignment``, which comes with openTSNE; without
scipy, a greedy assignment: images in path order each take the nearest free cell).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onnxviz.core.loaded import LoadedModel, check_choice
from onnxviz.core.options import Options, option
from onnxviz.core.progress import Progress
from onnxviz.core.result import Result
from onnxviz.data.images import list_images, thumbnail
from onnxviz.data.reducers import Codes
from onnxviz.data.scan import run_scan
from onnxviz.data.scanner import Engine, ScanTask
from onnxviz.errors import OnnxvizError, UsageError
from onnxviz.render import pictures as render
from onnxviz.runtime.batching import batch_size_for

METHODS = ("tsne", "pca")
SHOWN = {"tsne": "t-SNE", "pca": "PCA"}
TSNE_INPUT_DIMS = 50  # t-SNE reads the first 50 principal components, as van der Maaten's tsne.py does
MIN_PERPLEXITY = 1.0  # the perplexity is the effective number of neighbours: fewer than one means nothing
MIN_IMAGES = {"pca": 2, "tsne": 4}  # t-SNE: a perplexity (N − 1) / 3 ≥ MIN_PERPLEXITY
THUMBNAIL = 48  # pixels, the longer side of each image on the map
CANVAS = 2000  # pixels, the largest side of the map


@dataclass
class Embedding(Result):
    """The codes of a folder's images, their 2-D positions, and the thumbnails drawn there."""

    node: str
    method: str
    images: list[str]  # relative paths, sorted; the rows of codes and points
    codes: np.ndarray  # float32 (N, D)
    points: np.ndarray  # float64 (N, 2)
    thumbnails: list[np.ndarray]  # uint8 RGB, longer side THUMBNAIL
    skipped: list[str]
    perplexity: float | None = None  # the one t-SNE used (lowered for small folders), None for PCA
    cells: np.ndarray | None = None  # int (N, 2) grid (row, column) with ``grid``, else None
    assignment: str | None = None  # "optimal" or "greedy" with ``grid``

    def summary(self) -> dict:
        """The contract's JSON: the 2-D positions (not the grid cells), in the codes' order."""
        return {
            "node": self.node,
            "method": self.method,
            "images": [
                {"image": name, "x": float(x), "y": float(y)}
                for name, (x, y) in zip(self.images, self.points, strict=True)
            ],
        }

    def figure(self) -> np.ndarray:
        """Thumbnails at their positions (later paths drawn over earlier ones), or on the grid."""
        body = self._grid_canvas() if self.cells is not None else self._scatter_canvas()
        title = f"{SHOWN[self.method]} of {self.node} codes: {len(self.images)} images"
        if self.perplexity is not None:
            title += f", perplexity {self.perplexity:.3g}"
        return render.with_header(body, title)

    def _scatter_canvas(self) -> np.ndarray:
        side = min(CANVAS, max(8 * THUMBNAIL, 2 * math.ceil(math.sqrt(len(self.images))) * THUMBNAIL))
        canvas = np.full((side, side, 3), render.BACKGROUND, np.uint8)
        for (u, v), picture in zip(unit_square(self.points), self.thumbnails, strict=True):
            h, w = picture.shape[:2]
            top, left = round(v * (side - h)), round(u * (side - w))
            canvas[top : top + h, left : left + w] = picture
        return canvas

    def _grid_canvas(self) -> np.ndarray:
        columns = grid_side(len(self.images))
        cell = min(THUMBNAIL, CANVAS // columns)
        canvas = np.full((columns * cell, columns * cell, 3), render.BACKGROUND, np.uint8)
        for (row, column), picture in zip(self.cells, self.thumbnails, strict=True):
            shown = thumbnail(picture, cell)
            h, w = shown.shape[:2]
            top, left = row * cell + (cell - h) // 2, column * cell + (cell - w) // 2
            canvas[top : top + h, left : left + w] = shown
        return canvas


@dataclass(frozen=True)
class EmbedOptions(Options):
    """The layer whose output is the code, how it is laid out in 2-D, and where the folder is scanned."""

    node: str | None = field(
        default=None,
        metadata=option("Layer whose output is the code (default: the code layer).", aliases=("-n",)),
    )
    method: str = field(default="tsne", metadata=option("tsne | pca.", choices=METHODS))
    perplexity: float = field(
        default=30.0,
        metadata=option(
            "Effective number of neighbours (≥ 1; at most (N−1)/3 for N images; typically 5 to 50).",
            min=MIN_PERPLEXITY,
        ),
    )
    seed: int = field(default=0, metadata=option("Random seed of t-SNE."))
    grid: bool = field(default=False, metadata=option("Snap the thumbnails to a square grid, one per cell."))
    batch_size: int | None = field(default=None, metadata=option("Images per run.", min=1, cli=False))
    engine: Engine | None = field(
        default=None, metadata=option("Where the folder is scanned (default: this process).", cli=False)
    )


def embed(model: LoadedModel, folder: str | Path, options: EmbedOptions, progress: Progress | None = None) -> Embedding:
    """The codes of every image under ``folder`` at ``options.node`` (default: the code layer), in 2-D."""
    node, method, perplexity, seed = options.node, options.method, options.perplexity, options.seed
    batch_size, engine = options.batch_size, options.engine
    if method == "tsne":
        tsne_class()  # before the scan, not after it
    folder = Path(folder)
    images = list_images(folder)
    if not images:
        raise UsageError(f"No pictures or .npy files under {folder}.")
    layer = model.resolve(node) if node is not None else model.graph.code_layer()
    names, codes, thumbnails, skipped = stream_codes(model, folder, images, layer.tensor, batch_size, progress, engine)
    least = MIN_IMAGES[method]
    if len(names) < least:
        raise UsageError(
            f"{SHOWN[method]} needs at least {least} readable images; {folder} has {len(names)} "
            f"({len(skipped)} unreadable, skipped).",
            "Add images to the folder." if method == "pca" else "Add images, or use --method pca.",
        )
    used = min(perplexity, (len(names) - 1) / 3)
    points = embed_codes(codes, method, used, seed)
    result = Embedding(
        layer.alias, method, names, codes, points, thumbnails, skipped, used if method == "tsne" else None
    )
    if options.grid:
        result.cells, result.assignment = snap_to_grid(points)
    return result


def stream_codes(
    model: LoadedModel,
    folder: Path,
    images: list[str],
    tensor: str,
    batch_size: int | None,
    progress: Progress | None,
    engine: Engine | None = None,
) -> tuple[list[str], np.ndarray, list[np.ndarray], list[str]]:
    """(readable names in path order, float32 codes (N, D), thumbnails, unreadable names): a scan of
    shards into ``Codes`` reducers, on ``engine`` (default: this process)."""
    shape = model.input_shape()
    size = batch_size_for(model.graph, model.graph.shapes(shape), batch_size)
    task = ScanTask(folder, tensor, shape, size, Codes, thumbnail_side=THUMBNAIL)
    codes = run_scan(model, task, images, engine or Engine(), model.opener(), progress=progress)
    names, stacked, thumbnails = codes.result()
    return names, stacked, thumbnails, codes.skipped


def embed_codes(codes: np.ndarray, method: str, perplexity: float, seed: int) -> np.ndarray:
    """(N, D) codes → (N, 2) positions: PCA, or t-SNE of the first 50 principal components."""
    check_choice("method", method, METHODS)
    if method == "pca":
        return principal_components(codes, 2)
    reduced = principal_components(codes, TSNE_INPUT_DIMS) if codes.shape[1] > TSNE_INPUT_DIMS else codes
    return tsne(reduced.astype(np.float32), perplexity, seed)


def principal_components(codes: np.ndarray, dims: int) -> np.ndarray:
    """The centred codes projected on their first ``dims`` principal axes (float64, (N, dims)).

    Fewer axes than ``dims`` exist when N or D is smaller; the missing columns are zeros, so a
    2-D layout of two images, or of one-number codes, is still (N, 2).
    """
    centred = codes.astype(np.float64) - codes.mean(axis=0, dtype=np.float64)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    axes = axes[:dims]
    largest = axes[np.arange(len(axes)), np.argmax(np.abs(axes), axis=1)]
    axes = axes * np.where(largest < 0, -1.0, 1.0)[:, None]
    projected = centred @ axes.T
    return np.pad(projected, ((0, 0), (0, dims - projected.shape[1])))


def tsne_class() -> type:
    """openTSNE's ``TSNE``, or an error naming the extra that brings it."""
    try:
        from openTSNE import TSNE
    except ImportError:
        raise OnnxvizError(
            "t-SNE needs openTSNE, which is not installed.",
            'Install the extra: pip install "onnxviz[embed]" (or use --method pca).',
        ) from None
    return TSNE


def tsne(x: np.ndarray, perplexity: float, seed: int) -> np.ndarray:
    """openTSNE's t-SNE to 2-D (PCA initialisation, its default schedule), seeded, on one thread:
    on a busy machine more threads were 2-5x slower (``benchmarks/README.md``)."""
    embedding = tsne_class()(2, perplexity=perplexity, initialization="pca", random_state=seed, n_jobs=1).fit(x)
    return np.asarray(embedding, dtype=np.float64)


def unit_square(points: np.ndarray) -> np.ndarray:
    """Each axis scaled to [0, 1] (a constant axis to its middle), as cs231n lays out the map."""
    low, high = points.min(axis=0), points.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    return np.where(high > low, (points - low) / span, 0.5)


def grid_side(count: int) -> int:
    return max(1, math.ceil(math.sqrt(count)))


def snap_to_grid(points: np.ndarray) -> tuple[np.ndarray, str]:
    """One distinct cell (row, column) of a ⌈√N⌉² grid per point, nearest overall; and how."""
    side = grid_side(len(points))
    rows, columns = np.divmod(np.arange(side * side), side)
    centres = np.stack([(columns + 0.5) / side, (rows + 0.5) / side], axis=1)
    cost = ((unit_square(points)[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        chosen, how = greedy_assignment(cost), "greedy"
    else:
        chosen, how = linear_sum_assignment(cost)[1], "optimal"
    return np.stack([rows[chosen], columns[chosen]], axis=1), how


def greedy_assignment(cost: np.ndarray) -> np.ndarray:
    """Rows in order, each taking its cheapest column still free (cost: (N, M), N ≤ M)."""
    taken = np.zeros(cost.shape[1], bool)
    chosen = np.empty(cost.shape[0], np.int64)
    for row in range(cost.shape[0]):
        column = int(np.argmin(np.where(taken, np.inf, cost[row])))
        chosen[row], taken[column] = column, True
    return chosen
