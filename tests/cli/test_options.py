"""The shared options: declared once, offered by every command that loads a model, and used."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import onnx
import pytest
import typer
from onnx import helper

import onnxviz
from onnxviz import cli
from onnxviz.analyses.maximize.options import MaximizeOptions
from onnxviz.cli.options import ModelOptions, expand
from tests.cli_helpers import run_cli
from tests.helpers import FIXTURES, make_model

DEMO = FIXTURES.parents[2] / "models" / "demo.onnx"
# The flags README.md promises on every command that takes a model.
SHARED_FLAGS = {"--device", "--size", "--scale", "--mean", "--std", "--bgr", "--layout", "--preset", "--custom-ops"}
# Each command with the least it needs besides the shared options ({model}, {picture}, {folder}).
COMMANDS = {
    "layers": ["{model}"],
    "check": ["{model}"],
    "invert": ["{model}", "--node", "conv1", "--out-dir", "{folder}"],
    "filters": ["{model}", "--node", "conv1", "--out", "{folder}/f.png"],
    "project": ["{model}", "{picture}", "--node", "conv1", "--json"],
    "occlude": ["{model}", "{picture}", "--json"],
    "activations": ["{model}", "{picture}", "--node", "conv1", "--json"],
    "cam": ["{model}", "{picture}", "--json"],
    "attribute": ["{model}", "{picture}", "--method", "saliency", "--json"],
    "explain": ["{model}", "{picture}", "--methods", "gradcam,saliency", "--json"],
    "topk": ["{model}", "{folder}", "--node", "conv1", "--json"],
    "report": ["{model}", "{picture}", "--out", "{folder}/r.html"],
    "compare": ["{model}", "{model}", "{picture}", "--json"],
    "invariance": ["{model}", "{picture}", "--transform", "rotate", "--json"],
    "maximize": ["{model}", "--node", "fc2", "--channel", "1", "--steps", "2", "--json"],
    "correspondence": ["{model}", "--masks", "{folder}/masks.json", "--json"],
    "evolution": ["{model}", "--images", "{folder}", "--node", "conv1", "--json"],
    "embed": ["{model}", "{folder}", "--method", "pca", "--json"],
    "serve": ["{model}", "--port", "0"],
    "export": ["{model}", "--method", "gradcam", "--out", "{folder}/e.onnx", "--json"],
    "sanity": ["{model}", "{picture}", "--method", "saliency", "--json"],
    "faithfulness": ["{model}", "{picture}", "--method", "random", "--steps", "2", "--json"],
}


def _options(command: str) -> dict:
    group = typer.main.get_command(cli.app)
    return {name: p for p in group.commands[command].params for name in (*p.opts, *p.secondary_opts)}


def test_every_command_that_loads_a_model_offers_the_shared_options_with_one_help_text() -> None:
    assert set(typer.main.get_command(cli.app).commands) == set(COMMANDS)
    declared = {f.name for f in fields(ModelOptions)}
    helps = {}
    for command in COMMANDS:
        options = _options(command)
        assert SHARED_FLAGS | {"--rgb"} <= set(options), command
        for flag in SHARED_FLAGS:
            assert options[flag].name in declared
            helps.setdefault(flag, options[flag].help)
            assert options[flag].help == helps[flag], (command, flag)


def _args(command: str, picture: Path, folder: Path) -> list[str]:
    values = {"{model}": str(DEMO), "{picture}": str(picture), "{folder}": str(folder)}
    return [values.get(a, a.replace("{folder}", str(folder))) for a in COMMANDS[command]]


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(
    ("option", "needle"),
    [(("--preset", "keras"), "imagenet"), (("--device", "tpu"), "auto"), (("--size", "9"), "--size")],
)
def test_every_command_uses_the_shared_options(capsys, tmp_path, picture, command, option, needle) -> None:
    """A bad value of a shared option stops each command at loading: the option reaches the loader."""
    code, _, err = run_cli(capsys, command, *_args(command, picture, tmp_path), *option)
    assert code == 2 and needle in err, err
    assert not list(tmp_path.iterdir())


def test_preprocessing_options_change_what_the_command_computes(capsys, tmp_path, picture) -> None:
    options = ["--scale", "0.5", "--mean", "0.1,0.2,0.3", "--std", "0.9", "--bgr", "--layout", "nchw"]
    raw = tmp_path / "p.npy"
    code, _, err = run_cli(capsys, "project", DEMO, picture, "--node", "conv2", "--raw", raw, *options)
    assert code == 0, err
    model = onnxviz.load(DEMO, device="cpu", scale=0.5, mean=(0.1, 0.2, 0.3), std=(0.9,), order="bgr", layout="nchw")
    expected = model.project(picture, node="conv2").projections
    default = onnxviz.load(DEMO, device="cpu").project(picture, node="conv2").projections
    np.testing.assert_allclose(np.load(raw), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(expected, default, rtol=1e-3)


@pytest.mark.parametrize("where", ["global", "command"])
def test_custom_ops_library_that_does_not_load_is_named_in_either_place(capsys, tmp_path, where) -> None:
    library = tmp_path / "not_a_library.so"
    library.write_bytes(b"nothing")
    before = ["--custom-ops", library] if where == "global" else []
    after = ["--custom-ops", library] if where == "command" else []
    code, _, err = run_cli(capsys, *before, "layers", DEMO, *after)
    assert code == 2 and "not_a_library.so" in err


def _custom_op_model() -> onnx.ModelProto:
    """conv → relu, plus ``ai.onnx.contrib::Inverse`` (onnxruntime-extensions) of [[2]] added to it."""
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Inverse", ["m"], ["inverse"], domain="ai.onnx.contrib", name="custom"),
        helper.make_node("Add", ["r", "inverse"], ["y"], name="bias"),
    ]
    model = make_model(nodes, (1, 3, 8, 8), "y", {"w": w, "m": np.array([[2.0]], np.float32)})
    model.opset_import.append(helper.make_opsetid("ai.onnx.contrib", 1))
    return model


def test_custom_ops_given_before_or_after_the_command_are_registered(capsys, tmp_path) -> None:
    extensions = pytest.importorskip("onnxruntime_extensions")
    path = tmp_path / "custom.onnx"
    onnx.save(_custom_op_model(), path)
    code, _, err = run_cli(capsys, "layers", path, "--json")
    assert code == 1 and "ai.onnx.contrib::Inverse" in err
    library = extensions.get_library_path()
    results = []
    for args in (
        ["--custom-ops", library, "layers", path, "--json"],
        ["layers", path, "--json", "--custom-ops", library],
    ):
        code, out, err = run_cli(capsys, *args)
        assert code == 0, err
        results.append(json.loads(out))
    assert results[0] == results[1] and [layer["alias"] for layer in results[0]["layers"]][:1] == ["conv1"]


def test_expand_replaces_the_bundle_by_its_fields_and_builds_it_back() -> None:
    received = {}

    def command(model: Path, options: ModelOptions, top: int = 4) -> None:
        received.update(model=model, options=options, top=top)

    signature, call, _ = expand(command)
    assert list(signature.parameters) == ["model", "top", *(f.name for f in fields(ModelOptions))]
    values = {name: p.default for name, p in signature.parameters.items() if name != "model"}
    call(values | {"model": Path("m.onnx"), "device": "cpu", "custom_ops": [Path("b.so")]}, [Path("a.so")])
    assert received == {
        "model": Path("m.onnx"),
        "options": ModelOptions(device="cpu", custom_ops=[Path("a.so"), Path("b.so")]),
        "top": 4,
    }


def test_expand_leaves_a_command_without_the_bundle_as_it_is() -> None:
    def command(folder: Path, k: int = 9) -> tuple:
        return folder, k

    signature, call, _ = expand(command)
    assert list(signature.parameters) == ["folder", "k"]
    assert call({"folder": Path("x"), "k": 3}, [Path("ignored.so")]) == (Path("x"), 3)


def test_a_tuple_option_is_read_from_comma_separated_or_repeated_texts() -> None:
    received = {}

    def command(settings: MaximizeOptions) -> None:
        received["settings"] = settings

    signature, call, _ = expand(command)
    values = {name: p.default for name, p in signature.parameters.items()}
    call(values | {"node": "conv1", "zoom": ["0.9", "1.1"], "weights": ["1,-0.5"]}, [])
    assert received["settings"].zoom == (0.9, 1.1) and received["settings"].weights == (1.0, -0.5)
    call(values | {"node": "conv1"}, [])
    assert received["settings"].zoom == MaximizeOptions(node="conv1").zoom
