"""The perturbation engine: batches of modified inputs made where the model runs.

Occlusion sweeps a patch over one image: hundreds of inputs that differ from it in one rectangle.
Sending each from the host would cost a copy per input; instead a small graph builds the batch
from the one image, the patch corners (B, 2) and the fill values (C,), on the device when the
session runs on the GPU, so only the corners travel per batch. The same engine is the place for
the other modified-input batches (invariance transforms, correspondence masks).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from onnxviz.runtime.sessions import Device, create_session, run_bound

OCCLUDED = "occluded"


def occluder_model(shape: tuple[int, ...], layout: str, patch: int | tuple[int, int]) -> onnx.ModelProto:
    """A graph making the batch of occluded images from ``image`` (1, …), ``corners`` (B, 2)
    and ``fill`` (C,), where the session runs: on the GPU only the corners travel per batch.

    ``patch``: the side of a square, or (rows, cols) of a rectangle (a correspondence mask's part).
    """
    patch_rows, patch_cols = (patch, patch) if isinstance(patch, int) else patch
    h_axis = 1 if layout == "nhwc" else 2
    height, width = shape[h_axis], shape[h_axis + 1]
    channels = shape[3 if layout == "nhwc" else 1]
    constants = {
        "occ_rows": np.arange(height, dtype=np.int64)[None],
        "occ_cols": np.arange(width, dtype=np.int64)[None],
        "occ_patch_rows": np.array(patch_rows, np.int64),
        "occ_patch_cols": np.array(patch_cols, np.int64),
        "occ_first": np.array([0], np.int64),
        "occ_second": np.array([1], np.int64),
        "occ_end": np.array([2], np.int64),
        "occ_axis1": np.array([1], np.int64),
        "occ_axis2": np.array([2], np.int64),
        "occ_mask_axis": np.array([3 if layout == "nhwc" else 1], np.int64),
        "occ_fill_shape": np.array([1, 1, 1, channels] if layout == "nhwc" else [1, channels, 1, 1], np.int64),
    }
    make = onnx.helper.make_node
    nodes = [
        make("Slice", ["corners", "occ_first", "occ_second", "occ_axis1"], ["occ_top"]),
        make("Slice", ["corners", "occ_second", "occ_end", "occ_axis1"], ["occ_left"]),
        make("Add", ["occ_top", "occ_patch_rows"], ["occ_bottom"]),
        make("Add", ["occ_left", "occ_patch_cols"], ["occ_right"]),
        make("GreaterOrEqual", ["occ_rows", "occ_top"], ["occ_below_top"]),
        make("Less", ["occ_rows", "occ_bottom"], ["occ_above_bottom"]),
        make("And", ["occ_below_top", "occ_above_bottom"], ["occ_in_rows"]),
        make("GreaterOrEqual", ["occ_cols", "occ_left"], ["occ_right_of_left"]),
        make("Less", ["occ_cols", "occ_right"], ["occ_left_of_right"]),
        make("And", ["occ_right_of_left", "occ_left_of_right"], ["occ_in_cols"]),
        make("Unsqueeze", ["occ_in_rows", "occ_axis2"], ["occ_rows_3d"]),
        make("Unsqueeze", ["occ_in_cols", "occ_axis1"], ["occ_cols_3d"]),
        make("And", ["occ_rows_3d", "occ_cols_3d"], ["occ_square"]),
        make("Unsqueeze", ["occ_square", "occ_mask_axis"], ["occ_mask"]),
        make("Reshape", ["fill", "occ_fill_shape"], ["occ_fill"]),
        make("Where", ["occ_mask", "occ_fill", "image"], [OCCLUDED]),
    ]
    inputs = [
        onnx.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1, *shape[1:]]),
        onnx.helper.make_tensor_value_info("corners", onnx.TensorProto.INT64, ["B", 2]),
        onnx.helper.make_tensor_value_info("fill", onnx.TensorProto.FLOAT, [channels]),
    ]
    output = onnx.helper.make_tensor_value_info(OCCLUDED, onnx.TensorProto.FLOAT, ["B", *shape[1:]])
    initializers = [onnx.numpy_helper.from_array(v, k) for k, v in constants.items()]
    graph = onnx.helper.make_graph(nodes, "occluder", inputs, [output], initializer=initializers)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


class Occluder:
    """A session of ``occluder_model``: corners in, a batch of occluded images out (on the device)."""

    def __init__(self, input_shape: tuple[int, ...], layout: str, patch: int | tuple[int, int], device: Device) -> None:
        self.session = create_session(occluder_model(input_shape, layout, patch), device, "occluder")
        self.device = device

    def place(self, image: np.ndarray) -> np.ndarray | ort.OrtValue:
        """The image where the session runs: copied to the GPU once, not once per batch."""
        return image if self.device.name == "cpu" else ort.OrtValue.ortvalue_from_numpy(image, self.device.name, 0)

    def occluded(self, image: np.ndarray | ort.OrtValue, corners: np.ndarray, fill: np.ndarray) -> ort.OrtValue:
        """The batch (B, …) of ``image`` with a patch at each of ``corners`` filled with ``fill``."""
        feeds = {"image": image, "corners": np.asarray(corners, np.int64), "fill": fill}
        return run_bound(self.session, feeds, self.device, "occluder", frozenset({OCCLUDED}))[OCCLUDED]
