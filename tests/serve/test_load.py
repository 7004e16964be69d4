"""The viewer under load: the real ``onnxviz serve`` in a subprocess, 8 concurrent local clients.

Clicks, activation grids, uploads, an occlusion and refused requests, mixed: no answer is a 5xx or
other than expected, and the 95th percentile of a click (the projection's JSON and PNG, seen from
the client over loopback) is printed. Memory after 1,000 requests stays within 10 % of memory after
100 (the viewer's kept results and uploads are bounded; a leak would grow with the count): a
``slow`` test. ``benchmarks/bench_serve.py --load`` reports the same numbers.
"""

from __future__ import annotations

import pytest

from tests.serve.load import DEMO, drive, rss, served

PICTURES = DEMO.parent / "images"


def test_200_requests_from_8_clients_mixing_clicks_uploads_and_an_occlusion_get_no_5xx() -> None:
    with served(PICTURES) as (base, _):
        tally = drive(base, 200, clients=8)
    assert len(tally.statuses) >= 200 and not tally.unexpected, tally.unexpected[:5]
    assert not [s for s in tally.statuses if s >= 500]
    assert {200, 400} <= set(tally.statuses) and len(tally.clicks) >= 50
    assert tally.kinds["/api/upload"] >= 10 and tally.kinds["/api/occlude"] >= 1
    print(f"p95 click {tally.p95_click_ms():.1f} ms over {len(tally.clicks)} clicks (8 clients, loopback)")


@pytest.mark.slow
def test_memory_after_1000_requests_is_within_10_percent_of_after_100() -> None:
    with served(PICTURES) as (base, process):
        first = drive(base, 100, clients=8)
        after_100 = rss(process.pid)
        rest = drive(base, 900, clients=8, start=len(first.statuses))
        after_1000 = rss(process.pid)
    assert not first.unexpected and not rest.unexpected, (first.unexpected + rest.unexpected)[:5]
    assert after_1000 <= 1.10 * after_100, f"{after_100 / 2**20:.0f} MiB after 100, {after_1000 / 2**20:.0f} after 1000"
    print(f"server RSS {after_100 / 2**20:.0f} MiB after 100 requests, {after_1000 / 2**20:.0f} MiB after 1000")
