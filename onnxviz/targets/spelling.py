"""How a target is written: ``281`` (a class), ``NAME[i,j,...]`` (a tensor element),
``box:X1,Y1,X2,Y2[:K]`` and ``detection:N`` (a detector's), ``mask:PNG:K`` and ``mask:predicted:K``
(a segmenter's), ``None`` (each image's top-1), or a ``Target`` built in Python.

Each spelled kind reads its own spelling (``from_spelling``: the target, or None when the text is
not its spelling); ``parse_target`` tries them in turn, so a new spelling is one entry in
``SPELLED_KINDS``.
"""

from __future__ import annotations

import re
from numbers import Integral

from onnxviz.errors import UsageError
from onnxviz.targets.base import Target
from onnxviz.targets.classes import ClassTarget
from onnxviz.targets.detections import box_from_spelling, detection_from_spelling
from onnxviz.targets.masks import mask_from_spelling
from onnxviz.targets.tensors import ElementTarget

TargetSpelling = Target | int | str | None
SPELLINGS = (
    "class K, detection:N or box:X1,Y1,X2,Y2[:K] (a detector), mask:predicted:K or mask:PNG:K (a segmenter), "
    "or NAME[0,i,...] (an element of any tensor)"
)  # what a --target option's help lists

_CLASS = re.compile(r"[+-]?\d+")
_ELEMENT = re.compile(r"(?P<name>.*)\[(?P<index>[^\[\]]*)\]")


def class_from_spelling(text: str) -> ClassTarget | None:
    """``281``: class 281 of the classifier output."""
    return ClassTarget(int(text)) if _CLASS.fullmatch(text) else None


def element_from_spelling(text: str) -> ElementTarget | None:
    """``NAME[i,j,...]``: one element of tensor NAME, its full index with the batch axis first."""
    match = _ELEMENT.fullmatch(text)
    if match is None:
        return None
    name, index = match["name"].strip(), match["index"]
    parts = [part.strip() for part in index.split(",")] if index.strip() else []
    if not name or not all(_CLASS.fullmatch(part) for part in parts):
        raise UsageError(
            f"Cannot read the target '{text}': the index of an element is integers after a tensor name.",
            "Write it NAME[0,i,...]: the tensor (or layer) name, then one index per axis, batch first.",
        )
    return ElementTarget(name, tuple(int(part) for part in parts))


SPELLED_KINDS = (
    class_from_spelling,
    box_from_spelling,
    detection_from_spelling,
    mask_from_spelling,
    element_from_spelling,
)


def parse_target(spelling: TargetSpelling) -> Target:
    """The target a caller wrote, or a ``UsageError`` listing the spellings."""
    if isinstance(spelling, Target):
        return spelling
    if spelling is None:
        return ClassTarget()
    if isinstance(spelling, Integral) and not isinstance(spelling, bool):
        return ClassTarget(int(spelling))
    if isinstance(spelling, str):
        text = spelling.strip()
        for read in SPELLED_KINDS:
            target = read(text)
            if target is not None:
                return target
    raise UsageError(
        f"Cannot read the target {spelling!r}.",
        "Give a class number (281), an element of a tensor as NAME[0,i,...] (batch index first), "
        "box:X1,Y1,X2,Y2[:K] or detection:N on a detector, mask:PNG:K or mask:predicted:K on a segmenter, "
        "or nothing for each image's top-1 class.",
    )
