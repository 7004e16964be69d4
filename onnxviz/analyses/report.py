"""The report: the layer table, per image the occlusion map, the attribution methods side by side
(``explain``'s figure) and, per layer shown, the strongest channels' projections and the activation
grid, and over all its images the invariance curves to translation, rotation and scaling (the
paper's Fig. 5) and whether the explanations can be trusted (the sanity checks' cascading
randomisation, the deletion and insertion curves of the same methods), gathered as results; the
HTML page is drawn from them by ``onnxviz.render.report``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from onnxviz.analyses.explain.analysis import ExplainOptions, Explanation, explain
from onnxviz.analyses.faithfulness.analysis import METRICS, Faithfulness, FaithfulnessOptions, faithfulness
from onnxviz.analyses.grids import ActivationGrid, GridOptions, activations
from onnxviz.analyses.invariance import InvarianceCurves, InvarianceOptions, invariance
from onnxviz.analyses.layers import LayerTable, layers
from onnxviz.analyses.occlusion import OccludeOptions, OcclusionMap, occlude
from onnxviz.analyses.project import Projection, ProjectOptions, project
from onnxviz.analyses.sanity.analysis import Sanity, SanityOptions, sanity
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.options import Options, option
from onnxviz.core.result import Result
from onnxviz.errors import UsageError
from onnxviz.render.report import page
from onnxviz.runtime.warps import TRANSFORMS
from onnxviz.targets.classes import ClassTarget
from onnxviz.targets.tensors import ChannelTarget


@dataclass
class LayerView:
    alias: str
    projection: Projection
    activations: ActivationGrid


@dataclass
class ImageView:
    name: str
    occlusion: OcclusionMap | None
    occlusion_what: str
    layers: list[LayerView]
    explanation: Explanation | None = None  # a classifier's top-1 by explain's default methods


@dataclass
class Report(Result):
    """Everything the HTML page shows, as results."""

    layers: LayerTable
    device_note: str
    images: list[ImageView]
    invariance: list[InvarianceCurves] = field(default_factory=list)
    sanity: Sanity | None = None  # None: not asked for, or not a classifier with conv layers
    faithfulness: list[Faithfulness] = field(default_factory=list)  # deletion, then insertion

    def html(self) -> str:
        return page(self)

    def summary(self) -> dict:
        return {
            "model": self.layers.model,
            "images": [
                {
                    "image": view.name,
                    "occlusion": view.occlusion.summary() if view.occlusion is not None else None,
                    "explain": view.explanation.summary() if view.explanation is not None else None,
                    "layers": [layer.projection.summary() for layer in view.layers],
                }
                for view in self.images
            ],
            "invariance": {curves.transform: curves.summary() for curves in self.invariance},
            "sanity": self.sanity.summary() if self.sanity is not None else None,
            "faithfulness": {curves.metric: curves.summary() for curves in self.faithfulness},
        }


IMAGENET_SIDE = 224  # the input side the default occlusion patch is sized for
TRUSTED_METHODS = ["gradcam", "guided", "saliency"]  # a cam, a rule signal, the gradient: cheap per step


@dataclass(frozen=True)
class ReportOptions(Options):
    """How much the page shows: the layers, the channels projected per layer, the occlusion patch."""

    top: int = field(default=4, metadata=option("Projected channels per layer.", min=1))
    layers: list[str] | None = field(
        default=None,
        metadata=option("Layers to show: conv2,conv5 or repeated (default: every conv).", renamed=("layers_shown",)),
    )
    occlusion_patch: int | None = field(
        default=None,
        metadata=option("Occlusion patch side (default: a seventh of the input's shorter side).", min=1, cli=False),
    )
    trust: bool = field(
        default=True,
        metadata=option(
            "A classifier's sanity checks and deletion/insertion curves of " + ", ".join(TRUSTED_METHODS) + ".",
            flag="--trust/--no-trust",
        ),
    )


def report(
    model: LoadedModel,
    images: list[str | Path],
    options: ReportOptions,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """The report's results for ``images``; ``progress`` is told what is being computed."""
    top, layers_shown = options.top, options.layers
    if not images:
        raise UsageError("Give at least one image for the report.")
    table = layers(model)
    convs = [la.alias for la in model.graph.layers if la.alias.startswith("conv")]
    shown = [model.resolve(name).alias for name in layers_shown] if layers_shown else convs
    shapes = model.graph.shapes(model.input_shape())
    channels = {alias: shapes[model.resolve(alias).tensor][1] for alias in shown}
    views = []
    for image in map(Path, images):
        if progress is not None:
            progress(str(image))
        occlusion, what = _occlusion(model, image, convs, options.occlusion_patch)
        rows = [
            LayerView(
                alias,
                project(model, image, ProjectOptions(node=alias, top=min(top, channels[alias]))),
                activations(model, image, GridOptions(node=alias)),
            )
            for alias in shown
        ]
        explanation = explain(model, image, ExplainOptions()) if _classifier(model) and convs else None
        views.append(ImageView(image.name, occlusion, what, rows, explanation))
    report = Report(table, model.device.note, views, _invariance(model, images, progress))
    if options.trust and _classifier(model) and convs:
        report.sanity, report.faithfulness = _trust(model, images, progress)
    return report


def _trust(
    model: LoadedModel, images: list[str | Path], progress: Callable[[str], None] | None
) -> tuple[Sanity, list[Faithfulness]]:
    """The sanity checks and both curves of the report's methods (and ``random``) on its images."""
    if progress is not None:
        progress("sanity checks")
    checked = sanity(model, images, SanityOptions(method=TRUSTED_METHODS))
    curves = []
    for metric in METRICS:
        if progress is not None:
            progress(f"{metric} curves")
        curves.append(
            faithfulness(model, images, FaithfulnessOptions(method=[*TRUSTED_METHODS, "random"], metric=metric))
        )
    return checked, curves


def _invariance(
    model: LoadedModel, images: list[str | Path], progress: Callable[[str], None] | None
) -> list[InvarianceCurves]:
    """The curves of all the images for each transform, at the defaults (the first conv layer and
    the code layer); a model without a conv layer has no such defaults, so none."""
    if not model.graph.conv_layers():
        return []
    curves = []
    for transform in TRANSFORMS:
        if progress is not None:
            progress(f"invariance to {transform}")
        curves.append(invariance(model, images, InvarianceOptions(transform=transform)))
    return curves


def _scaled_patch(side: int) -> int:
    """The default patch scaled to the input: its share of an ImageNet input's side (a seventh),
    so a page of small inputs still shows a map of several positions; at least 2 pixels."""
    return max(2, side * OccludeOptions().patch // IMAGENET_SIDE)


def _classifier(model: LoadedModel) -> bool:
    """Whether the model's output is a batch of class scores, so a class is what its pictures explain
    (an output the input does not reach has no shape here, and is not)."""
    shape = model.graph.shapes(model.input_shape()).get(ClassTarget().tensor(model.graph))
    return shape is not None and len(shape) == 2


def _occlusion(model: LoadedModel, image: Path, convs: list[str], patch: int | None) -> tuple[OcclusionMap | None, str]:
    """The class probability for a classifier, else the strongest map of the last conv layer."""
    shape = model.input_shape()
    h_axis = model.height_axis
    patch = patch or _scaled_patch(min(shape[h_axis], shape[h_axis + 1]))
    options = OccludeOptions(patch=patch, stride=max(1, patch // 2), fill="gray")
    if _classifier(model):
        return occlude(model, image, options), "class probability"
    if convs:
        result = occlude(model, image, replace(options, target=ChannelTarget(convs[-1])))
        return result, f"total activation of the strongest {convs[-1]} map"
    return None, ""
