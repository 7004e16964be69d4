"""Small HTML index pages written beside pictures (the top-k folder's ``index.html``).

Every value goes through ``markup.fill``, which escapes it: image names come from the user's
folder and may hold anything.
"""

from __future__ import annotations

from onnxviz.render.markup import fill, join, url


def topk_index(
    node: str, k: int, images: int, skipped: int, channels: list[tuple[int, str, list[tuple[str, float]]]]
) -> str:
    """``channels``: (channel, its PNG's file name, [(image, activation)…] strongest first)."""
    rows = join(
        (
            fill(
                '<h2>channel {channel}</h2><img src="{src}" alt="channel {channel}"><p>{winners}</p>',
                channel=channel,
                src=url(png),
                winners=", ".join(f"{image} ({activation:.3g})" for image, activation in winners),
            )
            for channel, png, winners in channels
        ),
        "\n",
    )
    return fill(
        "<!doctype html><html><head><meta charset='utf-8'><title>top-{k} of {node}</title></head><body>"
        "<h1>top {k} activations of {node}</h1><p>{images} images scanned, {skipped} unreadable skipped</p>"
        "{rows}</body></html>",
        k=k,
        node=node,
        images=images,
        skipped=skipped,
        rows=rows,
    )
