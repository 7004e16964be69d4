"""Correspondence analysis (Zeiler & Fergus §5.1, Table 1): does a layer treat the same object part
in different images the same way?

A masks file names, per image, rectangles over object parts (``left_eye``, ``nose``, …) in
model-input pixels. For image i and part p, x̃ᵢ is xᵢ with the part's rectangle filled (in
preprocessed space, as occlusion fills), εᵢ = f_L(xᵢ) − f_L(x̃ᵢ) the change it makes at layer L
and sᵢ = sign(εᵢ) ∈ {−1, 0, 1}. Over the unordered pairs i < j of the images that have p,

    Δ_L(p) = mean H(sᵢ, sⱼ) / D,

H counting the positions where the two sign tensors differ and D the layer's element count: a low
Δ means that masking the part changes the layer in the same direction whatever the image, i.e. the
layer relates the part across images. The baseline masks rectangles of the same size at random
positions: for images in file order and their parts in file order, N tops
``rng.integers(0, H − h + 1, N)`` then N lefts ``rng.integers(0, W − w + 1, N)`` with
``rng = numpy.random.default_rng(seed)``; draw d of image i is paired with draw d of image j and
Δ is averaged over the draws. Every masked input (parts and draws of all images) is made by the
perturbation engine and goes through one forward session cut at all the layers, in batches.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from onnxviz.analyses._common import fill_values
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.options import Options, option
from onnxviz.core.progress import Progress
from onnxviz.core.result import Result
from onnxviz.data.preprocess import picture_from_tensor
from onnxviz.errors import OptionError, UsageError
from onnxviz.graph.aliases import Layer
from onnxviz.render import pictures as render
from onnxviz.runtime.batching import batch_size_for, run_in_batches
from onnxviz.runtime.engines import ForwardKey
from onnxviz.runtime.forward import ForwardRunner
from onnxviz.runtime.perturb import Occluder

Rect = tuple[int, int, int, int]  # x, y, w, h in model-input pixels
SCHEMA_HINT = 'The file must hold {"images": {"dog1.jpg": {"left_eye": [x, y, w, h], ...}, ...}}.'
PART_COLOURS = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240)]
THUMBNAIL_COLUMNS = 3


@dataclass(frozen=True)
class MaskSpec:
    """A masks file, read and checked: image (as written) → part → rectangle, in file order."""

    path: Path
    rects: dict[str, dict[str, Rect]]

    def parts(self) -> dict[str, list[str]]:
        """Part → the images that have it, in file order."""
        found: dict[str, list[str]] = {}
        for image, parts in self.rects.items():
            for part in parts:
                found.setdefault(part, []).append(image)
        return found

    def image_path(self, image: str) -> Path:
        return self.path.parent / image


def read_masks(path: str | Path) -> MaskSpec:
    """The masks file: every schema error, missing image and too-rare part is a usage error."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read the masks file {path}: {exc}.", SCHEMA_HINT) from None
    except ValueError as exc:
        raise UsageError(f"The masks file {path} is not valid JSON: {exc}.", SCHEMA_HINT) from None
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, dict) or not images:
        raise UsageError(f'The masks file {path} has no "images" object naming images and their parts.', SCHEMA_HINT)
    rects = {str(image): _parts_of(path, image, parts) for image, parts in images.items()}
    spec = MaskSpec(path, rects)
    for image in rects:
        if not spec.image_path(image).is_file():
            raise UsageError(
                f"The masks file {path} lists '{image}', but {spec.image_path(image)} does not exist.",
                "Image paths are relative to the masks file.",
            )
    for part, having in spec.parts().items():
        if len(having) < 2:
            raise UsageError(
                f"The part '{part}' occurs only in {having[0]}: correspondence compares a part across images.",
                "Mark every part in at least two images (or remove it).",
            )
    return spec


def _parts_of(path: Path, image: str, parts: object) -> dict[str, Rect]:
    if not isinstance(parts, dict) or not parts:
        raise UsageError(f"In {path}, '{image}' must map part names to [x, y, w, h] rectangles.", SCHEMA_HINT)
    rects = {}
    for part, rect in parts.items():
        if not (
            isinstance(rect, list)
            and len(rect) == 4
            and all(isinstance(v, int) and not isinstance(v, bool) for v in rect)
        ):
            raise UsageError(
                f"In {path}, '{image}' part '{part}' is {json.dumps(rect)}: a rectangle is four integers [x, y, w, h].",
                SCHEMA_HINT,
            )
        if rect[2] <= 0 or rect[3] <= 0:
            raise UsageError(
                f"In {path}, '{image}' part '{part}' has an empty rectangle {rect}: width and height must be positive."
            )
        rects[str(part)] = (rect[0], rect[1], rect[2], rect[3])
    return rects


def check_inside(spec: MaskSpec, height: int, width: int) -> None:
    """Every rectangle lies inside the model input (the pixels the rectangles are given in)."""
    for image, parts in spec.rects.items():
        for part, (x, y, w, h) in parts.items():
            if x < 0 or y < 0 or x + w > width or y + h > height:
                raise UsageError(
                    f"'{image}' part '{part}' [x={x}, y={y}, w={w}, h={h}] reaches outside the model input "
                    f"({width}x{height} pixels).",
                    "Rectangles are in model-input pixels, after resizing: keep 0 <= x, x + w <= width, "
                    "0 <= y, y + h <= height.",
                )


def draw_random(spec: MaskSpec, height: int, width: int, draws: int, seed: int) -> dict[str, dict[str, list[Rect]]]:
    """Part → image → ``draws`` rectangles of the part's size at uniform positions (the module's rule)."""
    rng = np.random.default_rng(seed)
    drawn: dict[str, dict[str, list[Rect]]] = {}
    for image, parts in spec.rects.items():
        for part, (_, _, w, h) in parts.items():
            tops = rng.integers(0, height - h + 1, draws)
            lefts = rng.integers(0, width - w + 1, draws)
            drawn.setdefault(part, {})[image] = [(int(x), int(y), w, h) for x, y in zip(lefts, tops, strict=True)]
    return drawn


@dataclass
class Correspondence(Result):
    """Δ per part and layer for the parts and for random rectangles of the same sizes."""

    layers: list[str]
    parts: dict[str, dict[str, float]]
    random: dict[str, dict[str, float]]
    pairs: dict[str, int]
    rectangles: dict[str, dict[str, Rect]]  # image → part → rectangle, as in the masks file
    random_rectangles: dict[str, dict[str, list[Rect]]]  # part → image → the drawn rectangles
    pictures: dict[str, np.ndarray]  # image → the RGB picture at the model-input size
    fill: str = "zero"
    draws: int = 10
    seed: int = 0
    note: str = ""

    def summary(self) -> dict:
        return {"layers": self.layers, "parts": self.parts, "random": self.random, "pairs": self.pairs}

    def figure(self) -> np.ndarray:
        colours = {part: PART_COLOURS[i % len(PART_COLOURS)] for i, part in enumerate(self.parts)}
        table = _table(self, colours)
        thumbnails = [_thumbnail(name, self.pictures[name], rects, colours) for name, rects in self.rectangles.items()]
        panel = render.beside(table, render.grid(thumbnails, min(THUMBNAIL_COLUMNS, len(thumbnails))), gap=18)
        return render.with_header(
            panel,
            f"correspondence: mean sign change Delta per layer (lower: more consistent), part vs random "
            f"({self.draws} draws, seed {self.seed}), fill {self.fill}",
        )


def _table(result: Correspondence, colours: dict[str, tuple[int, int, int]]) -> np.ndarray:
    """Zeiler & Fergus' Table 1: a row per part, per layer the part's Δ beside the random Δ."""
    font, scale, line = render.FONT, 0.5, 26
    first = max(cv2.getTextSize(f"{p} ({pairs_text(n)})", font, scale, 1)[0][0] for p, n in result.pairs.items()) + 30
    cell = max(80, *(cv2.getTextSize(layer, font, scale, 1)[0][0] // 2 + 12 for layer in result.layers))
    width = first + 2 * cell * len(result.layers) + 8
    canvas = np.full((line * (len(result.parts) + 2) + 12, width, 3), render.BACKGROUND, np.uint8)

    def put(text: str, x: int, row: int, colour=render.INK) -> None:
        cv2.putText(canvas, text, (x, line * (row + 1)), font, scale, colour, 1, cv2.LINE_AA)

    put("part", 8, 1)
    for k, layer in enumerate(result.layers):
        left = first + 2 * cell * k
        put(layer, left + cell - cv2.getTextSize(layer, font, scale, 1)[0][0] // 2, 0)
        put("part", left + 8, 1)
        put("random", left + cell + 8, 1)
        cv2.line(canvas, (left, 8), (left, canvas.shape[0] - 8), (190, 190, 190), 1)
    cv2.line(canvas, (4, 2 * line + 8), (width - 4, 2 * line + 8), (190, 190, 190), 1)
    for row, part in enumerate(result.parts, start=2):
        y = line * (row + 1)
        canvas[y - 12 : y, 8:20] = colours[part]
        put(f"{part} ({pairs_text(result.pairs[part])})", 26, row)
        for k, layer in enumerate(result.layers):
            left = first + 2 * cell * k
            put(f"{result.parts[part][layer]:.3f}", left + 8, row)
            put(f"{result.random[part][layer]:.3f}", left + cell + 8, row, (110, 110, 110))
    return canvas


def pairs_text(count: int) -> str:
    return f"{count} pair" if count == 1 else f"{count} pairs"


def _thumbnail(name: str, picture: np.ndarray, rects: dict[str, Rect], colours: dict) -> np.ndarray:
    """The picture, enlarged to a readable size, with each part's rectangle outlined in its colour."""
    size = render.tile_size(*picture.shape[:2])
    factor = size[0] / picture.shape[0]
    shown = cv2.resize(picture, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    for part, (x, y, w, h) in rects.items():
        left, top = round(x * factor), round(y * factor)
        right, bottom = round((x + w) * factor) - 1, round((y + h) * factor) - 1
        for inset in (0, 1):  # two pixels wide, on the rectangle's own border: the box is the masked area
            cv2.rectangle(shown, (left + inset, top + inset), (right - inset, bottom - inset), colours[part], 1)
    return render.titled_tile(shown, size, [name])


@dataclass(frozen=True)
class MaskGroup:
    """The masked inputs of one image and part: its own rectangle first, then the random draws."""

    image: int
    part: str
    rects: list[Rect]


@dataclass(frozen=True)
class CorrespondenceOptions(Options):
    """The layers compared, the random baseline's draws and seed, and what a masked part is filled with."""

    layers: list[str] | None = field(
        default=None,
        metadata=option("Layers: conv5,fc7 or repeated (default: the last conv and the code layer)."),
    )
    random: int = field(
        default=10, metadata=option("Random rectangles per image and part (the baseline; a positive number).", min=1)
    )
    seed: int = field(default=0, metadata=option("Seed of the random rectangles."))
    fill: str | float = field(default="zero", metadata=option("zero | mean | gray | a number (preprocessed space)."))


def correspondence(
    model: LoadedModel, masks: str | Path, options: CorrespondenceOptions, progress: Progress | None = None
) -> Correspondence:
    """Δ per part and layer (and for ``options.random`` draws of random rectangles), per the module's rule."""
    layers, random, seed, fill = options.layers, options.random, options.seed, options.fill
    spec = read_masks(masks)
    chosen = _layers(model, layers)
    tensors = list(dict.fromkeys(layer.tensor for layer in chosen))
    inputs, pictures = _prepare(model, spec)
    shape = tuple(inputs[0].shape)
    height, width = shape[model.height_axis], shape[model.height_axis + 1]
    check_inside(spec, height, width)
    fills = [_fills(fill, x, model) for x in inputs]
    drawn = draw_random(spec, height, width, random, seed)
    names = list(spec.rects)
    groups = [
        MaskGroup(i, part, [rect, *drawn[part][image]])
        for i, image in enumerate(names)
        for part, rect in spec.rects[image].items()
    ]
    runner = model.engines.forward(ForwardKey(tuple(tensors), shape))
    size = batch_size_for(model.graph, model.graph.shapes(shape), None) if runner.batched else 1
    base = _run(runner, np.concatenate(inputs), size)
    signs = _masked_signs(model, runner, inputs, groups, fills, base, size, progress)
    ends = np.cumsum([b.shape[1] for b in base])
    columns = {t: slice(int(end) - b.shape[1], int(end)) for t, b, end in zip(tensors, base, ends, strict=True)}
    per_layer = {layer.alias: signs[:, columns[layer.tensor]] for layer in chosen}
    parts, baseline, pairs = _deltas(spec, groups, per_layer, names)
    return Correspondence(
        layers=[layer.alias for layer in chosen],
        parts=parts,
        random=baseline,
        pairs=pairs,
        rectangles=spec.rects,
        random_rectangles=drawn,
        pictures=pictures,
        fill=str(fill),
        draws=random,
        seed=seed,
        note=runner.note,
    )


def _layers(model: LoadedModel, layers: list[str] | None) -> list[Layer]:
    """The named layers (one entry per distinct alias), or the last conv alias and the code layer."""
    if layers:
        chosen = [model.resolve(name) for name in layers]
    else:
        convs = model.graph.conv_layers()
        chosen = ([convs[-1]] if convs else []) + [model.graph.code_layer()]
    return list({layer.alias: layer for layer in chosen}.values())


def _prepare(model: LoadedModel, spec: MaskSpec) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Every image as an input tensor of one shape, and the picture shown for it."""
    inputs, pictures = [], {}
    for image in spec.rects:
        x, picture, _ = model.prepare(spec.image_path(image))
        if inputs and x.shape != inputs[0].shape:
            raise UsageError(
                f"'{image}' makes an input of shape {list(x.shape)}, but the first image one of "
                f"{list(inputs[0].shape)}: the rectangles need one input size.",
                "Give --size H,W so that every image is resized to it.",
            )
        inputs.append(x)
        pictures[image] = (
            picture if picture is not None else picture_from_tensor(x[0], model.layout, model.preprocessing)
        )
    return inputs, pictures


def _fills(fill: str | float, x: np.ndarray, model: LoadedModel) -> np.ndarray:
    values = fill_values(fill, x, model.layout, model.preprocessing)
    if not np.isfinite(values).all():
        raise OptionError(
            "fill", f"{{option}} must be finite; got '{fill}'.", "Use zero, mean, gray, or a finite number."
        )
    return values


def _run(runner: ForwardRunner, batch: np.ndarray, size: int) -> list[np.ndarray]:
    """The layers' outputs for a host batch, flattened per input, in batches of ``size``."""
    starts = range(0, len(batch), size)
    chunks = [[y.reshape(len(batch[s : s + size]), -1) for y in runner.run(batch[s : s + size])] for s in starts]
    return [np.concatenate(outputs) for outputs in zip(*chunks, strict=True)]


def _masked_signs(
    model: LoadedModel,
    runner: ForwardRunner,
    inputs: list[np.ndarray],
    groups: list[MaskGroup],
    fills: list[np.ndarray],
    base: list[np.ndarray],
    size: int,
    progress: Progress | None,
) -> np.ndarray:
    """sign(f_L(x) − f_L(x̃)) of every masked input, all layers side by side, as int8 (items, ΣD)."""
    items = [(g, j) for g, group in enumerate(groups) for j in range(len(group.rects))]
    # One occluder per rectangle size, held for this call only: a dozen part sizes would otherwise
    # push the forward runner and the other analyses' sessions out of the model's small cache.
    occluders: dict[tuple[int, int], Occluder] = {}
    placed: dict[int, np.ndarray | ort.OrtValue] = {}

    def masked(group: MaskGroup, rects: list[Rect]) -> np.ndarray:
        patch = (rects[0][3], rects[0][2])
        if patch not in occluders:
            occluders[patch] = Occluder(tuple(inputs[0].shape), model.layout, patch, model.device)
        occluder = occluders[patch]
        if group.image not in placed:
            placed[group.image] = occluder.place(inputs[group.image])
        corners = np.asarray([(y, x) for x, y, _, _ in rects], np.int64)
        return occluder.occluded(placed[group.image], corners, fills[group.image]).numpy()

    def evaluate(indices: list[int]) -> np.ndarray:
        pieces = [
            masked(groups[g], [groups[g].rects[items[k][1]] for k in chunk])
            for g, chunk in itertools.groupby(indices, key=lambda k: items[k][0])
        ]
        outputs = runner.run(np.concatenate(pieces), "correspondence graph")
        owners = np.asarray([groups[items[k][0]].image for k in indices])
        return np.concatenate(
            [
                np.sign(b[owners] - o.reshape(len(indices), -1)).astype(np.int8)
                for b, o in zip(base, outputs, strict=True)
            ],
            axis=1,
        )

    return run_in_batches(evaluate, len(items), size, progress)


def _deltas(
    spec: MaskSpec, groups: list[MaskGroup], signs: dict[str, np.ndarray], names: list[str]
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]], dict[str, int]]:
    """(part Δ, random Δ, pair count) per part: mean Hamming fraction over pairs (and draws)."""
    starts = np.cumsum([0, *(len(group.rects) for group in groups)])
    row = {(names[group.image], group.part): int(starts[g]) for g, group in enumerate(groups)}
    draws = range(1, len(groups[0].rects))  # row 0 of a group is the part's own rectangle
    parts, baseline, pairs = {}, {}, {}
    for part, having in spec.parts().items():
        couples = [(row[a, part], row[b, part]) for a, b in itertools.combinations(having, 2)]
        pairs[part] = len(couples)
        parts[part], baseline[part] = {}, {}
        for layer, matrix in signs.items():
            own = [np.mean(matrix[a] != matrix[b]) for a, b in couples]
            drawn = [np.mean(matrix[a + d] != matrix[b + d]) for a, b in couples for d in draws]
            parts[part][layer] = float(np.mean(own))
            baseline[part][layer] = float(np.mean(drawn))
    return parts, baseline, pairs
