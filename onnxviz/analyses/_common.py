"""Helpers several analyses share: the options they have in common, softmax, fill values, channel
checks, layout moves.

They live here, below every analysis, so that no analysis imports another analysis's helpers, and
an option that several analyses take (``node``, ``channels``, ``top``, ``rule``, ``lrn``) is
declared once: each ``Options`` dataclass takes its field from the function below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onnxviz.core.loaded import LRN_MODES, LoadedModel
from onnxviz.core.options import option
from onnxviz.core.types import Image
from onnxviz.data.preprocess import Preprocessing, picture_from_tensor, prepare
from onnxviz.errors import OptionError, UsageError
from onnxviz.inverse import MODES

NODE_HELP = "Node name, tensor name, alias (conv5, pool2, fc1) or unique substring."
RULE_HELP = "deconvnet | guided | saliency."
LRN_HELP = "exact | passthrough (the paper's approximation)."


def node_field(help_text: str = NODE_HELP, **default: Any) -> Any:
    """The layer an analysis reads (``--node``/``-n``); required unless a ``default`` is given."""
    return field(**default, metadata=option(help_text, aliases=("-n",)))


def channels_field(help_text: str = "Channel(s): 3,7 or repeated.") -> Any:
    """Channels by index: ``--channel 3,7`` or repeated (``-c``, and ``--channels`` as an old spelling)."""
    return field(default=None, metadata=option(help_text, min=0, flag="--channel", aliases=("-c", "--channels")))


def top_field(help_text: str, old_spelling: bool = False) -> Any:
    """The K strongest channels (``--top``); ``old_spelling``: ``--top-channels``/``top_channels`` kept."""
    renamed = {"aliases": ("--top-channels",), "renamed": ("top_channels",)} if old_spelling else {}
    return field(default=None, metadata=option(help_text, min=1, **renamed))


def rule_field() -> Any:
    """The inverse's rule: deconvnet (default), guided or saliency."""
    return field(default="deconvnet", metadata=option(RULE_HELP, choices=MODES))


def lrn_field() -> Any:
    """How LRN is inverted: exactly, or passed through (the paper's approximation)."""
    return field(default="exact", metadata=option(LRN_HELP, choices=LRN_MODES))


NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)


def checked_channels(channels: list[int] | None, top: int | None, count: int, owner: str) -> list[int] | None:
    """``channels`` if given and every one exists in a layer of ``count`` (``owner``: how the
    message names the layer); refuses both ``channels`` and ``top`` at once."""
    if channels is not None and top is not None:
        raise OptionError("top", "Give either {channels} or {option}, not both.")
    if channels is None:
        return None
    if not channels:
        raise OptionError("channels", "The {option} list is empty.")
    bad = [c for c in channels if not 0 <= c < count]
    if bad:
        raise OptionError("channels", f"Channel {bad[0]} does not exist: {owner} has channels 0…{count - 1}.")
    return list(channels)


def fill_values(fill: str | float, x: np.ndarray, layout: str, prep: Preprocessing) -> np.ndarray:
    """Per-channel fill in preprocessed-input space: zero, the image's mean, mid-grey, or a number."""
    channel_axis = 3 if layout == "nhwc" else 1
    channels = x.shape[channel_axis]
    if isinstance(fill, (int, float)) or _is_number(fill):
        return np.full(channels, float(fill), np.float32)
    if fill == "zero":
        return np.zeros(channels, np.float32)
    if fill == "mean":
        axes = tuple(a for a in range(x.ndim) if a != channel_axis)
        return x.mean(axis=axes).astype(np.float32)
    if fill == "gray":
        grey = np.full(channels, 128.0 * prep.scale, np.float32)
        mean, std = np.asarray(prep.mean, np.float32)[:channels], np.asarray(prep.std, np.float32)[:channels]
        if mean.size not in (1, channels):  # more channels than colours (or a --layout naming the wrong axis)
            mean, std = mean.mean(keepdims=True), std.mean(keepdims=True)
        return (grey - mean) / std
    raise OptionError("fill", f"Unknown {{option}} '{fill}'.", "Use zero, mean, gray, or a number.")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities along the last axis, in the logits' dtype (shifted by the maximum: no overflow)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def move_layout(tensor: np.ndarray, source: str, target: str, dtype: type | None = None) -> np.ndarray:
    """A batch of input tensors moved from layout ``source`` to ``target`` (``nchw`` or ``nhwc``),
    contiguous, in ``dtype`` if given: one copy at most."""
    if source != target:
        tensor = tensor.transpose(NCHW_TO_NHWC if target == "nhwc" else NHWC_TO_NCHW)
    return np.ascontiguousarray(tensor, dtype)


@dataclass
class PreparedImages:
    """Several images as one analysis runs them: ``names`` as given (a path as written, an array as
    ``image K``: the keys of the JSON), the inputs (N, *input) at one size, the pictures to show."""

    names: list[str]
    inputs: np.ndarray
    pictures: list[np.ndarray]
    shape: tuple[int, ...]  # one input's shape, batch 1


def prepared_images(model: LoadedModel, images: Sequence[Image] | Image) -> PreparedImages:
    """``images`` (one, or several) prepared at the first one's input size (the model's own where it
    is fixed), so that all of them run in the same batches; each image once, since the results are
    keyed by it."""
    given = [images] if isinstance(images, (str, Path, np.ndarray)) else list(images)
    if not given:
        raise UsageError("Give at least one image.", "Give one or more pictures or .npy inputs.")
    names = [str(image) if isinstance(image, (str, Path)) else f"image{k}" for k, image in enumerate(given)]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"The image {repeated[0]} is given more than once.", "Give each image once.")
    first, picture, shape = model.prepare(given[0])
    rest = [prepare(image, shape, model.layout, model.preprocessing) for image in given[1:]]
    tensors = [first, *(p.tensor for p in rest)]
    pictures = [
        shown if shown is not None else picture_from_tensor(x[0], model.layout, model.preprocessing)
        for shown, x in zip([picture, *(p.picture for p in rest)], tensors, strict=True)
    ]
    return PreparedImages(names, np.concatenate(tensors).astype(np.float32), pictures, shape)


def ig_baseline(baseline: str | float, x: np.ndarray) -> np.ndarray:
    """ig's x₀ for every image: zero, one number everywhere, or a .npy shaped like one input."""
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return np.full_like(x, float(baseline))
    text = str(baseline).strip()
    if text == "zero":
        return np.zeros_like(x)
    try:
        return np.full_like(x, float(text))
    except ValueError:
        pass
    path = Path(text)
    if path.suffix != ".npy" or not path.is_file():
        raise OptionError("baseline", f"{{option}} '{text}' is not zero, a number or an existing .npy file.")
    value = np.load(path).astype(np.float32)
    if value.shape not in (x.shape[1:], (1, *x.shape[1:])):
        raise OptionError(
            "baseline",
            f"{{option}} {text} has shape {list(value.shape)}; the input is {list(x.shape[1:])}.",
            "Give one input's shape, with or without the batch axis.",
        )
    return np.broadcast_to(value.reshape(x.shape[1:]), x.shape).copy()
