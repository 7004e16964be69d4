"""The forward runner: the model cut at any tensors, with a dynamic batch where the model allows.

Every analysis that reads activations (occlusion scores, top-k scans, activation grids, and the
next ones: embeddings, invariance curves) runs the same thing: the forward graph stopped at the
tensors it reads, fed batches of inputs. A model whose exporter hard-coded batch 1 in a Reshape
runs, but one input at a time, and says so in ``note``. Started at a layer (``start``), it is the
rest of the network fed with that layer's values (ablationcam re-scores changed activations
without running the layers before them again).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from onnxviz.graph.model import ModelGraph
from onnxviz.passes.rewrite import cut_between, forward_model
from onnxviz.runtime.sessions import Device, create_session, run_bound, run_outputs

BATCH_ONE_NOTE = "the model only runs with batch 1: positions are evaluated one at a time"


class ForwardRunner:
    """A forward session whose outputs are ``tensors``, in that order, fed the graph's input or,
    where ``start`` names a tensor, that tensor's values (the graph cut there). A cut that a skip
    connection goes around is also fed the values it carries (``side_inputs``, given to ``run``
    for one image and repeated over the batch)."""

    def __init__(
        self,
        graph: ModelGraph,
        tensors: list[str],
        input_shape: tuple[int, ...],
        device: Device,
        start: str | None = None,
    ) -> None:
        shapes = graph.shapes(input_shape)
        if start is None:
            model = forward_model(graph, tensors, {}, shapes)
        else:
            model = cut_between(graph, start, shapes, tensors, sides=True)
        self.session = create_session(model, device, "forward graph")
        self.input_name = graph.input_name if start is None else start
        self.side_inputs = [i.name for i in self.session.get_inputs() if i.name != self.input_name]
        self.device = device
        fed_shape = shapes[self.input_name] if start else input_shape
        batched = self._runs_batched(fed_shape, {t: shapes[t] for t in self.side_inputs})
        self.note = "" if batched else BATCH_ONE_NOTE

    @property
    def batched(self) -> bool:
        return not self.note

    def _runs_batched(self, fed_shape: tuple[int, ...], side_shapes: dict[str, tuple[int, ...]]) -> bool:
        pair = {name: np.zeros((2, *shape[1:]), np.float32) for name, shape in side_shapes.items()}
        pair[self.input_name] = np.zeros((2, *fed_shape[1:]), np.float32)
        try:
            first = self.session.run(None, pair)[0]
        except Exception:  # any refusal of batch 2 means the same: run one input at a time
            return False
        # It may also run but mix the two inputs (a batch hard-coded in a Reshape): then not batched.
        return first.ndim >= 1 and first.shape[0] == 2

    def run(
        self, batch: np.ndarray, what: str = "forward graph", sides: dict[str, np.ndarray] | None = None
    ) -> list[np.ndarray]:
        """The outputs for a host batch, on the host; ``sides``: each side input's value for one
        image (batch 1), the same for every row of the batch."""
        feeds = {name: np.repeat(sides[name], len(batch), axis=0) for name in self.side_inputs} if sides else {}
        feeds[self.input_name] = batch
        return run_outputs(self.session, feeds, what)

    def run_bound(self, batch: np.ndarray | ort.OrtValue, what: str = "forward graph") -> list[ort.OrtValue]:
        """The outputs for a batch that may already be on the device (made by the occluder)."""
        return list(run_bound(self.session, {self.input_name: batch}, self.device, what).values())
