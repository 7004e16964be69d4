"""The base every analysis result derives from: a picture, a PNG, a notebook preview, a summary.

A result is a dataclass with numpy fields; ``figure()`` draws it as one RGB array, and the rest
follows: ``save`` writes that picture atomically (what ``--out`` writes), ``_repr_png_`` shows it
inline in a notebook, and ``summary()`` is the JSON-ready dict ``--json`` prints. A result with
one array that says it all (an attribution, a score map) returns it from ``raw()``: that is what
``--raw`` writes, and a command generated from the registry offers ``--raw`` only for such results.
"""

from __future__ import annotations

import numpy as np

from onnxviz.render import pictures as render


class Result:
    """A figure and a summary; ``save`` and the notebook preview come from the figure."""

    def figure(self) -> np.ndarray:
        """The result drawn as one uint8 RGB array (H, W, 3)."""
        raise NotImplementedError(f"{type(self).__name__} draws no figure")

    def summary(self) -> dict:
        """What ``--json`` prints: plain JSON types only."""
        raise NotImplementedError(f"{type(self).__name__} has no summary")

    def raw(self) -> np.ndarray | None:
        """The result's array, as ``--raw`` writes it (float32 .npy); None: it has none."""
        return None

    @classmethod
    def offers_raw(cls) -> bool:
        """Whether this kind of result has an array for ``--raw`` (it overrides ``raw``)."""
        return cls.raw is not Result.raw

    def save(self, path) -> None:
        render.save_png(self.figure(), path)

    def _repr_png_(self) -> bytes:
        return render.png_bytes(self.figure())
