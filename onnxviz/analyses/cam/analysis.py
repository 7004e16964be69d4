"""``cam``: where in a layer a target's score comes from, for several images at once.

Per layer L the gradient engine runs the forward and the ``saliency`` inverse from the target down
to L only (``GradientKey(source=L)``), which gives A and G = ∂score/∂A for a batch of images in
one forward and one partial inverse; a gradient-free method (eigencam) runs the forward alone, and
one that asks the network again (scorecam, ablationcam) then scores changed copies of each image
through cached sessions: the forward for masked inputs, the graph cut at L for ablated activations
(only the layers after L run again). The method's map M (``methods.METHODS``) is rectified,
normalised and resized as pytorch-grad-cam does, so ``raw()`` equals its output array.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from onnxviz.analyses._common import prepared_images
from onnxviz.analyses.cam.layers import LAYERS_HINT, TO_NCHW, TO_NHWC, CamLayer, default_layer, named_layer
from onnxviz.analyses.cam.methods import METHODS, normalised, weighted
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.options import Options, option
from onnxviz.core.result import Result
from onnxviz.core.types import Image
from onnxviz.errors import UsageError
from onnxviz.passes.base import PassPreconditionError
from onnxviz.render import pictures as render
from onnxviz.runtime.engines import ForwardKey, GradientKey
from onnxviz.runtime.forward import ForwardRunner
from onnxviz.targets.base import ResolvedTarget, Target, seeds
from onnxviz.targets.spelling import SPELLINGS, TargetSpelling, parse_target

TARGET_HELP = f"What to explain: {SPELLINGS} (default: each image's top-1 class)."
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
    batch_size: int = field(
        default=8, metadata=option("Images per forward and inverse run; scorecam, ablationcam: copies per run.", min=1)
    )


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
        """The target in words, named with this model's labels."""
        return target.described(self.labels)

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
            drawn = target.drawn(picture, self.labels, self.heatmaps.shape[1:])
            if drawn is not None:  # what the detector or segmenter saw, beside the map of the explained one
                what = "classes, the mask outlined" if target.kind == "mask" else "detections, the explained outlined"
                tiles.append(render.titled_tile(drawn, size, [Path(image).name, what]))
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
    prepared = prepared_images(model, images)
    x, pictures, shape = prepared.inputs, prepared.pictures, prepared.shape
    target = parse_target(options.target)
    run = _LayerRun(model, target, target.tensor(model.graph), options.method, options.batch_size)
    if options.layer is not None:
        layers = [named_layer(model.graph, name, run.tensor, shape) for name in options.layer]
    else:
        layers = [default_layer(model.graph, run.tensor, shape)]
    # Layer by layer, so each layer's engine is built once and kept warm over the batches.
    maps = {
        layer.name: np.concatenate(
            [
                run.maps(layer, x[start : start + options.batch_size], start)
                for start in range(0, len(x), options.batch_size)
            ]
        ).astype(np.float32)
        for layer in layers
    }
    size = (shape[model.height_axis], shape[model.height_axis + 1])
    heatmaps = normalised(np.maximum(np.mean([normalised(m, size) for m in maps.values()], axis=0), 0))
    names = prepared.names
    layer_names = [layer.name for layer in layers]
    return Cam(options.method, layer_names, names, maps, heatmaps, run.resolved, pictures, model.labels())


@dataclass
class _LayerRun:
    """One method's maps of one target, layer by layer and batch by batch; each image's target is
    resolved on the first forward that reaches it and kept for the other layers."""

    model: LoadedModel
    target: Target
    tensor: str
    method: str
    batch_size: int
    resolved: list[ResolvedTarget] = field(default_factory=list)

    def _resolve(self, value: np.ndarray, start: int) -> list[ResolvedTarget]:
        if len(self.resolved) < start + len(value):
            self.resolved.extend(self.target.resolve(self.model.graph, value[k : k + 1]) for k in range(len(value)))
        return self.resolved[start : start + len(value)]

    def maps(self, layer: CamLayer, batch: np.ndarray, start: int) -> np.ndarray:
        """ReLU(M) at ``layer`` for a batch whose first image is image ``start``."""
        shape = (1, *batch.shape[1:])
        method = METHODS[self.method]
        if method.gradient:
            engine = self.model.engines.gradient(GradientKey(self.tensor, shape, source=layer.tensor))

            def seed_of(value: np.ndarray) -> np.ndarray:
                return seeds(self._resolve(value, start), value.shape, value)

            _, a, g = engine.value_activation_gradient(batch, seed_of)
        else:
            # ablationcam's tail also takes what a skip connection carries around the layer: the
            # same forward run brings it out, one value per image.
            tail = self._tail(layer, shape) if method.feeds_layer else None
            around = tail.side_inputs if tail is not None else []
            forward = self.model.engines.forward(ForwardKey((self.tensor, layer.tensor, *around), shape))
            value, a, *carried = forward.run(batch)
            self._resolve(value, start)
            g = None
        if layer.nhwc:
            a, g = a.transpose(TO_NCHW), None if g is None else g.transpose(TO_NCHW)
        a = a.astype(np.float64)
        if method.rescored is not None:
            rescorers = [
                self._rescorer(
                    layer,
                    batch[k : k + 1],
                    start + k,
                    (forward, tail),
                    {name: values[k : k + 1] for name, values in zip(around, carried, strict=True)},
                )
                for k in range(len(batch))
            ]
            weights = np.stack([method.rescored(a[k], rescorer) for k, rescorer in enumerate(rescorers)])
            return np.maximum(weighted(weights, a), 0)
        return np.maximum(method.map(a, None if g is None else g.astype(np.float64)), 0)

    def _rescorer(
        self,
        layer: CamLayer,
        image: np.ndarray,
        row: int,
        runners: tuple[ForwardRunner, ForwardRunner | None],
        sides: dict[str, np.ndarray],
    ) -> _Rescorer:
        """Image ``row``'s rescorer: ``runners`` the forward its activations came from and the tail
        from the layer on (None where the method does not feed the layer); ``sides`` the tail's
        side inputs for this image."""
        forward, tail = runners
        axis = self.model.height_axis
        return _Rescorer(
            image=image,
            target=self.resolved[row],
            size=(image.shape[axis], image.shape[axis + 1]),
            batch_size=self.batch_size,
            nhwc_input=self.model.layout == "nhwc",
            nhwc_layer=layer.nhwc,
            forward=forward,
            tail=tail,
            sides=sides,
        )

    def _tail(self, layer: CamLayer, shape: tuple[int, ...]) -> ForwardRunner:
        """The network from ``layer`` on (the graph cut there, fed the layer's values and what a
        skip connection carries around it), or why it cannot be cut there."""
        try:
            return self.model.engines.forward(ForwardKey((self.tensor,), shape, start=layer.tensor))
        except PassPreconditionError as error:
            raise UsageError(
                f"{self.method} re-runs the network from the layer '{layer.name}' on, but the target "
                f"'{self.tensor}' cannot be computed from that layer and the tensors computed before it: "
                f"{error.message}",
                "Pick a layer on the path from the input to the target. " + LAYERS_HINT,
            ) from error


@dataclass
class _Rescorer:
    """One image's target scored on masked copies of the image (through the forward session the
    activations came from) or on changed activations of the layer (through the graph cut there)."""

    image: np.ndarray  # (1, *input) in the model's layout
    target: ResolvedTarget
    size: tuple[int, int]
    batch_size: int
    nhwc_input: bool
    nhwc_layer: bool
    forward: ForwardRunner
    tail: ForwardRunner | None  # None: the method does not feed the layer
    sides: dict[str, np.ndarray]  # the tail's side inputs for this image (a skip connection's value)

    @property
    def score(self) -> float:
        return self.target.score

    def masked(self, masks: np.ndarray) -> np.ndarray:
        spread = masks[..., None] if self.nhwc_input else masks[:, None]
        return self._scores(self.forward, (self.image * spread).astype(np.float32))

    def ablated(self, activations: np.ndarray) -> np.ndarray:
        if self.tail is None:
            raise TypeError("this method's rescorer was built without the graph cut at the layer")
        fed = activations.transpose(TO_NHWC) if self.nhwc_layer else activations
        return self._scores(self.tail, np.ascontiguousarray(fed, np.float32), self.sides)

    def _scores(self, runner: ForwardRunner, batch: np.ndarray, sides: dict | None = None) -> np.ndarray:
        """The target's score per copy: one run for the batch, or one per copy where the model
        only runs with batch 1."""
        runs = [batch] if runner.batched else [batch[k : k + 1] for k in range(len(batch))]
        return np.concatenate([self.target.scores(runner.run(run, sides=sides)[0]) for run in runs])
