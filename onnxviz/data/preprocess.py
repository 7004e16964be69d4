"""From a picture (or a ready tensor) to the model's input, and back to something to look at.

Normalisation is ``(pixel · scale − mean) / std`` per channel, after the channel order is set.
The presets are the conventions models are trained with:

* ``imagenet``: RGB, /255, ImageNet mean and std (torchvision, timm);
* ``caffe``: BGR, 0–255, minus the BGR ImageNet mean (Caffe, Keras ``caffe`` mode, VGG ports);
* ``tf``: RGB, scaled to [−1, 1] (Keras ``tf`` mode, MobileNet/Inception);
* ``raw``: RGB, /255 (ultralytics' YOLO: its exporter writes ``author: Ultralytics``).

A model can name its own preset in its metadata (``onnxviz.preset``); it is used when the user
gives none (``default_preset``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from onnxviz.errors import ImageError, UsageError

PRESETS: dict[str, dict] = {
    "imagenet": {"scale": 1 / 255, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "order": "rgb"},
    "caffe": {"scale": 1.0, "mean": (103.939, 116.779, 123.68), "std": (1.0, 1.0, 1.0), "order": "bgr"},
    "tf": {"scale": 1 / 127.5, "mean": (1.0, 1.0, 1.0), "std": (1.0, 1.0, 1.0), "order": "rgb"},
    "raw": {"scale": 1 / 255, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "order": "rgb"},
}
LAYOUTS = ("auto", "nchw", "nhwc")


def default_preset(metadata: dict[str, str]) -> str:
    """The preset of a model the user gives none for: its ``onnxviz.preset``, else ``raw`` for an
    ultralytics export (ultralytics feeds RGB/255 with no mean or std), else ``imagenet``."""
    if "onnxviz.preset" in metadata:
        return metadata["onnxviz.preset"]
    return "raw" if metadata.get("author", "").strip() == "Ultralytics" else "imagenet"


@dataclass(frozen=True)
class Preprocessing:
    """How a picture becomes the input tensor. ``size`` is (H, W), None = the model's own."""

    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    order: str = "rgb"
    layout: str = "auto"
    size: tuple[int, int] | None = None

    @classmethod
    def preset(cls, name: str, **overrides) -> Preprocessing:
        if name not in PRESETS:
            raise UsageError(f"Unknown preset '{name}'.", f"Use one of: {', '.join(PRESETS)}.")
        base = cls(**PRESETS[name])
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class PreparedInput:
    """The input tensor (batch 1, model layout) and the RGB picture it was made from."""

    tensor: np.ndarray
    picture: np.ndarray | None  # uint8 (H, W, 3) RGB at the model's size; None for tensor inputs


def decoded(data: np.ndarray, flags: int) -> np.ndarray | None:
    """``cv2.imdecode`` with OpenCV's own log silenced meanwhile: a broken picture is reported once,
    as onnxviz's error paragraph, not also as OpenCV's WARN/ERROR lines on stderr."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        return cv2.imdecode(data, flags)
    finally:
        cv2.utils.logging.setLogLevel(level)


def read_image(path: str | Path) -> np.ndarray:
    """A picture as uint8 RGB (H, W, 3), or a ``.npy`` array as stored."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"Image not found: {path}")
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except Exception as exc:
            raise ImageError(f"{path} is not a readable .npy array ({exc}).") from None
    data = np.fromfile(path, dtype=np.uint8)
    try:
        picture = decoded(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error as exc:  # OpenCV refuses (raises) where a header claims more pixels than it allows
        raise ImageError(f"{path} cannot be decoded by OpenCV: {str(exc).strip().splitlines()[-1]}") from None
    if picture is None:
        raise ImageError(
            f"{path} is not an image OpenCV can read.",
            "Use a PNG/JPEG/BMP/TIFF/WebP picture, or a .npy holding the input tensor.",
        )
    return cv2.cvtColor(picture, cv2.COLOR_BGR2RGB)


def prepare(
    image: np.ndarray | str | Path, input_shape: tuple[int, ...], layout: str, prep: Preprocessing
) -> PreparedInput:
    """Turn ``image`` into a float32 tensor shaped ``input_shape`` (batch 1)."""
    if isinstance(image, (str, Path)):
        image = read_image(image)
    image = np.asarray(image)
    if image.dtype != np.uint8:
        return PreparedInput(_as_tensor(image, input_shape), None)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ImageError(f"A picture must be (H, W, 3) uint8; got {image.shape}.")
    image = image[:, :, :3]
    h_axis, w_axis, c_axis = (1, 2, 3) if layout == "nhwc" else (2, 3, 1)
    height, width, channels = input_shape[h_axis], input_shape[w_axis], input_shape[c_axis]
    if channels not in (1, 3):
        _refuse_channels(input_shape, layout, channels)
    shrinking = image.shape[0] > height or image.shape[1] > width
    picture = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    pixels = picture.astype(np.float32)
    if prep.order == "bgr":
        pixels = pixels[:, :, ::-1]
    if channels == 1:
        pixels = cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY).astype(np.float32)[:, :, None]
    mean = np.asarray(prep.mean, np.float32)[:channels]
    std = np.asarray(prep.std, np.float32)[:channels]
    normalised = (pixels * np.float32(prep.scale) - mean) / std
    tensor = normalised if layout == "nhwc" else normalised.transpose(2, 0, 1)
    return PreparedInput(np.ascontiguousarray(tensor[None], dtype=np.float32), picture)


def _refuse_channels(input_shape: tuple[int, ...], layout: str, channels: int) -> None:
    """A picture has 3 channels (or 1): say why this input cannot take one, the layout or the model."""
    other = 1 if layout == "nhwc" else 3
    if input_shape[other] in (1, 3):
        raise UsageError(
            f"The model's input {list(input_shape)} would have {channels} channels: the {layout.upper()} layout "
            "does not fit it.",
            "Use --layout auto.",
        )
    raise ImageError(
        f"The model's input {list(input_shape)} has {channels} channels; a picture gives 3 (RGB) or 1 (gray).",
        "Give the input as a float32 .npy array of the model's input shape.",
    )


def _as_tensor(array: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    if array.dtype.kind not in "fiub":  # complex, strings, objects: no float32 value is right
        raise ImageError(
            f"The input array holds {array.dtype} values; the model takes float32 numbers.",
            "Give a uint8 picture to preprocess, or a float32 array of the model's input shape.",
        )
    array = array.astype(np.float32, copy=False)
    if array.shape == tuple(input_shape[1:]):
        array = array[None]
    if array.shape != tuple(input_shape):
        raise ImageError(
            f"The input array has shape {array.shape}; the model expects {tuple(input_shape)} "
            f"(or {tuple(input_shape[1:])} without the batch axis).",
            "Give a uint8 picture to preprocess, or a float32 array of the model's input shape.",
        )
    if not np.isfinite(array).all():
        raise ImageError("The input array holds NaN or infinite values.")
    return array


def picture_from_tensor(tensor: np.ndarray, layout: str, prep: Preprocessing) -> np.ndarray:
    """Undo the normalisation of a (C, H, W)/(H, W, C) tensor: an RGB uint8 picture to show."""
    hwc = tensor if layout == "nhwc" else tensor.transpose(1, 2, 0)
    channels = hwc.shape[2]
    if channels not in (1, 3):
        return _stand_in(hwc)
    std = np.asarray(prep.std, np.float32)[:channels]
    mean = np.asarray(prep.mean, np.float32)[:channels]
    pixels = (hwc * std + mean) / np.float32(prep.scale)
    if channels == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    elif prep.order == "bgr":
        pixels = pixels[:, :, ::-1]
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _stand_in(hwc: np.ndarray) -> np.ndarray:
    """A gray picture for a tensor whose channels are not colours (a model of 2 or 4 channels given
    a .npy, or a --layout that names the wrong axis): the mean over channels, stretched to 0–255."""
    gray = np.nan_to_num(hwc.astype(np.float32).mean(axis=2))
    low, span = float(gray.min(initial=0.0)), float(np.ptp(gray)) if gray.size else 0.0
    stretched = (gray - low) * (255.0 / span) if span > 0 else np.zeros_like(gray)
    return np.repeat(np.rint(stretched).astype(np.uint8)[:, :, None], 3, axis=2)


def check_normalisation(prep: Preprocessing) -> None:
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
