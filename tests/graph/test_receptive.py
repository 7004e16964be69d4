"""Receptive fields of known architectures, worked out by hand.

Each window layer maps (size r, jump j) to (r + (d·(k−1)+1 − 1)·j, j·s).

VGG16 (3x3 convs stride 1 pad 1, 2x2/2 pools):
  conv1_1 3, conv1_2 5, pool1 6 (j 2); conv2_1 10, conv2_2 14, pool2 16 (j 4);
  conv3_1 24, conv3_2 32, conv3_3 40, pool3 44 (j 8); conv4_1 60, conv4_2 76, conv4_3 92,
  pool4 100 (j 16); conv5_1 132, conv5_2 164, conv5_3 196.
AlexNet: conv1 11x11/4 → 11 (j 4); pool1 3/2 → 11 + 2·4 = 19 (j 8); conv2 5x5 → 19 + 4·8 = 51;
  pool2 3/2 → 51 + 2·8 = 67 (j 16); conv3, conv4, conv5 3x3 → 99, 131, 163.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from onnxviz.graph.model import ModelGraph
from onnxviz.graph.receptive import receptive_fields
from tests.helpers import make_model


def _chain(spec: list[tuple], size: int) -> tuple[ModelGraph, list[str]]:
    """A single-channel chain: ("conv", k, s, p) or ("pool", k, s, p)."""
    nodes, inits, names, current = [], {}, [], "x"
    for i, (kind, k, s, p) in enumerate(spec):
        out = f"t{i}"
        if kind == "conv":
            inits[f"w{i}"] = np.ones((1, 1, k, k), np.float32)
            nodes.append(helper.make_node("Conv", [current, f"w{i}"], [out], strides=[s, s], pads=[p] * 4))
        else:
            nodes.append(
                helper.make_node("MaxPool", [current], [out], kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)
            )
        names.append(out)
        current = out
    return ModelGraph.from_proto(make_model(nodes, (1, 1, size, size), current, inits)), names


def test_vgg16_conv5_3_sees_196_pixels() -> None:
    conv, pool = ("conv", 3, 1, 1), ("pool", 2, 2, 0)
    spec = [conv] * 2 + [pool] + [conv] * 2 + [pool] + [conv] * 3 + [pool] + [conv] * 3 + [pool] + [conv] * 3
    graph, names = _chain(spec, 224)
    fields = receptive_fields(graph, graph.shapes((1, 1, 224, 224)))
    sizes = [int(fields[n].size[0]) for n in names]
    assert sizes == [3, 5, 6, 10, 14, 16, 24, 32, 40, 44, 60, 76, 92, 100, 132, 164, 196]
    assert fields[names[-1]].jump == (16, 16)


def test_alexnet_conv5_sees_163_pixels() -> None:
    spec = [
        ("conv", 11, 4, 2),
        ("pool", 3, 2, 0),
        ("conv", 5, 1, 2),
        ("pool", 3, 2, 0),
        ("conv", 3, 1, 1),
        ("conv", 3, 1, 1),
        ("conv", 3, 1, 1),
    ]
    graph, names = _chain(spec, 227)
    fields = receptive_fields(graph, graph.shapes((1, 1, 227, 227)))
    assert [int(fields[n].size[0]) for n in names] == [11, 19, 51, 67, 99, 131, 163]
    assert fields[names[-1]].jump == (16, 16)


def test_field_box_is_centred_and_clipped() -> None:
    graph, names = _chain([("conv", 3, 1, 1), ("pool", 2, 2, 0)], 8)
    field = receptive_fields(graph, graph.shapes((1, 1, 8, 8)))[names[-1]]
    # pool output (0, 0) sees input rows -1…2 → clipped to 0…2; (1, 1) sees rows 1…4.
    assert field.box(0, 0, 8, 8) == (0, 0, 3, 3)
    assert field.box(1, 1, 8, 8) == (1, 1, 5, 5)
