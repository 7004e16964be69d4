"""Reducer laws, by property: any cut of the images into shards, any batches within them and any
order or tree of merges give the brute-force answer, ties included."""

from __future__ import annotations

import functools
import itertools
import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from onnxviz.data.reducers import CheckpointWinners, Codes, Evaluated, TopK

CHANNELS = [0, 2]


@st.composite
def scans(draw):
    """Feature maps with few distinct values (many ties, within and across images), names in a
    shuffled order, a cut into shards, a batch size and a merge order."""
    count = draw(st.integers(1, 14))
    values = draw(st.lists(st.integers(-2, 2), min_size=count * 3 * 2 * 3, max_size=count * 3 * 2 * 3))
    maps = np.asarray(values, np.float32).reshape(count, 3, 2, 3)
    names = [f"img_{i:02d}.png" for i in draw(st.permutations(range(count)))]
    cuts = sorted(draw(st.sets(st.integers(1, max(1, count - 1)), max_size=count)) if count > 1 else [])
    skipped = draw(st.lists(st.sampled_from(["bad_a.png", "bad_b.png", "bad_c.png"]), unique=True))
    return maps, names, cuts, skipped, draw(st.integers(1, 4)), draw(st.randoms(use_true_random=False))


def brute_force_topk(maps: np.ndarray, names: list[str], k: int) -> dict[int, list[tuple]]:
    """Per channel: every image's first row-major maximum, sorted by (-value, name, y, x), k kept."""
    expected = {}
    for channel in CHANNELS:
        rows = []
        for i, name in enumerate(names):
            plane = maps[i, channel]
            y, x = divmod(int(np.argmax(plane)), plane.shape[1])
            rows.append((-float(plane[y, x]), name, y, x))
        expected[channel] = sorted(rows)[:k]
    return expected


def partials(reducer_for, maps, names, cuts, skipped, batch, checkpoint=""):
    """One reducer per shard; each shard fed in batches; the unreadable files go to the first shard."""
    bounds = [0, *cuts, len(names)]
    out = []
    for s, (start, stop) in enumerate(itertools.pairwise(bounds)):
        reducer = reducer_for()
        for b in range(start, stop, batch):
            end = min(stop, b + batch)
            bad = skipped if s == 0 and b == start else []
            reducer.update(Evaluated(names[b:end], maps[b:end], bad, None, checkpoint))
        out.append(reducer)
    return out


def merge_randomly(parts: list, rng: random.Random):
    """Merge in a random tree: pick two neighbours-or-not at random until one is left."""
    parts = list(parts)
    while len(parts) > 1:
        i, j = rng.sample(range(len(parts)), 2)
        merged = parts[i].merge(parts[j])
        parts = [p for n, p in enumerate(parts) if n not in (i, j)] + [merged]
    return parts[0]


@settings(max_examples=150, deadline=None)
@given(scans(), st.integers(1, 6))
def test_topk_equals_brute_force_for_any_sharding_and_merge_order(scan, k) -> None:
    maps, names, cuts, skipped, batch, rng = scan
    parts = partials(functools.partial(TopK.empty, "conv", CHANNELS, k), maps, names, cuts, skipped, batch)
    merged = merge_randomly(parts, rng)
    got = {c: [e.key for e in entries] for c, entries in merged.result().items()}
    assert got == brute_force_topk(maps, names, k)
    assert merged.skipped == sorted(skipped)
    assert merged.processed == len(names) + len(skipped)
    in_order = functools.reduce(TopK.merge, parts)
    assert merged.to_json() == in_order.to_json()


@settings(max_examples=100, deadline=None)
@given(scans())
def test_topk_state_round_trips_exactly(scan) -> None:
    maps, names, _, skipped, batch, _ = scan
    empty = functools.partial(TopK.empty, "conv", CHANNELS, 3)
    part = partials(empty, maps * np.float32(0.1), names, [], skipped, batch)
    restored = TopK.from_state(part[0].state())
    assert restored.state() == part[0].state()
    assert [e.key for e in restored.entries[0]] == [e.key for e in part[0].entries[0]]


@settings(max_examples=100, deadline=None)
@given(scans())
def test_codes_are_in_path_order_for_any_sharding_and_merge_order(scan) -> None:
    maps, names, cuts, skipped, batch, rng = scan
    merged = merge_randomly(partials(Codes, maps, names, cuts, skipped, batch), rng)
    got_names, codes, _ = merged.result()
    order = sorted(range(len(names)), key=names.__getitem__)
    assert got_names == [names[i] for i in order]
    np.testing.assert_array_equal(codes, maps[order].reshape(len(names), -1))
    assert merged.skipped == sorted(skipped)


@settings(max_examples=60, deadline=None)
@given(scans(), scans())
def test_checkpoint_winners_merge_per_checkpoint(first, second) -> None:
    """Two checkpoints' batches, shards interleaved and merged at random: each checkpoint's winners
    are its own brute force, untouched by the other's."""
    (maps_a, names_a, cuts_a, _, batch, rng), (maps_b, names_b, cuts_b, _, _, _) = first, second
    reducer = functools.partial(CheckpointWinners, "conv", CHANNELS, 2)
    parts = partials(reducer, maps_a, names_a, cuts_a, [], batch, "epoch1")
    parts += partials(reducer, maps_b, names_b, cuts_b, [], batch, "epoch2")
    merged = merge_randomly(parts, rng).result()
    assert list(merged) == ["epoch1", "epoch2"]
    for label, maps, names in (("epoch1", maps_a, names_a), ("epoch2", maps_b, names_b)):
        got = {c: [e.key for e in entries] for c, entries in merged[label].items()}
        assert got == brute_force_topk(maps, names, 2)
