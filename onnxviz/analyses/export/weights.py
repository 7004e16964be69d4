"""Weights read by both a forward Conv and its inverse's ConvTranspose, given to the ConvTranspose
through a node that OpenVINO folds into a constant of its own.

OpenVINO 2026.4's CPU plugin computes a ConvTranspose wrongly (relative errors near 1) when its
weight constant is the very one a Conv of the same model reads and the ConvTranspose's input
depends on that Conv: e.g. Conv(x, W) → Sigmoid → Mul with the signal → ConvTranspose(·, W), the
inverse of every SiLU-activated YOLO convolution. The same nodes with a copy of W agree with
onnxruntime and torch. A copy in the file would double the model's size, so the ConvTranspose
reads 2·W and its output is halved: both scalings by a power of two are exact in floating point,
onnxruntime gives the same bits as before, and OpenVINO folds 2·W into a constant of its own.
"""

from __future__ import annotations

import onnx

from onnxviz.analyses.export.heads import Head


def unshared_transposed_weights(
    forward: list[onnx.NodeProto], inverse: list[onnx.NodeProto], weights: set[str], head: Head
) -> None:
    """Each ConvTranspose of ``inverse`` that reads a forward Conv's initializer rewritten in place
    to read twice that initializer; the doubling and the halving of its output are ``head``'s nodes."""
    conv_weights = {node.input[1] for node in forward if node.op_type == "Conv" and len(node.input) > 1}
    shared = [n for n in inverse if n.op_type == "ConvTranspose" and len(n.input) > 1 and n.input[1] in conv_weights]
    if not shared:
        return
    two, half = head.scalar(2.0, "two"), head.scalar(0.5, "half")
    for node in shared:
        if node.input[1] not in weights:
            continue
        doubled = head.op("Mul", [node.input[1], two], outputs=[head.fresh(f"{node.input[1]}/doubled")])
        result = node.output[0]
        node.input[1], node.output[0] = doubled, head.fresh(f"{result}/doubled")
        head.op("Mul", [node.output[0], half], outputs=[result])
