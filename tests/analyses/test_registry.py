"""The registry is the one list of analyses: each is a CLI command, a facade call and, where it
applies, in the viewer's menu; a registered analysis missing from any of them fails here. Written
wiring and the wiring generated from an entry are checked alike, on the app, model and menu a user
gets."""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field

import numpy as np
import pytest
import typer

from onnxviz import api, cli
from onnxviz.analyses.registry import ANALYSES, Analysis, Subject
from onnxviz.core.options import Options, declared, flag_of, option
from onnxviz.core.result import Result
from onnxviz.serve.app import Endpoints
from onnxviz.serve.viewer import menu
from tests.cli_helpers import run_cli
from tests.helpers import DEMO

# Commands that are not analyses of the registry: the server itself.
NOT_REGISTERED = {"serve"}


def commands() -> dict:
    return typer.main.get_command(cli.app).commands  # type: ignore[attr-defined]


def viewer_routes() -> set[str]:
    return {route.path for route in Endpoints(viewer=None).routes()}  # type: ignore[arg-type]


def facade(analysis: Analysis, model: api.Model):
    """The facade's call for ``analysis``: a method of a loaded model, or for several models an ``api`` function."""
    owner = api if analysis.subject in (Subject.CHECKPOINTS, Subject.PAIR) else model
    return getattr(owner, analysis.name, None)


def wiring_problems(analyses: dict[str, Analysis], model: api.Model) -> list[str]:
    """What is missing for each registered analysis: its command, its flags, its facade call or
    its keywords, its entry in the viewer's menu."""
    problems = []
    found, offered = commands(), {entry["name"] for entry in menu()}
    for name, analysis in analyses.items():
        command = found.get(name)
        if command is None:
            problems.append(f"{name}: no CLI command")
        else:
            typed = {opt for param in command.params for opt in [*param.opts, *param.secondary_opts]}
            for f, spec in declared(analysis.options):
                wanted = {flag_of(f, spec), *spec.aliases}
                if spec.cli and not wanted <= typed:
                    problems.append(f"{name}: the CLI lacks {sorted(wanted - typed)}")
        call = facade(analysis, model)
        if call is None:
            problems.append(f"{name}: no facade call")
        else:
            parameters = inspect.signature(call).parameters
            keywords = {p.name for p in parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}
            missing = {f.name for f, _ in declared(analysis.options)} - keywords
            if missing:
                problems.append(f"{name}: the facade lacks {sorted(missing)}")
        if analysis.viewer and name not in offered:
            problems.append(f"{name}: not in the viewer")
    return problems


def test_every_registered_analysis_is_a_command_a_facade_call_and_in_the_viewer(demo_model) -> None:
    assert wiring_problems(ANALYSES, demo_model) == []
    assert {"/api/analyses", "/api/run/{name}", "/api/run/{name}.png"} <= viewer_routes()


def test_every_command_is_a_registered_analysis_or_named_as_not_one() -> None:
    assert set(commands()) - NOT_REGISTERED == set(ANALYSES)


@dataclass(frozen=True)
class ToyOptions(Options):
    strength: float = field(default=1.0, metadata=option("How strong.", min=0))


def test_an_analysis_not_in_the_registry_is_reported_everywhere_it_is_missing(demo_model) -> None:
    toy = Analysis("toy", ToyOptions, lambda model, image, options: None, Subject.IMAGE, viewer=True)
    problems = wiring_problems({"toy": toy}, demo_model)
    assert problems == ["toy: no CLI command", "toy: no facade call", "toy: not in the viewer"]


@pytest.mark.parametrize("subject", list(Subject))
def test_an_analysis_registered_alone_is_wired_everywhere_whatever_it_reads(subject, demo_model, monkeypatch) -> None:
    viewer = subject in (Subject.IMAGE, Subject.MODEL)
    toy = Analysis("toy", ToyOptions, lambda *given: None, subject, viewer=viewer)
    monkeypatch.setitem(ANALYSES, "toy", toy)
    assert wiring_problems({"toy": toy}, demo_model) == []
    arguments = [p.name for p in commands()["toy"].params if isinstance(p, typer.core.TyperArgument)]
    special = {
        Subject.MODEL: ["model"],
        Subject.CHECKPOINTS: ["checkpoints"],
        Subject.PAIR: ["model_a", "model_b", "images"],
    }
    assert arguments == special.get(subject, ["model", subject.value])
    assert ("toy" in dir(demo_model)) is (subject not in (Subject.CHECKPOINTS, Subject.PAIR))


def test_an_analysis_for_the_viewer_that_reads_a_folder_is_reported_missing_from_it(demo_model, monkeypatch) -> None:
    toy = Analysis("toy", ToyOptions, lambda model, folder, options: None, Subject.FOLDER, viewer=True)
    monkeypatch.setitem(ANALYSES, "toy", toy)
    assert wiring_problems({"toy": toy}, demo_model) == ["toy: not in the viewer"]


def test_a_command_that_drops_a_flag_is_reported(demo_model) -> None:
    project = ANALYSES["project"]

    @dataclass(frozen=True)
    class Wider(project.options):  # type: ignore[name-defined, misc]
        gamma: float = field(default=1.0, metadata=option("A flag no command declares.", min=0))

    widened = Analysis("project", Wider, project.function, project.subject, viewer=True)
    assert wiring_problems({"project": widened}, demo_model) == [
        "project: the CLI lacks ['--gamma']",
        "project: the facade lacks ['gamma']",
    ]


def test_facade_arguments_after_the_subject_are_keyword_only(demo_model) -> None:
    for analysis in ANALYSES.values():
        parameters = list(inspect.signature(facade(analysis, demo_model)).parameters.values())
        leading = [p.name for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        several = (["checkpoints"], ["model_a", "model_b", "images"])
        assert leading in ([], [parameters[0].name], *several), (analysis.name, leading)


@dataclass
class Agreement(Result):
    """What the pair toy finds: both models' top-1 class per image."""

    tops: list[tuple[int, int]]

    def figure(self) -> np.ndarray:
        return np.zeros((4, 4, 3), np.uint8)

    def summary(self) -> dict:
        return {"tops": [list(pair) for pair in self.tops]}


def agreement(pair, images, options: ToyOptions, progress=None) -> Agreement:
    """Each image's top-1 class under both models of the pair."""
    tops = [tuple(int(np.argmax(m.project(i, node="fc2", rule="saliency").activations)) for m in pair) for i in images]
    return Agreement(tops)


def test_a_generated_command_and_facade_call_for_a_pair_of_models_load_both_and_run(monkeypatch, capsys) -> None:
    monkeypatch.setitem(ANALYSES, "agree", Analysis("agree", ToyOptions, agreement, Subject.PAIR, progress=True))
    picture = str(DEMO.parent / "images" / "circle.png")
    code, out, err = run_cli(capsys, "agree", DEMO, DEMO, picture, picture, "--json", "--device", "cpu")
    assert code == 0, err
    expected = api.compare(DEMO, DEMO, [picture]).summary()["images"][0]["top1_a"]
    assert json.loads(out)["tops"] == [[expected, expected]] * 2
    assert api.agree(DEMO, DEMO, [picture]).tops == [(expected, expected)]
