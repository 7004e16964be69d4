"""Incremental occlusion: recompute only what a patch changes (Nakandala et al., SIGMOD 2019).

An occluded image differs from the original only inside the patch, so each layer's output
differs only inside the patch's projective field. ``plan`` follows that region through the
network (window ops, per-pixel and channel-only ops, residual Adds, channel Concats); ``engine``
recomputes each region for a batch of positions from crops of the cached unoccluded maps, then
hands full maps (cache + pasted region) to the rest of the network once the region covers most
of a map. The scores equal a full recompute's up to float32 round-off.
"""

from onnxviz.runtime.incremental.engine import IncrementalKey, IncrementalOcclusion

__all__ = ["IncrementalKey", "IncrementalOcclusion"]
