"""The one place the three modes differ: what an activation does to the backward signal.

With ``f'`` the activation's derivative at the forward input and ``ȳ`` the signal of its output:

* ``deconvnet`` (Zeiler & Fergus): ``relu(ȳ)``; the forward input is ignored;
* ``guided`` (Springenberg et al.): ``relu(ȳ)·[f'(x) > 0]``;
* ``saliency``: the true gradient ``ȳ·f'(x)``.

The activation rules (``rules/activation.py``) and the channel-sparse head (``sparse.py``) both
call ``rectify``, so a mode is written once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from onnxviz.inverse.context import InverseContext


def rectify(ctx: InverseContext, g: str, derivative: Callable[[], str]) -> str:
    """The signal of an activation's input from ``g``, that of its output. ``derivative`` emits
    ``f'`` (shaped to broadcast against ``g``) and is only called where the mode reads it."""
    if ctx.mode == "deconvnet":
        return ctx.op("Relu", [g])
    if ctx.mode == "guided":
        zero = ctx.const(np.array(0.0, np.float32), "zero")
        return ctx.op("Where", [ctx.op("Greater", [derivative(), zero]), ctx.op("Relu", [g]), zero])
    return ctx.op("Mul", [g, derivative()])
