"""The Python API: ``onnxviz.load(path)`` and what a loaded model can do.

A thin facade: each method of ``Model`` calls one analysis (``onnxviz.analyses.<name>``) and
returns its result. The CLI is a thin shell over this; everything it prints or writes comes from
these results. Built graphs and sessions are cached on the model (``runtime/engines.py``), so a
notebook projecting many images or channels of one layer pays for graph building once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from onnxviz.analyses import check as checking
from onnxviz.analyses import compare as comparison
from onnxviz.analyses import correspondence as corresponding
from onnxviz.analyses import embed as embedding
from onnxviz.analyses import evolution as evolving
from onnxviz.analyses import export, grids, layers, maximize, occlusion, topk
from onnxviz.analyses import invariance as curves
from onnxviz.analyses import project as projection
from onnxviz.analyses import report as reporting
from onnxviz.analyses.check import CheckReport, CheckResult
from onnxviz.analyses.layers import LayerInfo, LayerTable
from onnxviz.core.loaded import LRN_MODES, LoadedModel, Source
from onnxviz.core.progress import Progress
from onnxviz.core.types import Image
from onnxviz.data.scanner import Engine
from onnxviz.render.outputs import write_text
from onnxviz.runtime.engines import PROJECTOR_CACHE_SIZE, SESSION_CACHE_SIZE
from onnxviz.targets.spelling import TargetSpelling

__all__ = [
    "LRN_MODES",
    "PROJECTOR_CACHE_SIZE",
    "SESSION_CACHE_SIZE",
    "CheckReport",
    "CheckResult",
    "Engine",
    "LayerInfo",
    "LayerTable",
    "Model",
    "compare",
    "evolution",
    "load",
]


class Model(LoadedModel):
    """A loaded ONNX CNN, ready to explain itself."""

    def layers(self) -> LayerTable:
        """Every alias with node, op, output shape and receptive field; ``summary()``: ``layers --json``."""
        return layers.layers(self)

    def project(
        self,
        image: Image,
        node: str,
        channels: list[int] | None = None,
        top: int | None = None,
        rule: str = "deconvnet",
        lrn: str = "exact",
    ) -> projection.Projection:
        """Project channels of layer ``node`` back to input space.

        ``channels``: explicit channel indices; ``top``: the K channels with the largest
        activation; neither: the single strongest channel.
        """
        return projection.project(self, image, node, channels, top, rule, lrn)

    def occlude(
        self,
        image: Image,
        patch: int = 32,
        stride: int = 16,
        fill: str | float = "zero",
        target: TargetSpelling = None,
        batch_size: int | None = None,
        labels: list[str] | None = None,
        incremental: bool = True,
        progress: Progress | None = None,
    ) -> occlusion.OcclusionMap:
        """Occlusion sensitivity: the score of every patch position (see ``analyses/occlusion.py``).

        ``target``: a class K, ``"NAME[0,i,...]"`` (an element of any tensor), a
        ``targets.tensors.ChannelTarget`` (a feature map's total activation), or None: the top-1.
        ``incremental`` recomputes only the region each patch changes; the scores are the same as
        a full recompute, and it falls back to one where it cannot apply.
        """
        return occlusion.occlude(
            self,
            image,
            patch=patch,
            stride=stride,
            fill=fill,
            target=target,
            batch_size=batch_size,
            labels=labels,
            incremental=incremental,
            progress=progress,
        )

    def correspondence(
        self,
        masks: str | Path,
        layers: list[str] | None = None,
        random: int = 10,
        seed: int = 0,
        fill: str | float = "zero",
        progress: Progress | None = None,
    ) -> corresponding.Correspondence:
        """Zeiler & Fergus' correspondence Δ per part and layer, against random rectangles of the same sizes."""
        return corresponding.correspondence(self, masks, layers, random, seed, fill, progress)

    def activations(self, image: Image, node: str) -> grids.ActivationGrid:
        """Every feature map of layer ``node`` for one image."""
        return grids.activations(self, image, node)

    def filters(self, node: str) -> grids.FilterGrid:
        """The weights of the conv layer ``node`` (``conv1``: the filters that read the image)."""
        return grids.filters(self, node)

    def topk(
        self,
        folder: str | Path,
        node: str,
        channels: list[int] | None = None,
        top_channels: int | None = None,
        k: int = 9,
        state_dir: str | Path | None = None,
        resume: bool = False,
        batch_size: int | None = None,
        project: bool = True,
        progress: Progress | None = None,
        engine: Engine | None = None,
    ) -> topk.TopKResult:
        """The k images that activate each channel of ``node`` most (one entry per image), with deconvnet
        projections from the winning position and the image patches; ``engine``: local (default) or Ray."""
        return topk.topk(
            self, folder, node, channels, top_channels, k, state_dir, resume, batch_size, project, progress, engine
        )

    def invariance(
        self,
        images: list[Image],
        transform: str,
        amounts: list[float] | None = None,
        layers: list[str] | None = None,
        target_class: int | None = None,
        progress: Progress | None = None,
    ) -> curves.InvarianceCurves:
        """Invariance curves (Zeiler & Fergus Fig. 5): per layer the feature distance, and the class
        probability, as ``images`` are translated, rotated or scaled by each amount."""
        return curves.invariance(self, images, transform, amounts, layers, target_class, progress)

    def report(
        self,
        images: list[str | Path],
        out: str | Path,
        top: int = 4,
        layers: list[str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Path:
        """A self-contained HTML page: layer table, occlusion, projections and activations."""
        result = reporting.report(self, images, top=top, layers_shown=layers, progress=progress)
        return write_text(Path(out), result.html())

    def invert(
        self, node: str, out_dir: str | Path, rule: str = "deconvnet", lrn: str = "exact", form: str | None = None
    ) -> tuple[Path, Path]:
        """Write ``forward.onnx`` (switches and chosen tensors as outputs) and ``inverse.onnx``."""
        return export.invert(self, node, out_dir, rule, lrn, form)

    def maximize(self, node: str, channels: list[int] | None = None, top: int | None = None, progress=None, **options):
        """Activation maximisation of channels of ``node`` (options: ``analyses.maximize.analysis.Settings``)."""
        return maximize.maximize(self, node, channels, top, progress, **options)

    def check(self, rule: str = "deconvnet") -> CheckReport:
        """Project the strongest channel of every conv and pool layer from a fixed random input;
        one ``CheckResult`` per layer, ``summary()``: ``check --json``."""
        return checking.check(self, rule)

    def embed(
        self,
        folder: str | Path,
        node: str | None = None,
        method: str = "tsne",
        perplexity: float = 30.0,
        seed: int = 0,
        grid: bool = False,
        progress: Progress | None = None,
        engine: Engine | None = None,
    ) -> embedding.Embedding:
        """t-SNE (or PCA) of the codes at ``node`` (default: the code layer) of the images under ``folder``."""
        return embedding.embed(self, folder, node, method, perplexity, seed, grid, progress=progress, engine=engine)


def load(
    path: str | Path,
    device: str = "auto",
    preset: str | None = None,
    custom_ops: Sequence[str | Path] = (),
    **preprocessing,
) -> Model:
    """Load an ONNX model. ``preset``/``preprocessing`` override the model's own defaults.

    ``custom_ops``: shared libraries of custom onnxruntime ops (e.g. onnxruntime-extensions'),
    registered with every session. ``preprocessing`` keys: scale, mean, std, order ('rgb'|'bgr'),
    layout ('auto'|'nchw'|'nhwc'), size ((H, W)).
    """
    libraries = tuple(str(library) for library in custom_ops)
    return Model.open(Source(str(path), device, preset, libraries, preprocessing))


def compare(model_a: Model | str | Path, model_b: Model | str | Path, images: list[str | Path | np.ndarray], **options):
    """Does ``model_b``, a conversion of ``model_a``, still see what ``model_a`` sees?

    Paths are loaded with the defaults; ``options`` are those of ``onnxviz.analyses.compare``.
    Returns a ``Comparison``: ``ok`` (within tolerance), ``summary()``, ``rows()``.
    """
    first = model_a if isinstance(model_a, Model) else load(model_a)
    second = model_b if isinstance(model_b, Model) else load(model_b)
    return comparison.compare(first, second, images, **options)


def evolution(
    checkpoints: str | Path | Sequence[str | Path],
    images: str | Path,
    node: str,
    loader: Callable[[Path], Model] = load,
    **options,
) -> evolving.EvolutionResult:
    """Feature evolution (Zeiler & Fergus, Fig. 4): each channel's strongest activation over the folder
    ``images`` at every checkpoint (files, or folders of them, in training order), projected and cropped.
    Each checkpoint is loaded by ``loader`` (e.g. ``lambda p: load(p, device="cpu")``: the same options for
    all); ``options`` are those of ``onnxviz.analyses.evolution`` (channels, top_channels, batch_size, progress)."""
    return evolving.evolution(loader, checkpoints, images, node, **options)
