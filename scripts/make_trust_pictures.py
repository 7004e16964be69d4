"""Make the pictures and tables of ``docs/commands/sanity.md`` and ``docs/commands/faithfulness.md``.

- the sanity grid of the trained demo model (``models/demo.onnx``, ``scripts/train_demo.py``) on
  two of its own shapes, and of EfficientNet-Lite0 (``scripts/build_efficientnet_lite0.py``) on
  chelsea, with Spearman's ρ per step printed as a Markdown table;
- the deletion and insertion AUCs of every cam and attribute method and ``random`` on
  EfficientNet-Lite0 for three CC0 photos (chelsea, coffee, scikit-image's astronaut), printed
  as a Markdown table, with the curves of chelsea as a picture.

Pictures are written as JPEG (quality 60) under ``docs/images/``.

Usage::

    python scripts/build_efficientnet_lite0.py
    python scripts/make_trust_pictures.py            # --part sanity|faithfulness|all
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

import onnxviz
from onnxviz.analyses.faithfulness.maps import METHODS

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "models" / "images"
PICTURES = ROOT / "docs" / "images"
DEMO = ROOT / "models" / "demo.onnx"
LITE0 = ROOT / "models" / "efficientnet_lite0.onnx"
SANITY_METHODS = ["gradcam", "saliency", "guided", "deconvnet", "ig"]
CHEAPER = {"steps": 16, "samples": 16, "masks": 1000}  # ig, the noise tunnel, rise: fewer points


def save_jpeg(rgb: np.ndarray, name: str) -> None:
    path = PICTURES / name
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 60])
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size // 1024} KB)", flush=True)


def spearman_table(checked) -> str:
    """Spearman's ρ of the absolute maps, mean over the images, per method and step."""
    layers = [layer.node for layer in checked.layers]
    head = "| step | randomised down to | " + " | ".join(checked.spearman) + " |"
    lines = [head, "| ---: | --- |" + " ---: |" * len(checked.spearman)]
    for step, layer in enumerate(layers):
        values = [
            np.nanmean(checked.spearman[m][:, step]) if np.isfinite(checked.spearman[m][:, step]).any() else np.nan
            for m in checked.spearman
        ]
        cells = " | ".join("–" if np.isnan(v) else f"{v:.2f}" for v in values)
        lines.append(f"| {step + 1} | `{layer}` | {cells} |")
    return "\n".join(lines)


def sanity_pictures() -> None:
    started = time.perf_counter()
    demo = onnxviz.load(DEMO, device="cpu")
    checked = demo.sanity(
        [IMAGES / "triangle.png", IMAGES / "circle.png"], method=[*SANITY_METHODS, "smoothgrad"], seed=0
    )
    save_jpeg(checked.figure(), "sanity_demo.jpg")
    print(spearman_table(checked), f"\n(demo: {time.perf_counter() - started:.0f} s)\n", flush=True)
    started = time.perf_counter()
    lite0 = onnxviz.load(LITE0, device="cpu")
    checked = lite0.sanity([IMAGES / "chelsea.png"], method=SANITY_METHODS, seed=0, steps=16)
    save_jpeg(checked.figure(), "sanity_efficientnet_chelsea.jpg")
    print(spearman_table(checked), f"\n(EfficientNet-Lite0: {time.perf_counter() - started:.0f} s)\n", flush=True)


def faithfulness_tables() -> None:
    from skimage import data

    astronaut = ROOT / "benchmarks" / "out" / "astronaut.png"
    astronaut.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(astronaut), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    photos = [IMAGES / "chelsea.png", IMAGES / "coffee.png", astronaut]
    lite0 = onnxviz.load(LITE0, device="cpu")
    methods = [*METHODS, "random"]
    found = {}
    for metric in ("deletion", "insertion"):
        started = time.perf_counter()
        found[metric] = lite0.faithfulness(
            photos,
            method=methods,
            metric=metric,
            steps=100,
            ig_steps=16,
            **{k: v for k, v in CHEAPER.items() if k != "steps"},
        )
        print(f"{metric}: {time.perf_counter() - started:.0f} s", flush=True)
    names = [p.stem for p in photos]
    print(
        "| method | "
        + " | ".join(f"deletion {n}" for n in names)
        + " | "
        + " | ".join(f"insertion {n}" for n in names)
        + " |"
    )
    print("| --- |" + " ---: |" * (2 * len(names)))
    for method in methods:
        cells = [f"{v:.3f}" for v in found["deletion"].aucs[method]] + [
            f"{v:.3f}" for v in found["insertion"].aucs[method]
        ]
        print(f"| {method} | " + " | ".join(cells) + " |")
    targets = [f"{n}: class {t.class_index}" for n, t in zip(names, found["deletion"].targets, strict=True)]
    print("targets:", ", ".join(targets))
    for metric in ("deletion", "insertion"):
        chosen = ["gradcam", "scorecam", "ig", "guided", "deconvnet", "rise", "random"]
        curves = found[metric]
        curves.curves = {m: curves.curves[m][:1] for m in chosen}
        curves.aucs = {m: curves.aucs[m][:1] for m in chosen}
        curves.images, curves.targets = curves.images[:1], curves.targets[:1]
        save_jpeg(curves.figure(), f"faithfulness_{metric}_chelsea.jpg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("sanity", "faithfulness", "all"), default="all")
    part = parser.parse_args().part
    if part in ("sanity", "all"):
        sanity_pictures()
    if part in ("faithfulness", "all"):
        faithfulness_tables()


if __name__ == "__main__":
    main()
