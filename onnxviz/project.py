"""Projection of feature maps back to pixels: one forward run, one batched inverse run.

The forward graph (switches on, stopping at the chosen layer) runs once for the image; the
chosen channels become K seeds, each the channel's own activation map with every other
activation of the layer zeroed (as in Zeiler & Fergus); the inverse graph maps all K seeds back
to input space in one run of batch K, sharing the forward's switches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort

from onnxviz import render
from onnxviz.errors import UsageError
from onnxviz.inverse import SEED, build_inverse
from onnxviz.inverse.sparse import CHANNELS
from onnxviz.model import ModelGraph
from onnxviz.preprocess import Preprocessing, picture_from_tensor
from onnxviz.rewrite import forward_model
from onnxviz.runtime import Device, create_session, run_bound

SEED_AT_INPUT_OPS = ("Softmax", "LogSoftmax")


def seeded_tensor(graph: ModelGraph, tensor: str) -> str:
    """A Softmax at the target is skipped: the seed goes to its input, the logits."""
    node = graph.producer.get(tensor)
    while node is not None and node.op_type in SEED_AT_INPUT_OPS:
        tensor = node.input[0]
        node = graph.producer.get(tensor)
    return tensor


class Projector:
    """The forward and inverse sessions for one (target, rule, input shape): built once, reused.

    Only the two sessions and the names the inverse reads are kept: the graphs they were built
    from (the weights copied into each) are dropped as soon as onnxruntime holds them, so a
    projector costs its sessions' memory and no more.
    """

    def __init__(
        self,
        graph: ModelGraph,
        target: str,
        input_shape: tuple[int, ...],
        rule: str,
        device: Device,
        lrn: str = "exact",
        sparse: bool = True,
    ) -> None:
        started = time.perf_counter()
        self.target = target
        inverse = build_inverse(graph, target, input_shape, rule, device.form, lrn, sparse)
        self.forward_tensors = list(inverse.forward_tensors)
        self.sparse = inverse.sparse
        outputs = [target, *(t for t in self.forward_tensors if t != target)]
        forward = forward_model(graph, outputs, inverse.switches, graph.shapes(input_shape))
        self.forward_session = create_session(forward, device, "forward graph")
        del forward  # its weights are in the session now; free them before the inverse session is made
        self.inverse_session = create_session(inverse.model, device, "inverse graph")
        self.device = device
        self._on_device = frozenset(outputs[1:]) - {target}
        self.build_seconds = time.perf_counter() - started

    def forward(self, x: np.ndarray, input_name: str) -> dict[str, ort.OrtValue]:
        """Forward values: the target comes to the host (channels are chosen from it), the
        switches and masks the inverse reads stay on the device."""
        return run_bound(self.forward_session, {input_name: x}, self.device, "forward graph", self._on_device)

    def invert(self, activation: np.ndarray, channels: np.ndarray, forward: dict[str, ort.OrtValue]) -> np.ndarray:
        """Project ``channels`` of ``activation`` (the target's forward value) in one batched run."""
        feeds: dict[str, np.ndarray | ort.OrtValue]
        if self.sparse:
            feeds = {SEED: np.ascontiguousarray(activation[0, channels][:, None]), CHANNELS: channels}
        else:
            feeds = {SEED: make_seeds(activation, channels)}
        feeds.update({t: forward[t] for t in self.forward_tensors})
        (projection,) = run_bound(self.inverse_session, feeds, self.device, "inverse graph").values()
        return projection.numpy()


def channel_strengths(activation: np.ndarray) -> np.ndarray:
    """Each channel's strongest activation: the map's maximum (the value for a 1-D layer)."""
    per_channel = activation[0]
    return per_channel.reshape(per_channel.shape[0], -1).max(axis=1)


def select_channels(strengths: np.ndarray, channels: list[int] | None, top: int | None) -> np.ndarray:
    count = strengths.shape[0]
    if channels is not None and top is not None:
        raise UsageError("Give either channels or top, not both.")
    if channels is not None:
        if not channels:
            raise UsageError("The channel list is empty.")
        bad = [c for c in channels if not 0 <= c < count]
        if bad:
            raise UsageError(f"Channel {bad[0]} does not exist: this layer has channels 0…{count - 1}.")
        return np.asarray(channels, np.int64)
    top = 1 if top is None else top
    if not 1 <= top <= count:
        raise UsageError(f"--top must be between 1 and {count} (the layer's channel count); got {top}.")
    order = np.argsort(-strengths, kind="stable")
    return order[:top].astype(np.int64)


def make_seeds(activation: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """K seeds: seed k keeps channel ``channels[k]``'s map and zeroes the rest of the layer.

    A 1-D layer (logits, dense units) has no map; its seed is a one-hot 1, the usual
    class-saliency seed.
    """
    seeds = np.zeros((len(channels), *activation.shape[1:]), np.float32)
    rows = np.arange(len(channels))
    if activation.ndim == 2:
        seeds[rows, channels] = 1.0
    else:
        seeds[rows, channels] = activation[0, channels]
    return seeds


@dataclass
class Projection:
    """Projections of K channels of one layer for one input.

    ``projections`` is float32 (K, *input shape without batch) in the model's input layout and
    preprocessed-input space: exactly what ``onnxviz project --raw`` writes.
    """

    projections: np.ndarray
    channels: np.ndarray
    activations: np.ndarray
    node: str
    tensor: str
    rule: str
    layout: str
    input_tensor: np.ndarray
    preprocessing: Preprocessing
    picture: np.ndarray | None = None
    device: str = "cpu"
    timings: dict[str, float] = field(default_factory=dict)

    def figure(self) -> np.ndarray:
        """The input beside a grid of the K projections, each titled with channel and activation."""
        picture = self.picture
        if picture is None:
            picture = picture_from_tensor(self.input_tensor[0], self.layout, self.preprocessing)
        size = render.tile_size(*picture.shape[:2])
        left = render.titled_tile(picture, size, ["input", self.node])
        tiles = [
            render.titled_tile(
                render.projection_to_rgb(p, self.layout, self.preprocessing.order),
                size,
                [f"{self.node} ch {c}", f"act {a:.3g}"],
            )
            for p, c, a in zip(self.projections, self.channels, self.activations, strict=True)
        ]
        columns = min(len(tiles), max(1, int(np.ceil(np.sqrt(len(tiles))))))
        body = render.beside(render.grid([left], 1), render.grid(tiles, columns))
        return render.with_header(body, f"{self.rule} projection of {self.node} ({self.tensor})")

    def save(self, path) -> None:
        render.save_png(self.figure(), path)

    def _repr_png_(self) -> bytes:
        return render.png_bytes(self.figure())

    def summary(self) -> dict:
        return {
            "node": self.node,
            "tensor": self.tensor,
            "rule": self.rule,
            "channels": [int(c) for c in self.channels],
            "activations": [float(a) for a in self.activations],
            "projection_shape": list(self.projections.shape),
            "layout": self.layout,
            "device": self.device,
            "timings_ms": {k: round(v * 1000, 3) for k, v in self.timings.items()},
        }
