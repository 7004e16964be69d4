"""What an inverse graph is built from, in one value: the builder, the projector's sessions and
the graph cache's key all take an ``InverseSpec``, so a new choice (a layer as the source, a
paired batch) is one field here rather than one more argument threaded through every layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from onnxviz.errors import UsageError
from onnxviz.inverse.context import FORMS, MODES


@dataclass(frozen=True)
class InverseSpec:
    """The inverse of ``target`` back to ``source``: its output is ∂⟨seed, target⟩/∂source, shaped
    like the source with the seed's batch.

    ``source`` None is the graph input (a projection, an input gradient); any tensor on the image
    path between the input and the target gives a layer gradient, walking only the nodes between
    the two (the forward still runs from the input: the rules read its tensors).

    ``input_shape`` is the forward's input shape (batch 1): the shapes every rule reads follow from
    it, so it belongs to what the graph is built from. ``rule`` is the mode of the activation rules
    (``modes.py``); ``form`` picks the emission onnxruntime's provider runs best (``InverseContext``);
    ``lrn`` is ``exact`` or ``passthrough`` (the paper's approximation). With ``sparse`` the seed is
    (K, 1, h, w) plus K channel indices where the target is a conv layer's output (``sparse.py``).
    ``paired``: seed k goes back through input k's own forward values (the gradient engine's K
    images), rather than K seeds through one input's.
    """

    target: str
    input_shape: tuple[int, ...]
    source: str | None = None
    rule: str = "deconvnet"
    form: str = "cpu"
    lrn: str = "exact"
    sparse: bool = False
    paired: bool = False

    def __post_init__(self) -> None:
        # A list would make the spec unhashable and its cache key depend on the caller's type.
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        for what, value, allowed in (("rule", self.rule, MODES), ("form", self.form, FORMS)):
            if value not in allowed:
                raise UsageError(f"Unknown inverse {what} '{value}'.", f"Use one of: {', '.join(allowed)}.")
