"""``cam``: where in a layer a target's score comes from, for several images at once.

Per layer L the gradient engine runs the forward and the ``saliency`` inverse from the target down
to L only (``GradientKey(source=L)``), which gives A and G = ∂score/∂A for a batch of images in
one forward and one partial inverse; a gradient-free method (eigencam) runs the forward alone.
The method's map M (``methods.METHODS``) is rectified, normalised and resized as pytorch-grad-cam
does, so ``raw()`` equals its output array.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from onnxviz.analyses.cam.layers import TO_NCHW, CamLayer, default_layer, named_layer
from onnxviz.analyses.cam.methods import METHODS, normalised
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.options import Options, option
from onnxviz.core.result import Result
from onnxviz.core.types import Image
from onnxviz.data.preprocess import picture_from_tensor
from onnxviz.errors import UsageError
from onnxviz.render import pictures as render
from onnxviz.runtime.engines import ForwardKey, GradientKey
from onnxviz.targets.base import ResolvedTarget, Target, seeds
from onnxviz.targets.spelling import TargetSpelling, parse_target

TARGET_HELP = "What to explain: class K, or NAME[0,i,...] an element of any tensor (default: each image's top-1 class)."
LAYER_HELP = (
    "Layer(s): conv5,pool4 or repeated; maps of several layers are averaged "
    "(default: the last 4-D layer with more than one position before the target)."
)
OVERLAY_WEIGHT = 0.5


@dataclass(frozen=True)
class CamOptions(Options):
    """The method, the layers it reads, the target it explains and how many images run at once."""

    method: str = field(default="gradcam", metadata=option(" | ".join(METHODS) + ".", choices=tuple(METHODS)))
    layer: list[str] | None = field(default=None, metadata=option(LAYER_HELP))
    target: TargetSpelling = field(default=None, metadata=option(TARGET_HELP))
    batch_size: int = field(default=8, metadata=option("Images per forward and inverse run.", min=1))


@dataclass
class Cam(Result):
    """``maps``: ReLU(M) per layer, float32 (N, h, w); ``heatmaps``: float32 (N, H, W) in [0, 1] at
    the input size, pytorch-grad-cam's output; ``targets``: each image's resolved target."""

    method: str
    layers: list[str]
    images: list[str]
    maps: dict[str, np.ndarray]
    heatmaps: np.ndarray
    targets: list[ResolvedTarget]
    pictures: list[np.ndarray] = field(repr=False)
    labels: list[str] | None = None

    def raw(self) -> np.ndarray:
        """What ``--raw`` writes: the heatmaps (N, H, W)."""
        return self.heatmaps

    def peaks(self) -> list[tuple[int, int]]:
        """Each heatmap's strongest position (y, x) in input pixels, the first in row-major order."""
        return [tuple(int(i) for i in np.unravel_index(h.argmax(), h.shape)) for h in self.heatmaps]

    def described(self, target: ResolvedTarget) -> str:
        """The target in words: the class's name, or the tensor element."""
        if target.class_index is not None:
            names = self.labels or []
            return names[target.class_index] if target.class_index < len(names) else f"class {target.class_index}"
        return f"{target.layer or target.tensor}[{','.join(map(str, target.index))}]"

    def figure(self) -> np.ndarray:
        """Each image with its map over it (jet, half weight), titled with the target and its score."""
        size = render.tile_size(*self.heatmaps.shape[1:])
        tiles = []
        for image, picture, heatmap, target in zip(
            self.images, self.pictures, self.heatmaps, self.targets, strict=True
        ):
            resized = cv2.resize(heatmap, (picture.shape[1], picture.shape[0]))
            jet = cv2.applyColorMap((np.clip(resized, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
            overlay = cv2.addWeighted(
                picture, 1 - OVERLAY_WEIGHT, cv2.cvtColor(jet, cv2.COLOR_BGR2RGB), OVERLAY_WEIGHT, 0
            )
            lines = [Path(image).name, f"{self.described(target)}: {target.score:.3g}"]
            tiles.append(render.titled_tile(overlay, size, lines))
        return render.with_header(render.grid(tiles, min(len(tiles), 4)), f"{self.method} at {', '.join(self.layers)}")

    def summary(self) -> dict:
        """What ``--json`` prints: the method, the layers, and per image its target and peak."""
        images = {
            image: {"target": target.summary(), "peak": list(peak)}
            for image, target, peak in zip(self.images, self.targets, self.peaks(), strict=True)
        }
        return {"method": self.method, "layers": self.layers, "images": images}


def cam(model: LoadedModel, images: Sequence[Image] | Image, options: CamOptions) -> Cam:
    """The class activation map of ``options.method`` at ``options.layer`` for each image's target."""
    given = [images] if isinstance(images, (str, Path)) else list(images)
    if not given:
        raise UsageError("cam needs at least one image.", "Give one or more pictures or .npy inputs.")
    prepared = [model.prepare(image) for image in given]
    target = parse_target(options.target)
    tensor = target.tensor(model.graph)
    shape = prepared[0][2]
    if any(other != shape for _, _, other in prepared):
        raise UsageError(
            "The images give the model inputs of different sizes, and cam runs them as batches of one size.",
            "Give --size H,W (size= in Python) so that every image is resized to it.",
        )
    if options.layer is not None:
        layers = [named_layer(model.graph, name, tensor, shape) for name in options.layer]
    else:
        layers = [default_layer(model.graph, tensor, shape)]
    x = np.concatenate([prepared_tensor for prepared_tensor, _, _ in prepared])
    resolved: list[ResolvedTarget] = []
    maps = {}
    for start in range(0, len(x), options.batch_size):
        batch = x[start : start + options.batch_size]
        for layer in layers:
            m = _layer_maps(model, layer, tensor, target, batch, options.method, resolved, start)
            maps.setdefault(layer.name, []).append(m)
    maps = {name: np.concatenate(parts).astype(np.float32) for name, parts in maps.items()}
    size = (shape[model.height_axis], shape[model.height_axis + 1])
    per_layer = [normalised(m, size) for m in maps.values()]
    heatmaps = normalised(np.maximum(np.mean(per_layer, axis=0), 0))
    pictures = [
        picture if picture is not None else picture_from_tensor(t[0], model.layout, model.preprocessing)
        for t, picture, _ in prepared
    ]
    names = [str(image) if isinstance(image, (str, Path)) else f"image {k}" for k, image in enumerate(given)]
    return Cam(
        options.method, [layer.name for layer in layers], names, maps, heatmaps, resolved, pictures, model.labels()
    )


def _layer_maps(
    model: LoadedModel,
    layer: CamLayer,
    tensor: str,
    target: Target,
    batch: np.ndarray,
    method: str,
    resolved: list[ResolvedTarget],
    start: int,
) -> np.ndarray:
    """ReLU(M) at ``layer`` for a batch whose first image is image ``start``; the targets of the
    batch are resolved on its first layer's forward and appended to ``resolved``."""
    shape = (1, *batch.shape[1:])

    def resolve(value: np.ndarray) -> list[ResolvedTarget]:
        if len(resolved) < start + len(value):
            resolved.extend(target.resolve(model.graph, value[k : k + 1]) for k in range(len(value)))
        return resolved[start : start + len(value)]

    if METHODS[method].gradient:
        engine = model.engines.gradient(GradientKey(tensor, shape, source=layer.tensor))
        _, a, g = engine.value_activation_gradient(batch, lambda value: seeds(resolve(value), value.shape))
    else:
        value, a = model.engines.forward(ForwardKey((tensor, layer.tensor), shape)).run(batch)
        resolve(value)
        g = None
    if layer.nhwc:
        a, g = a.transpose(TO_NCHW), None if g is None else g.transpose(TO_NCHW)
    return np.maximum(METHODS[method].map(a.astype(np.float64), None if g is None else g.astype(np.float64)), 0)
