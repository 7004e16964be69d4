"""The Projector: forward (switches on, stopping at a target) and inverse sessions, built once.

The forward graph runs once for the image; the chosen channels become K seeds, each the
channel's own activation map with every other activation of the layer zeroed (as in Zeiler &
Fergus); the inverse graph maps all K seeds back to input space in one run of batch K, sharing
the forward's switches. With the ``saliency`` rule the inverse is the exact vector-Jacobian
product, which is what the gradient engine uses.
"""

from __future__ import annotations

import time

import numpy as np
import onnx
import onnxruntime as ort

from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import SEED, InverseGraph, InverseSpec, build_inverse
from onnxviz.inverse.sparse import CHANNELS
from onnxviz.passes.rewrite import forward_model
from onnxviz.runtime.graph_cache import open_built, open_cached, projector_key
from onnxviz.runtime.sessions import Device, run_bound

SEED_AT_INPUT_OPS = ("Softmax", "LogSoftmax")


def seeded_tensor(graph: ModelGraph, tensor: str) -> str:
    """A Softmax at the target is skipped: the seed goes to its input, the logits."""
    node = graph.producer.get(tensor)
    while node is not None and node.op_type in SEED_AT_INPUT_OPS:
        tensor = node.input[0]
        node = graph.producer.get(tensor)
    return tensor


class Projector:
    """The forward and inverse sessions for one ``InverseSpec``: built once, reused.

    Only the two sessions and the names the inverse reads are kept: the graphs they were built
    from (the weights copied into each) are dropped as soon as onnxruntime holds them, so a
    projector costs its sessions' memory and no more. The spec's ``form`` should be the device's
    (``Device.form``): the emission its provider runs best.

    The forward runs from the graph input whatever the spec's source; a layer source is one more
    output of it, brought to the host with the target (the layer gradient's activation).
    """

    def __init__(self, graph: ModelGraph, spec: InverseSpec, device: Device, save_optimized: bool = True) -> None:
        started = time.perf_counter()
        self.target = spec.target
        self.source = spec.source or graph.input_name
        to_host = host_tensors(graph, spec)
        key = projector_key(graph, spec)
        opened = open_cached(key, device, save_optimized)  # a repeat run's graphs, stored on disk by the first
        if opened is None:
            inverse = build_inverse(graph, spec)
            forward, _ = forward_for(graph, spec, [inverse])
            stored = (tuple(inverse.forward_tensors), inverse.sparse, save_optimized)
            opened = open_built(key, device, forward, inverse.model, *stored)
            del forward, inverse  # their weights are in the sessions now
        self.forward_session, self.inverse_session, forward_tensors, self.sparse = opened
        self.forward_tensors = list(forward_tensors)
        self.device = device
        self._on_device = frozenset(self.forward_tensors) - set(to_host)
        # An inverse built for one projection at a time declares its seed of batch 1 (``build_inverse``).
        seed_input = next(i for i in self.inverse_session.get_inputs() if i.name == SEED)
        self.single = seed_input.shape[0] == 1
        self.build_seconds = time.perf_counter() - started

    def forward(self, x: np.ndarray, input_name: str) -> dict[str, ort.OrtValue]:
        """Forward values: the target comes to the host (channels are chosen from it), with a layer
        source; the switches and masks the inverse reads stay on the device."""
        return run_bound(self.forward_session, {input_name: x}, self.device, "forward graph", self._on_device)

    def forward_on_device(self, x: ort.OrtValue, input_name: str) -> dict[str, ort.OrtValue]:
        """Every forward value, the target too, left where the session ran: for a loop whose next
        graph reads the target on the device (the chained ascent under CUDA)."""
        outputs = frozenset(o.name for o in self.forward_session.get_outputs())
        return run_bound(self.forward_session, {input_name: x}, self.device, "forward graph", outputs)

    def inverse_on_device(self, seed: ort.OrtValue, forward: dict[str, ort.OrtValue]) -> ort.OrtValue:
        """The inverse on a dense seed already on the device, its projection left there too."""
        feeds: dict[str, np.ndarray | ort.OrtValue] = {SEED: seed, **{t: forward[t] for t in self.forward_tensors}}
        outputs = frozenset(o.name for o in self.inverse_session.get_outputs())
        (projection,) = run_bound(self.inverse_session, feeds, self.device, "inverse graph", outputs).values()
        return projection

    def invert(self, activation: np.ndarray, channels: np.ndarray, forward: dict[str, ort.OrtValue]) -> np.ndarray:
        """Project ``channels`` of ``activation`` (the target's forward value) in one batched run."""
        if self.sparse:
            return self.run_inverse(
                {SEED: np.ascontiguousarray(activation[0, channels][:, None]), CHANNELS: channels}, forward
            )
        return self.run_inverse({SEED: make_seeds(activation, channels)}, forward)

    def project_position(self, x: np.ndarray, input_name: str, channel: int, row: int, col: int) -> np.ndarray:
        """The projection of the one activation at (``channel``, ``row``, ``col``) of the target,
        every other activation zeroed: what a top-k winner or a checkpoint's strongest unit shows."""
        forward = self.forward(x, input_name)
        activation = forward[self.target].numpy()
        single = np.zeros_like(activation)
        single[0, channel, row, col] = activation[0, channel, row, col]
        return self.invert(single, np.array([channel], np.int64), forward)[0]

    def run_inverse(self, seeds: dict[str, np.ndarray], forward: dict[str, ort.OrtValue]) -> np.ndarray:
        """The inverse graph on given seed feeds (a dense ``SEED`` unless the head is sparse): in one
        batched run, or one run per projection where the inverse takes one at a time."""
        if self.single:
            count = len(seeds[SEED])
            runs = [{name: value[k : k + 1] for name, value in seeds.items()} for k in range(count)]
            return np.concatenate([self._run_inverse_once(run, forward) for run in runs], axis=0)
        return self._run_inverse_once(seeds, forward)

    def _run_inverse_once(self, seeds: dict[str, np.ndarray], forward: dict[str, ort.OrtValue]) -> np.ndarray:
        feeds: dict[str, np.ndarray | ort.OrtValue] = dict(seeds)
        feeds.update({t: forward[t] for t in self.forward_tensors})
        (projection,) = run_bound(self.inverse_session, feeds, self.device, "inverse graph").values()
        return projection.numpy()


def host_tensors(graph: ModelGraph, spec: InverseSpec) -> list[str]:
    """What a projector's forward brings to the host: the target, and a layer source's value."""
    source = spec.source or graph.input_name
    return [spec.target] if source == graph.input_name else [spec.target, source]


def forward_for(
    graph: ModelGraph, spec: InverseSpec, inverses: list[InverseGraph]
) -> tuple[onnx.ModelProto, list[str]]:
    """(the forward graph, its outputs) for ``inverses`` built from ``spec`` (or from its stages):
    the host's tensors, and every tensor an inverse reads, computed with the switches and masks
    those inverses ask of the forward."""
    reads = (t for inverse in inverses for t in inverse.forward_tensors)
    outputs = list(dict.fromkeys([*host_tensors(graph, spec), *reads]))
    switches = {node: tensor for inverse in inverses for node, tensor in inverse.switches.items()}
    masks = {name: tensor for inverse in inverses for name, tensor in inverse.masks.items()}
    return forward_model(graph, outputs, switches, graph.shapes(spec.input_shape), masks), outputs


def channel_strengths(activation: np.ndarray) -> np.ndarray:
    """Each channel's strongest activation: the map's maximum (the value for a 1-D layer)."""
    per_channel = activation[0]
    return per_channel.reshape(per_channel.shape[0], -1).max(axis=1)


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
