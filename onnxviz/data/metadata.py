"""What a model says about itself in its ``metadata_props``, checked where it is read.

A model can carry how its pictures are prepared and what its classes are called:

* ``onnxviz.preset``: one of the presets (``imagenet``, ``caffe``, ``tf``, ``raw``);
* ``onnxviz.mean``, ``onnxviz.std``: 1 or 3 numbers (per RGB channel), ``0.5,0.5,0.5`` or a JSON
  list; ``onnxviz.scale``: one number (``std`` and ``scale`` not 0);
* ``onnxviz.order``: ``rgb`` or ``bgr``; ``onnxviz.layout``: ``auto``, ``nchw`` or ``nhwc``;
* ``onnxviz.labels``: a JSON list of class names in output order.

Each value overrides the preset's and is overridden by the caller's own option. These values are
written by whoever exported the file, often by hand, so each one is checked here and a wrong one
is an error naming the key and the model, not a numpy failure deep in an analysis.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from onnxviz.errors import InvalidModelError

PREFIX = "onnxviz."
NUMBER_LISTS = ("mean", "std")
CHOICES = {"order": ("rgb", "bgr"), "layout": ("auto", "nchw", "nhwc")}
HINT = "Fix the value in the model's metadata_props (onnx.helper.set_model_props), or override it with --{name}."


def metadata_error(key: str, value: str, model: Path | str | None, wanted: str) -> InvalidModelError:
    """The error for a metadata value that cannot be used: the key, the model, the value, the need."""
    shown = value if len(value) <= 80 else value[:77] + "..."
    where = f"of {Path(model).name} " if model else ""
    name = key.removeprefix(PREFIX)
    return InvalidModelError(
        f"The metadata '{key}' {where}is {shown!r}: it must be {wanted}.", HINT.format(name=name.replace("_", "-"))
    )


def _numbers(key: str, text: str, model: Path | str | None) -> tuple[float, ...]:
    wanted = "1 or 3 finite numbers, comma-separated or a JSON list"
    try:
        parsed = json.loads(text) if text.strip().startswith("[") else [float(v) for v in text.split(",")]
        values = tuple(float(v) for v in (parsed if isinstance(parsed, list) else [parsed]))
    except (ValueError, TypeError):
        raise metadata_error(key, text, model, wanted) from None
    if len(values) not in (1, 3) or not all(math.isfinite(v) for v in values):
        raise metadata_error(key, text, model, wanted)
    if key.endswith("std") and any(v == 0 for v in values):
        raise metadata_error(key, text, model, "numbers other than 0 (the input is divided by them)")
    return values


def _scale(key: str, text: str, model: Path | str | None) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value == 0:
        raise metadata_error(key, text, model, "one finite number other than 0")
    return value


def preset_of(metadata: dict[str, str], model: Path | str | None, presets: tuple[str, ...]) -> str | None:
    """The preset the model names (``onnxviz.preset``), or None where it names none."""
    key = PREFIX + "preset"
    if key not in metadata:
        return None
    value = metadata[key].strip()
    if value not in presets:
        raise metadata_error(key, metadata[key], model, "one of " + ", ".join(presets))
    return value


def preprocessing_of(metadata: dict[str, str], model: Path | str | None, given: dict) -> dict:
    """The preprocessing fields the model's metadata sets and the caller left unset (``given``: the
    caller's own values, None where unset), checked."""
    found: dict = {}
    for name in (*NUMBER_LISTS, "scale", *CHOICES):
        key = PREFIX + name
        if key not in metadata or given.get(name) is not None:
            continue
        text = metadata[key]
        if name in NUMBER_LISTS:
            found[name] = _numbers(key, text, model)
        elif name == "scale":
            found[name] = _scale(key, text, model)
        elif text.strip().lower() in CHOICES[name]:
            found[name] = text.strip().lower()
        else:
            raise metadata_error(key, text, model, "one of " + ", ".join(CHOICES[name]))
    return found


def labels_of(metadata: dict[str, str], model: Path | str | None) -> list[str] | None:
    """The class names of ``onnxviz.labels`` (a JSON list of names, numbers read as names), or None."""
    key = PREFIX + "labels"
    text = metadata.get(key)
    if text is None:
        return None
    try:
        names = json.loads(text)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, (str, int, float)) for n in names):
        raise metadata_error(key, text, model, "a JSON list of class names in output order")
    return [str(n) for n in names]
