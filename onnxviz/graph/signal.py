"""The signal tensors: those that depend differentiably on the image.

They are what separates the path a projection travels from shape arithmetic such as tf2onnx's
``Shape → Gather → Concat → Reshape`` flatten, which reads the image's tensors but carries none
of their values.
"""

from __future__ import annotations

from collections.abc import Collection

import onnx

from onnxviz.graph.ops import NON_DIFFERENTIABLE_OPS


def mark_signal(nodes: list[onnx.NodeProto], input_name: str, constants: Collection[str]) -> set[str]:
    """The tensors computed differentiably from ``input_name`` (``nodes`` in topological order);
    a folded constant is never signal, nor are a MaxPool's argmax indices."""
    signal = {input_name}
    for node in nodes:
        if node.op_type in NON_DIFFERENTIABLE_OPS:
            continue
        if any(t in signal for t in node.input if t):
            signal.update(o for o in node.output if o and o not in constants)
    for node in nodes:
        if node.op_type == "MaxPool" and len(node.output) > 1:
            signal.discard(node.output[1])  # argmax indices carry no signal
    return signal
