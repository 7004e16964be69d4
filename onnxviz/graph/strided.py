"""torch's ``as_strided`` on a contiguous tensor, as the dynamo exporter writes it, made a Reshape.

The exporter writes ``x.as_strided(size, stride)`` as ``Reshape(x, [-1])`` → ``Gather(axis=0,
indices)`` with the element offsets as constant indices (torchvision's ConvNeXt head does this to
its pooled ``(1, C, 1, 1)`` map). Where the indices are ``0, 1, …, n−1`` in order and ``n`` is the
whole flattened tensor, the Gather reads every element once, in order: it *is* ``Reshape(flat,
indices.shape)``. The rewrite is exact at the exported batch, and unlike the Gather, which mixes
the batch into a flat axis, a Reshape keeps it where the batch passes and the inverse can follow it.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from onnxviz.graph.attributes import node_attr


def gathers_as_reshapes(
    model: onnx.ModelProto,
    nodes: list[onnx.NodeProto],
    constants: dict[str, np.ndarray],
    signal: set[str],
    shapes: dict[str, tuple[int, ...]],
) -> bool:
    """Rewrite each in-order, whole-tensor Gather on a 1-D signal tensor as a Reshape, in place
    (``constants`` gains the target shapes); returns whether any node changed."""
    changed = False
    for node in nodes:
        if node.op_type != "Gather" or node.input[0] not in signal or int(node_attr(node, "axis", 0)) != 0:
            continue
        indices = constants.get(node.input[1])
        length = shapes.get(node.input[0])
        if indices is None or length is None or len(length) != 1 or indices.ndim == 0:
            continue
        if indices.size != length[0] or not np.array_equal(indices.ravel(), np.arange(indices.size)):
            continue
        target = f"{node.output[0]}__as_reshape"
        constants[target] = np.asarray(indices.shape, np.int64)
        model.graph.initializer.append(numpy_helper.from_array(constants[target], target))
        node.op_type = "Reshape"
        node.input[1] = target
        del node.attribute[:]
        changed = True
    return changed
