"""Every analysis in one list: its name, its ``Options``, what it reads and its function.

The facade (``api.Model``), the CLI's commands and the viewer's menu are read from this list when
they are asked for: an analysis with no method or command written for it gets one generated from
its entry, and ``tests/analyses/test_registry.py`` fails when one is missing from any of them.
Adding a method is one module (its ``Options`` and its function) and one line below
(``docs/adding-a-method.md``).

An analysis function is called ``function(model, subject, options[, progress])``: ``subject`` is
what the analysis reads besides the model (``Subject``; ``None``: nothing, and it is left out of
the call), ``progress`` only where the analysis reports it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from onnxviz.analyses import (
    check,
    correspondence,
    embed,
    evolution,
    grids,
    invariance,
    layers,
    occlusion,
    project,
    report,
    topk,
)
from onnxviz.analyses.attribute import analysis as attribute
from onnxviz.analyses.attribute.options import AttributeOptions
from onnxviz.analyses.cam import analysis as cam
from onnxviz.analyses.compare import analysis as compare
from onnxviz.analyses.explain import analysis as explain
from onnxviz.analyses.export import analysis as export
from onnxviz.analyses.export import invert
from onnxviz.analyses.faithfulness import analysis as faithfulness
from onnxviz.analyses.maximize import analysis as maximize
from onnxviz.analyses.maximize.options import MaximizeOptions
from onnxviz.analyses.sanity import analysis as sanity
from onnxviz.core.options import Options
from onnxviz.errors import OptionError


class Subject(Enum):
    """What an analysis reads besides the model: how the facade and the CLI take it."""

    MODEL = "model"  # nothing: the model alone
    IMAGE = "image"
    IMAGES = "images"
    FOLDER = "folder"
    MASKS = "masks"  # a JSON file naming images and their parts' rectangles
    CHECKPOINTS = "checkpoints"  # several models, loaded one after the other
    PAIR = "pair"  # images, read by two models (an original and its conversion): the model is the pair


@dataclass(frozen=True)
class Analysis:
    """One analysis as the facade, the CLI and the viewer see it."""

    name: str
    options: type[Options]
    function: Callable[..., Any]
    subject: Subject
    progress: bool = False
    viewer: bool = False  # in the live viewer's menu, computed on the picture on show (IMAGE or MODEL)

    def run(self, model: Any, subject: Any, options: Options, progress: Callable[..., None] | None = None) -> Any:
        """``function`` called with what it reads (``options`` made by the caller, checked when made)."""
        if not isinstance(options, self.options):
            raise TypeError(f"{self.name} takes {self.options.__name__}, not {type(options).__name__}.")
        given = () if self.subject is Subject.MODEL else (subject,)
        counted = {"progress": progress} if self.progress else {}
        return self.function(model, *given, options, **counted)


ANALYSES: dict[str, Analysis] = {
    a.name: a
    for a in (
        Analysis("layers", layers.LayersOptions, layers.layers, Subject.MODEL, viewer=True),
        Analysis("check", check.CheckOptions, check.check, Subject.MODEL),
        Analysis("invert", invert.InvertOptions, invert.invert, Subject.MODEL),
        Analysis("filters", grids.GridOptions, grids.filters, Subject.MODEL),
        Analysis("maximize", MaximizeOptions, maximize.maximize, Subject.MODEL, progress=True),
        Analysis("project", project.ProjectOptions, project.project, Subject.IMAGE, viewer=True),
        Analysis("occlude", occlusion.OccludeOptions, occlusion.occlude, Subject.IMAGE, progress=True, viewer=True),
        Analysis("activations", grids.GridOptions, grids.activations, Subject.IMAGE, viewer=True),
        Analysis("cam", cam.CamOptions, cam.cam, Subject.IMAGES),
        Analysis("topk", topk.TopKOptions, topk.topk, Subject.FOLDER, progress=True),
        Analysis("report", report.ReportOptions, report.report, Subject.IMAGES, progress=True),
        Analysis("invariance", invariance.InvarianceOptions, invariance.invariance, Subject.IMAGES, progress=True),
        Analysis(
            "correspondence",
            correspondence.CorrespondenceOptions,
            correspondence.correspondence,
            Subject.MASKS,
            progress=True,
        ),
        Analysis("compare", compare.CompareOptions, compare.compare, Subject.PAIR, progress=True),
        Analysis("evolution", evolution.EvolutionOptions, evolution.evolution, Subject.CHECKPOINTS, progress=True),
        Analysis("embed", embed.EmbedOptions, embed.embed, Subject.FOLDER, progress=True),
        Analysis("attribute", AttributeOptions, attribute.attribute, Subject.IMAGES, progress=True),
        Analysis("explain", explain.ExplainOptions, explain.explain, Subject.IMAGE),
        Analysis("export", export.ExportOptions, export.export, Subject.MODEL),
        Analysis("sanity", sanity.SanityOptions, sanity.sanity, Subject.IMAGES, progress=True),
        Analysis(
            "faithfulness", faithfulness.FaithfulnessOptions, faithfulness.faithfulness, Subject.IMAGES, progress=True
        ),
    )
}


Method = TypeVar("Method", bound=Callable[..., Any])


def forwards(name: str) -> Callable[[Method], Method]:
    """Give a facade call (``api.Model``'s methods, ``api``'s functions) the signature it forwards:
    its own leading arguments, then the analysis's options as keywords (``help()``, IDEs and the
    registry test read it)."""
    analysis = ANALYSES[name]

    def decorate(method: Method) -> Method:
        signature = inspect.signature(method)
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        keyword = inspect.Parameter.KEYWORD_ONLY
        extra = [inspect.Parameter("progress", keyword, default=None)] if analysis.progress else []
        extra.append(inspect.Parameter("options", keyword, default=None))
        method.__signature__ = signature.replace(parameters=[*own, *analysis.options.keywords(), *extra])  # type: ignore[attr-defined]
        return method

    return decorate


def run(name: str, model: Any, subject: Any, given: dict[str, Any]) -> Any:
    """Analysis ``name`` on ``model`` and ``subject`` with the options as keywords (or ``options=``)."""
    analysis = ANALYSES[name]
    progress = given.pop("progress", None)
    options = given.pop("options", None)
    if options is None:
        options = analysis.options.of(given)
    elif given:
        raise OptionError(next(iter(given)), "Give {option} inside options=, or leave options= out.")
    return analysis.run(model, subject, options, progress)
