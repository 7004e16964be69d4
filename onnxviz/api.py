"""The Python API: ``onnxviz.load(path)`` and what a loaded model can do.

The CLI is a thin shell over this; everything it prints or writes comes from these objects.
Built graphs and sessions are cached on the model, so a notebook projecting many images or
channels of one layer pays for graph building once; the caches keep only the most recently used
few, so a sweep over every layer holds one layer's sessions at a time.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from onnxviz import occlude as occlusion
from onnxviz import topk as topk_scan
from onnxviz.errors import OnnxvizError, UsageError
from onnxviz.grids import ActivationGrid, FilterGrid, spatial_maps
from onnxviz.incremental import IncrementalOcclusion
from onnxviz.inverse import MODES, build_inverse
from onnxviz.inverse.context import FORMS
from onnxviz.model import Layer, ModelGraph
from onnxviz.outputs import write_bytes, write_text
from onnxviz.preprocess import LAYOUTS, Preprocessing, picture_from_tensor, prepare, read_image
from onnxviz.project import (
    Projection,
    Projector,
    channel_strengths,
    seeded_tensor,
    select_channels,
)
from onnxviz.receptive import receptive_fields
from onnxviz.render import projection_to_rgb
from onnxviz.report import build_report
from onnxviz.rewrite import forward_model
from onnxviz.runtime import Device, choose_device, create_session, run_bound, run_outputs, session_options

LRN_MODES = ("exact", "passthrough")
# Built projectors and sessions kept per model. Each holds onnxruntime sessions with their own
# copy of the weights and their working memory (hundreds of MB for a ResNet-50 at 224), so the
# caches are small LRUs: a notebook going back and forth between a few layers keeps them warm,
# and a sweep over every layer (`check`) holds one at a time.
PROJECTOR_CACHE_SIZE = 2
SESSION_CACHE_SIZE = 4


class LruCache(OrderedDict):
    """A dict that keeps only its ``size`` most recently used entries."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_or_make(self, key, make: Callable):
        if key in self:
            self.move_to_end(key)
            return self[key]
        while len(self) >= self.size:
            self.popitem(last=False)  # dropped before the new entry is built: never size + 1 alive
        value = make()
        self[key] = value
        return value


@dataclass(frozen=True)
class LayerInfo:
    alias: str
    node: str
    op_type: str
    tensor: str
    shape: tuple[int, ...]
    receptive_field: tuple[int, int] | None = None  # (H, W) input pixels one position sees
    jump: tuple[int, int] | None = None  # input pixels between neighbouring positions


@dataclass(frozen=True)
class CheckResult:
    alias: str
    node: str
    op_type: str
    ok: bool
    message: str
    seconds: float


class Model:
    """A loaded ONNX CNN, ready to explain itself."""

    def __init__(self, graph: ModelGraph, device: Device, preprocessing: Preprocessing) -> None:
        self.graph = graph
        self.device = device
        self.preprocessing = preprocessing
        self._projectors = LruCache(PROJECTOR_CACHE_SIZE)
        self._sessions = LruCache(SESSION_CACHE_SIZE)

    # -- inputs ---------------------------------------------------------------------------------

    @property
    def layout(self) -> str:
        return self.graph.layout if self.preprocessing.layout == "auto" else self.preprocessing.layout

    def input_shape(self, image: np.ndarray | None = None) -> tuple[int, ...]:
        """The concrete input shape (batch 1): the model's own, or --size / the image where free."""
        size = self.preprocessing.size
        height, width = size if size else (None, None)
        if image is not None and height is None:
            if image.dtype == np.uint8 and image.ndim >= 2:
                height, width = image.shape[:2]
            elif image.dtype != np.uint8 and image.ndim >= 3:
                h_axis = -3 if self.layout == "nhwc" else -2
                height, width = image.shape[h_axis], image.shape[h_axis + 1]
        shape = self.graph.concrete_input_shape(height, width)
        if size is not None:
            h_axis = 1 if self.layout == "nhwc" else 2
            if (shape[h_axis], shape[h_axis + 1]) != tuple(size):
                raise UsageError(
                    f"--size {size[0]},{size[1]} does not fit the model, whose input is fixed at "
                    f"{shape[h_axis]}x{shape[h_axis + 1]}.",
                    "Leave --size out for models with a fixed input size.",
                )
        return shape

    def prepare(self, image) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...]]:
        if isinstance(image, (str, Path)):
            image = read_image(image)
        image = np.asarray(image)
        shape = self.input_shape(image)
        prepared = prepare(image, shape, self.layout, self.preprocessing)
        if prepared.tensor.shape != shape:
            raise UsageError(
                f"The prepared input has shape {list(prepared.tensor.shape)}, but the model's input "
                f"'{self.graph.input_name}' is {list(shape)}: the {self.layout.upper()} layout does not fit it.",
                f"Use --layout auto (this model reads {self.graph.layout.upper()}).",
            )
        return prepared.tensor, prepared.picture, shape

    # -- layers ---------------------------------------------------------------------------------

    def layers(self) -> list[LayerInfo]:
        shapes = self.graph.shapes(self.input_shape())
        fields = receptive_fields(self.graph, shapes)
        rows = []
        for la in self.graph.layers:
            field = fields.get(la.tensor)
            spatial = field is not None and not field.whole_input
            rows.append(
                LayerInfo(
                    la.alias,
                    la.node,
                    la.op_type,
                    la.tensor,
                    tuple(shapes.get(la.tensor, ())),
                    tuple(int(v) for v in field.size) if spatial else None,
                    tuple(int(v) for v in field.jump) if spatial else None,
                )
            )
        return rows

    def resolve(self, node: str) -> Layer:
        return self.graph.resolve(node)

    # -- projection -----------------------------------------------------------------------------

    def projector(self, tensor: str, rule: str, input_shape: tuple[int, ...], lrn: str = "exact") -> Projector:
        _check_choice("rule", rule, MODES)
        _check_choice("LRN mode", lrn, LRN_MODES)
        return self._projectors.get_or_make(
            (tensor, rule, input_shape, lrn),
            lambda: Projector(self.graph, tensor, input_shape, rule, self.device, lrn),
        )

    def project(
        self,
        image,
        node: str,
        channels: list[int] | None = None,
        top: int | None = None,
        rule: str = "deconvnet",
        lrn: str = "exact",
    ) -> Projection:
        """Project channels of layer ``node`` back to input space.

        ``channels``: explicit channel indices; ``top``: the K channels with the largest
        activation; neither: the single strongest channel.
        """
        started = time.perf_counter()
        x, picture, shape = self.prepare(image)
        layer = self.resolve(node)
        tensor = seeded_tensor(self.graph, layer.tensor)
        projector = self.projector(tensor, rule, shape, lrn)
        prepared = time.perf_counter()
        t0 = time.perf_counter()
        forward = projector.forward(x, self.graph.input_name)
        t1 = time.perf_counter()
        activation = forward[tensor].numpy()
        strengths = channel_strengths(activation)
        chosen = select_channels(strengths, channels, top)
        t2 = time.perf_counter()
        projections = projector.invert(activation, chosen, forward)
        t3 = time.perf_counter()
        return Projection(
            projections=projections,
            channels=chosen,
            activations=strengths[chosen],
            node=layer.alias,
            tensor=tensor,
            rule=rule,
            layout=self.layout,
            input_tensor=x,
            preprocessing=self.preprocessing,
            picture=picture,
            device=self.device.name,
            timings={
                "prepare": prepared - started - projector.build_seconds,
                "build": projector.build_seconds,
                "forward": t1 - t0,
                "inverse": t3 - t2,
                "total": t3 - started,
            },
        )

    # -- occlusion ------------------------------------------------------------------------------

    def labels(self) -> list[str] | None:
        """Class names from the model's metadata (``onnxviz.labels``, a JSON list), if any."""
        text = {p.key: p.value for p in self.graph.model.metadata_props}.get("onnxviz.labels")
        try:
            return [str(v) for v in json.loads(text)] if text else None
        except ValueError:
            return None

    def occlude(
        self,
        image,
        patch: int = 32,
        stride: int = 16,
        fill: str | float = "zero",
        target_class: int | None = None,
        node: str | None = None,
        channel: int | None = None,
        batch_size: int | None = None,
        labels: list[str] | None = None,
        incremental: bool = True,
        progress: occlusion.Progress | None = None,
    ) -> occlusion.OcclusionMap:
        """Occlusion sensitivity: the score of every patch position (see ``occlude.py``).

        ``incremental`` recomputes only the region each patch changes (``incremental.py``); the
        scores are the same as a full recompute, and it falls back to one where it cannot apply.
        """
        started = time.perf_counter()
        x, picture, shape = self.prepare(image)
        h_axis = 1 if self.layout == "nhwc" else 2
        grid = occlusion.make_grid(patch, stride, shape[h_axis], shape[h_axis + 1])
        if node is None and channel is not None:
            raise UsageError("--channel needs --node: the channel of which layer?")
        if node is not None and target_class is not None:
            raise UsageError("Give either --target-class or --node/--channel, not both.")
        layer_tensor = seeded_tensor(self.graph, self.resolve(node).tensor) if node is not None else None
        tensor, kind = occlusion.score_tensor(self.graph, layer_tensor)
        shapes = self.graph.shapes(shape)
        if kind == "channel" and len(shapes[tensor]) < 2:
            raise UsageError(f"'{node}' has no channels to score (shape {list(shapes[tensor])}).")
        session, note = self._forward_session(tensor, shape)
        fills = occlusion.fill_values(fill, x, self.layout, self.preprocessing)
        size = 1 if note else occlusion.batch_size_for(self.graph, shapes, batch_size)

        base = run_outputs(session, {self.graph.input_name: x}, "forward graph")[0]
        if base.ndim < 2 or base.shape[0] != 1:
            raise UsageError(
                f"The score tensor '{tensor}' has shape {list(base.shape)} for one image: it has no batch "
                "and class/channel axes to score.",
                "Score a feature map instead: --node LAYER [--channel C]." if node is None else "Pick another layer.",
            )
        count = base.shape[1]
        if kind == "class":
            probabilities = occlusion.softmax(base.reshape(1, -1))
            target = int(probabilities.argmax()) if target_class is None else target_class
            if not 0 <= target < probabilities.shape[1]:
                last = probabilities.shape[1] - 1
                raise UsageError(f"Class {target} does not exist: the model has classes 0…{last}.")
            baseline = float(probabilities[0, target])
        else:
            maps = base.reshape(1, count, -1).sum(axis=2)
            target = int(base.reshape(1, count, -1).max(axis=2).argmax()) if channel is None else channel
            if not 0 <= target < count:
                raise UsageError(f"Channel {target} does not exist: '{node}' has channels 0…{count - 1}.")
            baseline = float(maps[0, target])
        corners = grid.corners()
        engine = None
        if incremental and not note and self.layout == "nchw":
            engine = IncrementalOcclusion(self.graph, tensor, x, grid.patch, corners, self.device)
            engine = engine if engine.applicable else None

        occluder = None if engine is not None else self._occluder_session(shape, grid.patch)
        image = x if self.device.name == "cpu" else ort.OrtValue.ortvalue_from_numpy(x, self.device.name, 0)

        def evaluate_positions(indices: list[int]) -> np.ndarray:
            if engine is not None:
                return engine.evaluate(fills, grid.patch, indices)
            feeds = {"image": image, "corners": np.asarray([corners[i] for i in indices], np.int64), "fill": fills}
            batch = run_bound(occluder, feeds, self.device, "occluder", frozenset({occlusion.OCCLUDED}))
            (values,) = run_bound(
                session, {self.graph.input_name: batch[occlusion.OCCLUDED]}, self.device, "occlusion graph"
            ).values()
            return values.numpy()

        prepared = time.perf_counter()
        outputs = occlusion.run_occlusion(evaluate_positions, len(corners), size, progress)
        finished = time.perf_counter()
        top_class = top_probability = None
        if kind == "class":
            probabilities = occlusion.softmax(outputs.reshape(len(outputs), -1))
            scores = probabilities[:, target]
            top_class = probabilities.argmax(axis=1).reshape(grid.rows, grid.cols)
            top_probability = probabilities.max(axis=1).reshape(grid.rows, grid.cols).astype(np.float32)
        else:
            scores = outputs.reshape(len(outputs), count, -1)[:, target].sum(axis=1)
        return occlusion.OcclusionMap(
            scores=scores.reshape(grid.rows, grid.cols).astype(np.float32),
            grid=grid,
            kind=kind,
            target=target,
            baseline=baseline,
            top_class=top_class,
            top_probability=top_probability,
            input_tensor=x,
            layout=self.layout,
            preprocessing=self.preprocessing,
            picture=picture,
            labels=labels or self.labels(),
            node=node,
            fill=str(fill),
            device=self.device.name,
            batch_size=size,
            note=note,
            incremental=engine is not None,
            timings={"prepare": prepared - started, "occlusion": finished - prepared, "total": finished - started},
            positions_per_second=len(outputs) / max(finished - prepared, 1e-9),
        )

    def _occluder_session(self, shape: tuple[int, ...], patch: int) -> ort.InferenceSession:
        """The session that makes occluded batches from patch corners (see ``occluder_model``)."""

        def make() -> tuple[ort.InferenceSession, str]:
            model = occlusion.occluder_model(shape, self.layout, patch)
            return create_session(model, self.device, "occluder"), ""

        return self._sessions.get_or_make(("occluder", shape, patch, self.layout), make)[0]

    def _forward_session(self, tensor: str, shape: tuple[int, ...]) -> tuple[ort.InferenceSession, str]:
        """A forward session cut at ``tensor`` with a dynamic batch, or batch 1 with a note."""
        return self._sessions.get_or_make(("forward", tensor, shape), lambda: self._new_forward_session(tensor, shape))

    def _new_forward_session(self, tensor: str, shape: tuple[int, ...]) -> tuple[ort.InferenceSession, str]:
        model = forward_model(self.graph, [tensor], {}, self.graph.shapes(shape))
        session = create_session(model, self.device, "forward graph")
        note = ""
        try:
            (pair,) = session.run(None, {self.graph.input_name: np.zeros((2, *shape[1:]), np.float32)})
            batched = pair.ndim >= 1 and pair.shape[0] == 2
        except Exception:  # any refusal of batch 2 means the same: run one position at a time
            batched = False
        if not batched:  # refused, or ran but mixed the two images (a batch hard-coded in a Reshape)
            note = "the model only runs with batch 1: positions are evaluated one at a time"
        return session, note

    # -- grids --------------------------------------------------------------------------------

    def activations(self, image, node: str) -> ActivationGrid:
        """Every feature map of layer ``node`` for one image."""
        x, _, shape = self.prepare(image)
        layer = self.resolve(node)
        session, _ = self._forward_session(layer.tensor, shape)
        activation = run_outputs(session, {self.graph.input_name: x}, "forward graph")[0]
        return ActivationGrid(spatial_maps(activation, layer.alias), layer.alias, layer.tensor)

    def filters(self, node: str) -> FilterGrid:
        """The weights of the conv layer ``node`` (``conv1``: the filters that read the image)."""
        layer = self.resolve(node)
        conv = self.graph.node_by_name(layer.node)
        weights = self.graph.constants.get(conv.input[1]) if conv.op_type == "Conv" else None
        if weights is None or weights.ndim != 4:
            raise UsageError(
                f"'{node}' is not a conv layer with constant 2-D filters.",
                "Pick a conv alias such as conv1 (see `onnxviz layers MODEL`).",
            )
        return FilterGrid(weights.astype(np.float32), layer.alias, self.preprocessing.order)

    # -- dataset analyses -------------------------------------------------------------------------

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
        progress: topk_scan.Progress | None = None,
    ) -> topk_scan.TopKResult:
        """The k images that activate each channel of ``node`` most (one entry per image),
        with deconvnet projections from the winning position and the matching image patches."""
        folder = Path(folder)
        if k <= 0:
            raise UsageError(f"--k must be positive; got {k}.")
        if channels is not None and top_channels is not None:
            raise UsageError("Give either --channels or --top-channels, not both.")
        if resume and state_dir is None:
            raise UsageError("--resume needs --out: the scan state lives in the output folder.")
        images = topk_scan.list_images(folder)
        if not images:
            raise UsageError(f"No pictures or .npy files under {folder}.")
        layer = self.resolve(node)
        tensor = seeded_tensor(self.graph, layer.tensor)
        shape = self.input_shape()
        shapes = self.graph.shapes(shape)
        if len(shapes[tensor]) != 4:
            raise UsageError(f"'{node}' has no spatial feature maps (shape {list(shapes[tensor])}).")
        count = shapes[tensor][1]
        bad = [c for c in channels or [] if not 0 <= c < count]
        if bad:
            raise UsageError(f"Channel {bad[0]} does not exist: '{node}' has channels 0…{count - 1}.")
        session, note = self._forward_session(tensor, shape)
        size = 1 if note else occlusion.batch_size_for(self.graph, shapes, batch_size)
        state_path = Path(state_dir) / topk_scan.STATE_FILE if state_dir is not None else None
        if resume:
            state = topk_scan.TopK.load_state(state_path, layer.alias, k)
        else:
            scanned = channels if channels is not None else list(range(count))
            state = topk_scan.TopK(layer.alias, scanned, k, {c: [] for c in scanned})
        topk_scan.scan(
            images,
            folder,
            lambda path: self.prepare(path)[0],
            lambda batch: run_outputs(session, {self.graph.input_name: batch}, "forward graph")[0],
            state,
            size,
            state_path,
            progress,
        )
        if channels is None:
            wanted = top_channels if top_channels is not None else min(8, count)
            if not 1 <= wanted <= count:
                raise UsageError(f"--top-channels must be between 1 and {count}; got {wanted}.")
            ranked = sorted(state.channels, key=lambda c: state.entries[c][0].key if state.entries[c] else (math.inf,))
            state.channels = sorted(ranked[:wanted])
            state.entries = {c: state.entries[c] for c in state.channels}
        winners = [self._winners(folder, tensor, c, state.entries[c], shape) for c in state.channels] if project else []
        return topk_scan.TopKResult(state, winners, len(images))

    def _winners(self, folder: Path, tensor: str, channel: int, entries: list, shape: tuple[int, ...]):
        projector = self.projector(tensor, "deconvnet", shape)
        field = receptive_fields(self.graph, self.graph.shapes(shape))[tensor]
        h_axis = 1 if self.layout == "nhwc" else 2
        height, width = shape[h_axis], shape[h_axis + 1]
        projections, patches = [], []
        for entry in entries:
            x, picture, _ = self.prepare(folder / entry.image)
            forward = projector.forward(x, self.graph.input_name)
            activation = forward[tensor].numpy()
            single = np.zeros_like(activation)
            single[0, channel, entry.y, entry.x] = activation[0, channel, entry.y, entry.x]
            projection = projector.invert(single, np.array([channel], np.int64), forward)[0]
            if picture is None:
                picture = picture_from_tensor(x[0], self.layout, self.preprocessing)
            top, left, bottom, right = field.box(entry.y, entry.x, height, width)
            shown = projection_to_rgb(projection, self.layout, self.preprocessing.order)
            projections.append(np.ascontiguousarray(shown[top:bottom, left:right]))
            patches.append(np.ascontiguousarray(picture[top:bottom, left:right]))
        return topk_scan.ChannelWinners(channel, entries, projections, patches)

    def report(
        self,
        images: list[str | Path],
        out: str | Path,
        top: int = 4,
        layers: list[str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Path:
        """A self-contained HTML page: layer table, occlusion, projections and activations."""
        if not images:
            raise UsageError("Give at least one image for the report.")
        return write_text(
            Path(out), build_report(self, [Path(i) for i in images], top=top, layers=layers, progress=progress)
        )

    # -- graph export ---------------------------------------------------------------------------

    def invert(
        self, node: str, out_dir: str | Path, rule: str = "deconvnet", lrn: str = "exact", form: str | None = None
    ) -> tuple[Path, Path]:
        """Write ``forward.onnx`` (switches and chosen tensors as outputs) and ``inverse.onnx``."""
        _check_choice("rule", rule, MODES)
        _check_choice("LRN mode", lrn, LRN_MODES)
        if form is not None:
            _check_choice("form", form, FORMS)
        layer = self.resolve(node)
        tensor = seeded_tensor(self.graph, layer.tensor)
        shape = self.input_shape()
        inverse = build_inverse(self.graph, tensor, shape, rule, form or self.device.form, lrn)
        outputs = [tensor, *(t for t in inverse.forward_tensors if t != tensor)]
        forward = forward_model(self.graph, outputs, inverse.switches, self.graph.shapes(shape))
        out = Path(out_dir)
        for model in (forward, inverse.model):
            onnx.checker.check_model(model)
        return (
            write_bytes(out / "forward.onnx", forward.SerializeToString()),
            write_bytes(out / "inverse.onnx", inverse.model.SerializeToString()),
        )

    # -- smoke test -----------------------------------------------------------------------------

    def check(self, rule: str = "deconvnet") -> list[CheckResult]:
        """Project the strongest channel of every conv and pool layer from a fixed random input."""
        shape = self.input_shape()
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        results = []
        for layer in self.graph.layers:
            if not layer.alias.startswith(("conv", "pool")):
                continue
            started = time.perf_counter()
            try:
                projection = self.project(x, layer.alias, rule=rule)
                finite = bool(np.isfinite(projection.projections).all())
                ok = finite and projection.projections.shape == (1, *shape[1:])
                message = "" if ok else "projection is not finite" if not finite else "wrong projection shape"
            except OnnxvizError as exc:
                ok, message = False, exc.message
            finally:
                # This layer's sessions are not needed again: release them before the next is built,
                # so the sweep's peak memory is one projection's, not the sum over all layers.
                self._projectors.clear()
            results.append(
                CheckResult(layer.alias, layer.node, layer.op_type, ok, message, time.perf_counter() - started)
            )
        return results


def _check_normalisation(prep: Preprocessing) -> None:
    """``(pixel · scale − mean) / std`` per channel: one value for every channel, or one per RGB
    channel; a zero std or scale would make every picture the same (or infinite) input."""
    for name, values in (("--mean", prep.mean), ("--std", prep.std)):
        if len(values) not in (1, 3) or not all(math.isfinite(v) for v in values):
            shown = ",".join(f"{v:g}" for v in values)
            raise UsageError(f"{name} needs 1 or 3 finite numbers (per RGB channel); got '{shown}'.")
    if any(v == 0 for v in prep.std):
        raise UsageError("--std must not be 0: the input is divided by it.")
    if not math.isfinite(prep.scale) or prep.scale == 0:
        raise UsageError(f"--scale must be a non-zero number; got {prep.scale:g}.")


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UsageError(f"Unknown {what} '{value}'.", f"Use one of: {', '.join(allowed)}.")


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
    session_options(libraries)  # a library that does not register is a usage error, said now
    graph = ModelGraph.load(path, libraries)
    metadata = {p.key: p.value for p in graph.model.metadata_props}
    layout = preprocessing.get("layout")
    if layout is not None and layout not in LAYOUTS:
        raise UsageError(f"Unknown layout '{layout}'.", f"Use one of: {', '.join(LAYOUTS)}.")
    prep = Preprocessing.preset(preset or metadata.get("onnxviz.preset", "imagenet"), **preprocessing)
    _check_normalisation(prep)
    return Model(graph, replace(choose_device(device), custom_ops=libraries), replace(prep))


def compare(model_a: Model | str | Path, model_b: Model | str | Path, images: list[str | Path | np.ndarray], **options):
    """Does ``model_b``, a conversion of ``model_a``, still see what ``model_a`` sees?

    Paths are loaded with the defaults; ``options`` are those of ``onnxviz.analyses.compare``.
    Returns a ``Comparison``: ``ok`` (within tolerance), ``summary()``, ``rows()``.
    """
    from onnxviz.analyses.compare import compare as compare_models  # on use: analyses build on Model, not it on them

    first = model_a if isinstance(model_a, Model) else load(model_a)
    second = model_b if isinstance(model_b, Model) else load(model_b)
    return compare_models(first, second, images, **options)
