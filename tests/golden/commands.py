"""Every command run on the demo model, as the golden-output test and its recorder run them.

The redesign moves code, not numbers: each command's ``--raw`` (or ``--codes``) array and its
``--json`` summary were recorded with ``python -m tests.golden.record`` before the move, and
``test_golden.py`` runs the same command lines and compares. A command line is written once here
so the recorder and the test cannot drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.cli_helpers import invoke
from tests.helpers import DEMO

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "models" / "images"
CHECKPOINTS = ROOT / "models" / "checkpoints"
# Parts in the demo's 64x64 input pixels, on three of its pictures.
MASKS = {
    "images": {
        name: {"centre": [20, 20, 16, 16], "corner": [0, 0, 12, 12]}
        for name in ("chelsea.png", "circle.png", "coffee.png")
    }
}
STORED = Path(__file__).with_name("demo_outputs.npz")
STORED_JSON = Path(__file__).with_name("demo_summaries.json")
# Keys of a summary that measure time or name a temporary file: not part of what a command computes.
VOLATILE = (
    "timings_ms",
    "ms",
    "positions_per_second",
    "seconds",
    "outputs",
    "build_ms",
    "out",
    "raw",
    "png",
    "codes",
    "path",
    "written",
)


@dataclass(frozen=True)
class Run:
    """One command line; ``raw_flag`` names the flag that writes its array (None: JSON only)."""

    name: str
    args: tuple[str, ...]
    raw_flag: str | None = "--raw"


def runs() -> list[Run]:
    chelsea, circle = str(IMAGES / "chelsea.png"), str(IMAGES / "circle.png")
    model = str(DEMO)
    return [
        Run("layers", ("layers", model), None),
        Run("check", ("check", model), None),
        *(
            Run(f"project_{rule}", ("project", model, chelsea, "--node", "conv3", "--top", "3", "--rule", rule))
            for rule in ("deconvnet", "guided", "saliency")
        ),
        Run("project_fc2", ("project", model, circle, "--node", "fc2", "--channel", "2,5", "--rule", "saliency")),
        Run("occlude_class", ("occlude", model, chelsea, "--patch", "16", "--stride", "8")),
        Run(
            "occlude_class3",
            (
                "occlude",
                model,
                circle,
                "--patch",
                "12",
                "--stride",
                "6",
                "--target-class",
                "3",
                "--fill",
                "mean",
                "--full",
            ),
        ),
        Run(
            "occlude_channel",
            ("occlude", model, chelsea, "--patch", "16", "--stride", "8", "--node", "conv2", "--channel", "5"),
        ),
        Run(
            "maximize_pixel",
            (
                "maximize",
                model,
                "--node",
                "conv3",
                "--channel",
                "1,4",
                "--steps",
                "6",
                "--param",
                "pixel",
                "--seed",
                "3",
            ),
        ),
        Run(
            "maximize_fft",
            (
                "maximize",
                model,
                "--node",
                "fc2",
                "--channel",
                "0",
                "--steps",
                "5",
                "--jitter",
                "2",
                "--rotate",
                "5",
                "--seed",
                "1",
            ),
        ),
        Run("embed", ("embed", model, str(IMAGES), "--method", "pca"), "--codes"),
        Run("topk", ("topk", model, str(IMAGES), "--node", "conv2", "--top-channels", "3", "--k", "2"), None),
        Run(
            "invariance", ("invariance", model, chelsea, circle, "--transform", "rotate", "--amounts", "0,30,90"), None
        ),
        Run("correspondence", ("correspondence", model, "--masks", "{masks}", "--random", "2"), None),
        Run(
            "evolution",
            (
                "evolution",
                str(CHECKPOINTS / "epoch1.onnx"),
                str(CHECKPOINTS / "epoch8.onnx"),
                "--images",
                str(IMAGES),
                "--node",
                "conv2",
                "--top-channels",
                "2",
            ),
            None,
        ),
        Run("compare", ("compare", model, model, chelsea, "--occlusion"), None),
    ]


def execute(capsys, run: Run, workdir: Path) -> tuple[dict, np.ndarray | None]:
    """Run ``run`` in-process with ``--json`` (and its array flag): its summary without the
    volatile keys, and its array."""
    masks = workdir / "masks.json"
    masks.write_text(json.dumps({"images": {str(IMAGES / k): v for k, v in MASKS["images"].items()}}))
    args = [*(a.replace("{masks}", str(masks)) for a in run.args), "--json", "--device", "cpu"]
    raw = workdir / f"{run.name}.npy"
    if run.raw_flag:
        args += [run.raw_flag, str(raw)]
    if run.args[0] not in ("layers", "check", "compare", "topk", "embed"):
        args += ["--out", str(workdir / f"{run.name}.png")]
    if run.args[0] in ("topk",):
        args += ["--out", str(workdir / run.name)]
    code, out, err = invoke(capsys, *args)
    assert code == 0, f"{run.name}: exit {code}\n{err}"
    return _stable(json.loads(out)), (np.load(raw) if run.raw_flag else None)


def _stable(value):
    if isinstance(value, dict):
        return {_stable(k): _stable(v) for k, v in value.items() if k not in VOLATILE}  # keys: image paths too
    if isinstance(value, list):
        return [_stable(v) for v in value]
    if isinstance(value, str) and ("/tmp" in value or str(ROOT) in value):
        return Path(value).name
    return value
