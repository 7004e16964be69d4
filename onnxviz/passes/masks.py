"""The masks pass: the forward also computes the ReLU masks the inverse reads, as booleans.

The ``saliency`` and ``guided`` inverses multiply a ReLU's signal by ``[y > 0]``. Computed in the
inverse, that is two passes over the map (a comparison and a cast) on every inverse run, and the
forward hands over ``y`` as float32; computed once in the forward, the forward hands over one byte
per value, and an inverse run only casts and multiplies (``benchmarks/README.md``, "Engine").
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from onnxviz.passes.base import Pass, PassPostconditionError, PassPreconditionError, PassResult, graph_tensors

ZERO = "onnxviz_mask_zero"


class AddMasks(Pass):
    """Add ``masks[name] = Greater(tensor, 0)`` for each ``name → tensor`` of ``masks``.

    Requires: every tensor a mask reads is one the graph computes; no mask name is taken.
    Ensures: the graph computes every mask.
    Works in place: changes the model it is given and returns it.
    """

    name = "masks"
    in_place = True

    def __init__(self, masks: dict[str, str]) -> None:
        self.masks = dict(masks)

    def requires(self, model: onnx.ModelProto) -> None:
        known = graph_tensors(model)
        missing = sorted(tensor for tensor in self.masks.values() if tensor not in known)
        if missing:
            raise PassPreconditionError(
                f"Masks were asked of {', '.join(repr(m) for m in missing)}, which this graph does not compute.",
                "The forward model must be made from the graph the inverse was built from.",
            )
        taken = sorted(name for name in self.masks if name in known)
        if taken:
            raise PassPreconditionError(f"The mask name(s) {', '.join(taken)} are already tensors of this graph.")

    def call(self, model: onnx.ModelProto) -> PassResult:
        if not self.masks:
            return PassResult(model, False)
        if ZERO not in {i.name for i in model.graph.initializer}:
            model.graph.initializer.append(numpy_helper.from_array(np.array(0.0, np.float32), ZERO))
        for name, tensor in self.masks.items():
            model.graph.node.append(onnx.helper.make_node("Greater", [tensor, ZERO], [name], name=f"{name}/Greater"))
        return PassResult(model, True)

    def ensures(self, model: onnx.ModelProto) -> None:
        computed = {o for node in model.graph.node for o in node.output}
        if not set(self.masks) <= computed:
            raise PassPostconditionError("The graph does not compute every mask it was asked for.")
