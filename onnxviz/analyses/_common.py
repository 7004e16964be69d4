"""Helpers several analyses share: softmax, fill values, channel checks, layout moves.

They live here, below every analysis, so that no analysis imports another analysis's helpers.
"""

from __future__ import annotations

import numpy as np

from onnxviz.data.preprocess import Preprocessing
from onnxviz.errors import OptionError

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
        return (grey - np.asarray(prep.mean, np.float32)[:channels]) / np.asarray(prep.std, np.float32)[:channels]
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
