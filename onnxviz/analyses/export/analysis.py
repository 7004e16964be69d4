"""``export``: an explanation as one portable ONNX model, checked against onnxviz's own result.

The explainer (``builder``) takes the model's inputs (and ``target`` with ``--target input``, a
box or a mask per image with ``--target box`` / ``mask``: ``targets``) and
gives the model's outputs, ``target_score`` and ``attribution``: what ``cam --raw`` or ``attribute
--raw`` writes for the same images. ``--check IMAGE`` runs the written file in a fresh onnxruntime
session, with nothing of onnxviz's cached, beside onnxviz's own result for that image.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from onnxviz.analyses._common import ig_baseline
from onnxviz.analyses.attribute.analysis import attribute
from onnxviz.analyses.attribute.options import AttributeOptions
from onnxviz.analyses.cam.analysis import CamOptions, cam
from onnxviz.analyses.cam.layers import CamLayer, default_layer, named_layer
from onnxviz.analyses.export.builder import ATTRIBUTION_OUTPUT, SCORE_OUTPUT, Recipe, build_explainer
from onnxviz.analyses.export.targets import (
    BEST_CLASS,
    BOX_CLASS_INPUT,
    BOX_INPUT,
    MASK_CLASS_INPUT,
    MASK_INPUT,
    TARGET_INPUT,
    TARGETS,
)
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.options import Options, option
from onnxviz.core.result import Result
from onnxviz.errors import InvalidModelError, UsageError
from onnxviz.render.outputs import write_bytes
from onnxviz.runtime.projector import seeded_tensor
from onnxviz.targets.base import ResolvedTarget

CAMS = ("gradcam", "gradcam++", "xgradcam", "layercam", "hirescam")
ATTRIBUTIONS = ("saliency", "inputxgrad", "ig", "deconvnet", "guided")
EXPORTABLE = CAMS + ATTRIBUTIONS
NOT_EXPORTABLE = {
    "eigencam": "it takes a singular value decomposition per image, which no standard ONNX operator computes",
    "scorecam": "it runs the network again once per channel of the layer on masked copies of the image",
    "ablationcam": "it runs the network again once per channel of the layer with that channel zeroed",
    "smoothgrad": "its noise comes from numpy's seeded generator, which no ONNX runtime reproduces",
    "smoothgrad-sq": "its noise comes from numpy's seeded generator, which no ONNX runtime reproduces",
    "vargrad": "its noise comes from numpy's seeded generator, which no ONNX runtime reproduces",
    "rise": "its thousands of random masks come from numpy's seeded generator, which no ONNX runtime reproduces",
    "guided-gradcam": "it multiplies two explanations with different inverse rules",
}
CHECK_TOLERANCE = 1e-4  # relative: the largest difference over the largest magnitude of onnxviz's own


@dataclass(frozen=True)
class ExportOptions(Options):
    """The method, its layer and target, where the explainer goes, and the image to check it on."""

    method: str = field(metadata=option("One of: " + " | ".join(EXPORTABLE) + "."))
    out: Path = field(metadata=option("The explainer's .onnx file."))
    layer: str | None = field(
        default=None, metadata=option("Cams: the layer (default: the last 4-D layer with more than one position).")
    )
    target: str = field(
        default="top1",
        metadata=option(
            "top1: each image's top-1 class; input: an int64 input 'target' (N,); box (detectors): inputs "
            "'box' (N, 4) x1, y1, x2, y2 and 'box_class' (N,), -1 for the best class; mask (segmenters): "
            "inputs 'mask' (N, h, w) and 'mask_class' (N,).",
            choices=TARGETS,
        ),
    )
    steps: int = field(default=50, metadata=option("ig: Gauss–Legendre steps, run as one batch.", min=1))
    baseline: str | float = field(
        default="zero", metadata=option("ig: zero, a number, or a .npy shaped like the input (preprocessed space).")
    )
    check: Path | None = field(
        default=None,
        metadata=option("An image: run the file in a fresh onnxruntime session beside onnxviz's own result."),
    )


@dataclass
class Checked:
    """The explainer beside onnxviz's own result for one image: the largest relative differences."""

    image: str
    attribution: float
    score: float

    @property
    def ok(self) -> bool:
        return max(self.attribution, self.score) <= CHECK_TOLERANCE


@dataclass
class Explainer(Result):
    """The written explainer: its file, what it computes, its interface and size beside the model's."""

    path: Path
    method: str
    layer: str | None
    target: str
    inputs: list[str]
    outputs: list[str]
    opset: int
    size: int
    model_size: int | None
    checked: Checked | None = None

    def summary(self) -> dict:
        """What ``--json`` prints."""
        checked = None
        if self.checked is not None:
            checked = {
                "image": self.checked.image,
                "attribution_rel": self.checked.attribution,
                "score_rel": self.checked.score,
                "ok": self.checked.ok,
            }
        return {
            "path": str(self.path),
            "method": self.method,
            "layer": self.layer,
            "target": self.target,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "opset": self.opset,
            "bytes": self.size,
            "model_bytes": self.model_size,
            "check": checked,
        }


def export(model: LoadedModel, options: ExportOptions) -> Explainer:
    """Write the explainer of ``options.method`` for ``model`` to ``options.out`` (and check it)."""
    method = _exportable(options.method)
    if not model.graph.output_names:
        raise InvalidModelError(
            "The model declares no graph output, so an explainer has no score to explain.",
            "Export the model with its outputs declared (onnx.checker.check_model finds this).",
        )
    shape = model.input_shape()
    layer = _layer(model, method, options.layer, shape)
    baseline = None
    if method == "ig":
        baseline = ig_baseline(options.baseline, np.zeros(shape, np.float32))
        if np.all(baseline == baseline.flat[0]):  # one number, broadcast: no input-sized constant in the file
            baseline = baseline.reshape(-1)[:1].reshape((1,) * len(shape))
    rule = method if method in ("deconvnet", "guided") else "saliency"
    recipe = Recipe(method, rule, layer, options.target, shape, model.height_axis, options.steps, baseline)
    explainer = build_explainer(model.graph, recipe)
    onnx.checker.check_model(explainer, full_check=True)
    data = explainer.SerializeToString()
    path = write_bytes(Path(options.out), data)  # in place when the command ends (all or nothing)
    source = model.source.path if model.source is not None else None
    result = Explainer(
        path=path,
        method=method,
        layer=None if layer is None else layer.name,
        target=options.target,
        inputs=[i.name for i in explainer.graph.input],
        outputs=[o.name for o in explainer.graph.output],
        opset=next(o.version for o in explainer.opset_import if o.domain in ("", "ai.onnx")),
        size=len(data),
        model_size=Path(source).stat().st_size if source is not None else None,
    )
    if options.check is not None:
        result.checked = check_explainer(model, data, options, result.layer)
    return result


def _exportable(method: str) -> str:
    """``method`` if an explainer can compute it; else why not, and which can."""
    can = "Methods that export: " + ", ".join(EXPORTABLE) + "."
    if method in NOT_EXPORTABLE:
        raise UsageError(f"The method '{method}' cannot be exported: {NOT_EXPORTABLE[method]}.", can)
    if method not in EXPORTABLE:
        raise UsageError(f"Unknown method '{method}'.", can)
    return method


def _layer(model: LoadedModel, method: str, name: str | None, shape: tuple[int, ...]) -> CamLayer | None:
    """The cam's layer (named, or cam's default), checked to lie on the path to the target."""
    target = seeded_tensor(model.graph, model.graph.output_names[0])
    if method not in CAMS:
        if name is not None:
            raise UsageError(
                f"--layer is read by the cam methods; {method} explains the input.",
                "Leave --layer out, or export a cam method (" + ", ".join(CAMS) + ").",
            )
        return None
    if name is None:
        return default_layer(model.graph, target, shape)
    return named_layer(model.graph, name, target, shape)


def check_explainer(model: LoadedModel, data: bytes, options: ExportOptions, layer: str | None) -> Checked:
    """The file's bytes (``data``, exactly what is written) run in a fresh onnxruntime session on
    ``options.check`` beside onnxviz's
    own ``cam``/``attribute`` result for that image (the target fed as onnxviz resolved it: a box
    target on the strongest detection's box, a mask target on the pixels of the class most of
    the image is given)."""
    x, _, _ = model.prepare(options.check)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    target = _own_target(session, model.graph.input_name, x, options.target)
    if options.method in CAMS:
        layers = None if layer is None else [layer]
        own = cam(model, [x], CamOptions(method=options.method, layer=layers, target=target))
    else:
        settings = AttributeOptions(method=options.method, steps=options.steps, baseline=options.baseline)
        own = attribute(model, [x], replace(settings, target=target))
    feeds = {model.graph.input_name: x, **target_feeds(options.target, own.targets)}
    found = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
    scores = np.array([t.score for t in own.targets], np.float32)
    return Checked(
        image=str(options.check),
        attribution=relative_difference(found[ATTRIBUTION_OUTPUT], own.raw()),
        score=relative_difference(found[SCORE_OUTPUT], scores),
    )


def _own_target(session: ort.InferenceSession, input_name: str, x: np.ndarray, kind: str) -> str | None:
    """The spelling of onnxviz's own target that the explainer's target ``kind`` is checked on."""
    if kind == "box":
        return "detection:0"
    if kind != "mask":
        return None
    height, width = next(i.shape[1:] for i in session.get_inputs() if i.name == MASK_INPUT)
    probe = {
        input_name: x,
        MASK_INPUT: np.zeros((1, height, width), np.float32),
        MASK_CLASS_INPUT: np.zeros(1, np.int64),
    }
    (value,) = session.run([session.get_outputs()[0].name], probe)
    return f"mask:predicted:{int(np.bincount(value[0].argmax(axis=0).ravel()).argmax())}"


def target_feeds(kind: str, targets: list[ResolvedTarget]) -> dict[str, np.ndarray]:
    """The explainer's target inputs that select ``targets`` (onnxviz's own, resolved)."""
    if kind == "input":
        return {TARGET_INPUT: np.array([t.class_index for t in targets], np.int64)}
    if kind == "box":
        return {
            BOX_INPUT: np.array([t.box for t in targets], np.float32),
            BOX_CLASS_INPUT: np.full(len(targets), BEST_CLASS, np.int64),
        }
    if kind == "mask":
        return {
            MASK_INPUT: np.stack([t.mask for t in targets]).astype(np.float32),
            MASK_CLASS_INPUT: np.array([t.class_index for t in targets], np.int64),
        }
    return {}


def relative_difference(found: np.ndarray, expected: np.ndarray) -> float:
    """The largest absolute difference over the largest magnitude of ``expected`` (0 where both are 0)."""
    if found.shape != expected.shape:
        return float("inf")
    difference = float(np.abs(found.astype(np.float64) - expected).max(initial=0.0))
    scale = float(np.abs(expected).max(initial=0.0))
    return difference / scale if scale > 0 else difference
