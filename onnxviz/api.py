"""The Python API: ``onnxviz.load(path)`` and what a loaded model can do.

A thin facade: each method of ``Model`` runs one analysis of the registry
(``onnxviz.analyses.registry``) and returns its result. Everything after the image (or folder,
images, masks) is keyword-only: the fields of that analysis's ``Options``, old names accepted,
checked when the options are made, or ``options=`` an ``Options`` made beforehand. The CLI is a
thin shell over this. Built graphs and sessions are cached on the model (``runtime/engines.py``),
so a notebook projecting many images or channels of one layer pays for graph building once. An
analysis registered with no method written here has one ``generated`` from its entry.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from onnxviz.analyses import embed as embedding
from onnxviz.analyses import evolution as evolving
from onnxviz.analyses import grids, occlusion, topk
from onnxviz.analyses import invariance as curves
from onnxviz.analyses import project as projection
from onnxviz.analyses.check import CheckReport, CheckResult
from onnxviz.analyses.compare.measures import Comparison
from onnxviz.analyses.correspondence import Correspondence
from onnxviz.analyses.layers import LayerInfo, LayerTable
from onnxviz.analyses.maximize.analysis import Maximization
from onnxviz.analyses.registry import ANALYSES, Subject, forwards, run
from onnxviz.core.loaded import LRN_MODES, LoadedModel, Source
from onnxviz.core.types import Image
from onnxviz.data.scanner import Engine
from onnxviz.render.outputs import write_text
from onnxviz.runtime.engines import PROJECTOR_CACHE_SIZE, SESSION_CACHE_SIZE

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


def generated(name: str) -> Callable[..., Any]:
    """The facade call of registered analysis ``name`` made from its entry, for an analysis with
    none written here: a ``Model`` method ``(self[, SUBJECT], **options)``, or for several models a
    function (``(checkpoints, *, loader, **options)``; a pair: ``(model_a, model_b, images, **options)``,
    paths loaded with the defaults); its signature is ``forwards``'s."""
    analysis = ANALYSES[name]
    if analysis.subject is Subject.CHECKPOINTS:

        def call(checkpoints: Any, /, *, loader: Callable[[Path], Model] = load, **options: Any) -> Any:
            return run(name, loader, checkpoints, options)

    elif analysis.subject is Subject.PAIR:

        def call(model_a: Any, model_b: Any, images: Any, /, **options: Any) -> Any:
            return run(name, (_loaded(model_a), _loaded(model_b)), images, options)

    elif analysis.subject is Subject.MODEL:

        def call(self: Model, /, **options: Any) -> Any:
            return run(name, self, None, options)

    else:

        def call(self: Model, subject: Any, /, **options: Any) -> Any:
            return run(name, self, subject, options)

    own = inspect.signature(call).parameters.values()
    named = [p.replace(name=analysis.subject.value) if p.name == "subject" else p for p in own]
    returns = inspect.signature(analysis.function).return_annotation
    call.__signature__ = inspect.Signature(named, return_annotation=returns)  # type: ignore[attr-defined]
    call.__name__, call.__qualname__, call.__doc__ = name, name, inspect.getdoc(analysis.function)
    return forwards(name)(call)


SEVERAL_MODELS = (Subject.CHECKPOINTS, Subject.PAIR)  # analyses that are ``api`` functions, not ``Model`` methods


def __getattr__(name: str) -> Callable[..., Any]:
    """A registered analysis of several models without a function written here, generated."""
    if name not in ANALYSES or ANALYSES[name].subject not in SEVERAL_MODELS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return generated(name)


class Model(LoadedModel):
    """A loaded ONNX CNN, ready to explain itself."""

    def __getattr__(self, name: str) -> Any:
        """A registered analysis without a method written here, as a method generated from its entry."""
        if name not in ANALYSES or ANALYSES[name].subject in SEVERAL_MODELS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return types.MethodType(generated(name), self)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *(n for n, a in ANALYSES.items() if a.subject not in SEVERAL_MODELS)})

    @forwards("layers")
    def layers(self) -> LayerTable:
        """Every alias with node, op, output shape and receptive field; ``summary()``: ``layers --json``."""
        return run("layers", self, None, {})

    @forwards("project")
    def project(self, image: Image, **options: Any) -> projection.Projection:
        """Project channels of layer ``node`` back to input space: ``channels`` by index, ``top`` the K
        strongest, neither the single strongest."""
        return run("project", self, image, options)

    @forwards("occlude")
    def occlude(self, image: Image, **options: Any) -> occlusion.OcclusionMap:
        """Occlusion sensitivity: the score of every patch position (see ``analyses/occlusion.py``).

        ``target``: a class K, ``"NAME[0,i,...]"`` (an element of any tensor), a
        ``targets.tensors.ChannelTarget`` (a feature map's total activation), or None: the top-1.
        ``incremental`` recomputes only the region each patch changes; the scores are the same as
        a full recompute, and it falls back to one where it cannot apply.
        """
        return run("occlude", self, image, options)

    @forwards("correspondence")
    def correspondence(self, masks: str | Path, **options: Any) -> Correspondence:
        """Zeiler & Fergus' correspondence Δ per part and layer, against random rectangles of the same sizes."""
        return run("correspondence", self, masks, options)

    @forwards("activations")
    def activations(self, image: Image, **options: Any) -> grids.ActivationGrid:
        """Every feature map of layer ``node`` for one image."""
        return run("activations", self, image, options)

    @forwards("filters")
    def filters(self, **options: Any) -> grids.FilterGrid:
        """The weights of the conv layer ``node`` (``conv1``: the filters that read the image)."""
        return run("filters", self, None, options)

    @forwards("topk")
    def topk(self, folder: str | Path, **options: Any) -> topk.TopKResult:
        """The k images that activate each channel of ``node`` most (one entry per image), with deconvnet
        projections from the winning position and the image patches; ``engine``: local (default) or Ray."""
        return run("topk", self, folder, options)

    @forwards("invariance")
    def invariance(self, images: list[Image], **options: Any) -> curves.InvarianceCurves:
        """Invariance curves (Zeiler & Fergus Fig. 5): per layer the feature distance, and the class
        probability, as ``images`` are translated, rotated or scaled by each amount."""
        return run("invariance", self, images, options)

    @forwards("report")
    def report(self, images: list[str | Path], *, out: str | Path, **options: Any) -> Path:
        """A self-contained HTML page: layer table, occlusion, projections and activations, written to ``out``."""
        return write_text(Path(out), run("report", self, images, options).html())

    @forwards("invert")
    def invert(self, **options: Any) -> tuple[Path, Path]:
        """Write ``forward.onnx`` (switches and chosen tensors as outputs) and ``inverse.onnx`` into ``out_dir``."""
        return run("invert", self, None, options)

    @forwards("maximize")
    def maximize(self, **options: Any) -> Maximization:
        """Activation maximisation of channels of ``node``: gradient ascent on the input (see
        ``analyses/maximize/analysis.py``); ``progress(step, steps, objective)`` after each step."""
        return run("maximize", self, None, options)

    @forwards("check")
    def check(self, **options: Any) -> CheckReport:
        """Project the strongest channel of every conv and pool layer from a fixed random input;
        one ``CheckResult`` per layer, ``summary()``: ``check --json``."""
        return run("check", self, None, options)

    @forwards("embed")
    def embed(self, folder: str | Path, **options: Any) -> embedding.Embedding:
        """t-SNE (or PCA) of the codes at ``node`` (default: the code layer) of the images under ``folder``."""
        return run("embed", self, folder, options)


def load(
    path: str | Path,
    device: str = "auto",
    preset: str | None = None,
    custom_ops: Sequence[str | Path] = (),
    boxes: str | None = None,
    scores: str | None = None,
    **preprocessing,
) -> Model:
    """Load an ONNX model. ``preset``/``preprocessing`` override the model's own defaults.

    ``custom_ops``: shared libraries of custom onnxruntime ops (e.g. onnxruntime-extensions'),
    registered with every session. ``preprocessing`` keys: scale, mean, std, order ('rgb'|'bgr'),
    layout ('auto'|'nchw'|'nhwc'), size ((H, W)). ``boxes``/``scores``: a detector's pre-NMS tensors
    (x1, y1, x2, y2), joined as one output the box and detection targets read.
    """
    libraries = tuple(str(library) for library in custom_ops)
    return Model.open(Source(str(path), device, preset, libraries, preprocessing, boxes, scores))


def _loaded(model: Model | str | Path) -> Model:
    """A model as given, or a path loaded with the defaults (the analyses of several models take either)."""
    return model if isinstance(model, Model) else load(model)


@forwards("compare")
def compare(
    model_a: Model | str | Path, model_b: Model | str | Path, images: Sequence[Image], **options: Any
) -> Comparison:
    """Does ``model_b``, a conversion of ``model_a``, still see what ``model_a`` sees?

    Paths are loaded with the defaults; ``options`` are those of ``analyses.compare.CompareOptions``.
    Returns a ``Comparison``: ``ok`` (within tolerance), ``summary()``, ``rows()``.
    """
    return run("compare", (_loaded(model_a), _loaded(model_b)), images, options)


@forwards("evolution")
def evolution(
    checkpoints: str | Path | Sequence[str | Path], *, loader: Callable[[Path], Model] = load, **options: Any
) -> evolving.EvolutionResult:
    """Feature evolution (Zeiler & Fergus, Fig. 4): each channel's strongest activation over the folder
    ``images`` at every checkpoint (files, or folders of them, in training order), projected and cropped.
    Each checkpoint is loaded by ``loader`` (e.g. ``lambda p: load(p, device="cpu")``: the same options
    for all)."""
    return run("evolution", loader, checkpoints, options)
