"""The top-k reducer: one entry per image and channel, and two scans merge into the scan of both."""

from __future__ import annotations

import numpy as np
import pytest

from onnxviz.data.reducers import Evaluated, TopK
from onnxviz.errors import UsageError


def _scan(names: list[str], maps: np.ndarray, channels: list[int], k: int, size: int) -> TopK:
    state = TopK.empty("conv", channels, k)
    for start in range(0, len(names), size):
        state.update(Evaluated(names[start : start + size], maps[start : start + size], []))
    return state


def test_merging_the_scans_of_two_halves_gives_the_scan_of_the_whole() -> None:
    rng = np.random.default_rng(2)
    maps = rng.standard_normal((11, 4, 3, 5)).astype(np.float32)
    maps[7] = maps[2]  # an exact tie between two images: broken by path in both orders of merging
    names = [f"img_{i:02d}.npy" for i in range(11)]
    whole = _scan(names, maps, [0, 1, 3], 4, 3)
    first, second = _scan(names[:6], maps[:6], [0, 1, 3], 4, 2), _scan(names[6:], maps[6:], [0, 1, 3], 4, 5)
    assert first.merge(second).to_json() == whole.to_json() == second.merge(first).to_json()
    for channel in (0, 1, 3):
        strongest = maps[:, channel].reshape(11, -1).max(axis=1)
        expected = sorted(range(11), key=lambda i: (-strongest[i], names[i]))[:4]
        assert [e.image for e in whole.entries[channel]] == [names[i] for i in expected]


def test_scans_of_different_layers_or_k_do_not_merge() -> None:
    a = TopK("conv", [0], 3, {0: []})
    with pytest.raises(UsageError, match="Cannot merge"):
        a.merge(TopK("conv", [0], 4, {0: []}))
    with pytest.raises(UsageError, match="Cannot merge"):
        a.merge(TopK("pool", [0], 3, {0: []}))
