"""How each command is called on a fuzz case, read from the command itself.

The commands are those of the CLI app as it is built now (written ones and those generated from the
analyses registry), so a command added anywhere joins the fuzz without an edit here. A command's
argv is made from its click parameters: its arguments (``MODEL``, ``IMAGE``, ``IMAGES…``,
``IMAGE_DIR``, ``CHECKPOINTS…``) from the case, its required options from ``REQUIRED`` or from the
choices its analysis declares, its outputs into the case's ``out`` folder, and the options that
make a run long (steps, samples) set small so a case takes a fraction of a second. A command with an
argument or a required option that none of these fills has no recipe, and
``test_every_command_has_a_recipe`` fails naming it: add the missing entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer.main
from hypothesis import strategies as st

from onnxviz.analyses.registry import ANALYSES
from onnxviz.cli import app
from onnxviz.core.options import declared, flag_of


@dataclass(frozen=True)
class Case:
    """The files of one fuzz case; ``out`` is where outputs go (empty before the run)."""

    model: Path
    intact: Path  # the source model unchanged: a pair's other side, a second checkpoint
    image: Path
    good_picture: Path
    pictures: Path  # a folder: the case's image, a good picture and a file that is no picture
    masks: Path
    node: str
    busy_port: int  # a port a socket of the test holds: a server can load, then must not block
    out: Path


def commands() -> dict[str, object]:
    """Every command of the app, by name, as click sees it (built now: generated ones included)."""
    return dict(typer.main.get_command(app).commands)


ARGUMENTS: dict[str, Callable[[Case], list[object]]] = {
    "model": lambda c: [c.model],
    "model_a": lambda c: [c.model],
    "model_b": lambda c: [c.intact],
    "image": lambda c: [c.image],
    "images": lambda c: [c.image, c.good_picture],
    "image_dir": lambda c: [c.pictures],
    "checkpoints": lambda c: [c.model, c.intact],
}
REQUIRED: dict[str, Callable[[Case], object]] = {
    "--node": lambda c: c.node,
    "--masks": lambda c: c.masks,
    "--images": lambda c: c.pictures,
    "--method": lambda c: "gradcam",  # export's, free text so that it can say why a method does not export
}
# Optional options that make a run long, set small (a flag not given here keeps its default).
QUICK = {
    "--steps": "2",
    "--ig-steps": "2",
    "--samples": "2",
    "--masks": "8",
    "--k": "2",
    "--random": "1",
    "--patch": "16",
    "--stride": "16",
    "--amounts": "0,5",
    "--perplexity": "2",
    "--top": "2",
}
# What a command must be given so that it ends: a server loads, then meets a port in use.
OWN = {"serve": lambda c: ["--port", c.busy_port, "--images", c.pictures]}
# Shared flags that a case may set to a value the model cannot take, to fuzz the checks of each.
NOISE = (
    ("--mean", "1,2"),
    ("--std", "0"),
    ("--scale", "nan"),
    ("--preset", "caffe"),
    ("--layout", "nhwc"),
    ("--size", "16,16"),
    ("--node", "no_such_layer"),
    ("--channel", "999"),
    ("--target", "5000"),
    ("--target-class", "-1"),
    ("--batch-size", "1"),
    ("--resume", None),
)


def _flags(command) -> dict[str, object]:
    return {p.opts[0]: p for p in command.params if p.param_type_name == "option"}


def _output(case: Case, name: str, flag: str, help_text: str) -> Path:
    """Where an output option writes: a file named by what its help says it is, or a folder."""
    text = help_text.lower()
    if flag == "--out-dir" or "folder" in text or "directory" in text:
        return case.out / f"{name}_{flag.strip('-')}"
    suffix = next((s for s in (".onnx", ".html", ".npy", ".json") if s.strip(".") in text), ".png")
    if flag in ("--raw", "--raw-layer", "--codes"):
        suffix = ".npy"
    return case.out / f"{name}_{flag.strip('-')}{suffix}"


OUTPUT_FLAGS = ("--out", "--raw", "--raw-layer", "--codes", "--map", "--out-dir")


def _choices(name: str) -> dict[str, tuple]:
    analysis = ANALYSES.get(name)
    if analysis is None:
        return {}
    return {flag_of(f, spec): spec.choices for f, spec in declared(analysis.options) if spec.choices and spec.cli}


def missing(name: str, command) -> list[str]:
    """What no recipe fills for ``command``: arguments and required options (empty: it has a recipe)."""
    gaps = [f"argument {p.name}" for p in command.params if p.param_type_name == "argument" and p.name not in ARGUMENTS]
    choices = _choices(name)
    for flag, param in _flags(command).items():
        if param.required and flag not in REQUIRED and flag not in OUTPUT_FLAGS and flag not in choices:
            gaps.append(f"required option {flag}")
    return gaps


@st.composite
def argv(draw: st.DrawFn, name: str, command, case: Case) -> list[str]:
    """The command line of ``command`` on ``case``: what it needs, small costs, drawn choices and noise."""
    flags = _flags(command)
    words: list[object] = [name]
    for param in command.params:
        if param.param_type_name == "argument":
            words += ARGUMENTS[param.name](case)
    choices = _choices(name)
    for flag, param in flags.items():
        if flag in OUTPUT_FLAGS and (param.required or draw(st.booleans())):
            words += [flag, _output(case, name, flag, param.help or "")]
        elif param.required and flag in REQUIRED:
            words += [flag, REQUIRED[flag](case)]
        elif flag in choices and (param.required or draw(st.integers(0, 3)) == 0):
            words += [flag, draw(st.sampled_from(choices[flag]))]
        elif flag in QUICK and not param.required:
            words += [flag, QUICK[flag]]
    if "--json" in flags and draw(st.booleans()):
        words.append("--json")
    if "--device" in flags:
        words += ["--device", "cpu"]
    words += OWN.get(name, lambda c: [])(case)
    for flag, value in draw(st.lists(st.sampled_from(NOISE), max_size=2, unique=True)):
        if flag in flags:
            words += [flag] if value is None else [flag, value]
    return [str(w) for w in words]
