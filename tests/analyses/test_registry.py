"""The registry is the one list of analyses: each is a CLI command, a facade call and, where it
applies, in the viewer; a registered analysis missing from any of them fails here."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import typer

from onnxviz import api, cli
from onnxviz.analyses.registry import ANALYSES, Analysis, Subject
from onnxviz.core.options import Options, declared, flag_of, option
from onnxviz.serve.app import Endpoints

# Commands that are not analyses of the registry: the server itself.
NOT_REGISTERED = {"serve"}


def commands() -> dict:
    return typer.main.get_command(cli.app).commands  # type: ignore[attr-defined]


def viewer_routes() -> set[str]:
    return {route.path for route in Endpoints(viewer=None).routes()}  # type: ignore[arg-type]


def facade(analysis: Analysis):
    """The facade's call for ``analysis``: a ``Model`` method, or for several models an ``api`` function."""
    owner = api if analysis.subject in (Subject.CHECKPOINTS, Subject.PAIR) else api.Model
    return getattr(owner, analysis.name, None)


def wiring_problems(analyses: dict[str, Analysis]) -> list[str]:
    """What is missing for each registered analysis: its command, its flags, its facade call or
    its keywords, its viewer route."""
    problems = []
    found, routes = commands(), viewer_routes()
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
        call = facade(analysis)
        if call is None:
            problems.append(f"{name}: no facade call")
        else:
            parameters = inspect.signature(call).parameters
            keywords = {p.name for p in parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}
            missing = {f.name for f, _ in declared(analysis.options)} - keywords
            if missing:
                problems.append(f"{name}: the facade lacks {sorted(missing)}")
        if analysis.viewer and f"/api/{name}" not in routes:
            problems.append(f"{name}: not in the viewer")
    return problems


def test_every_registered_analysis_is_a_command_a_facade_call_and_in_the_viewer() -> None:
    assert wiring_problems(ANALYSES) == []


def test_every_command_is_a_registered_analysis_or_named_as_not_one() -> None:
    assert set(commands()) - NOT_REGISTERED == set(ANALYSES)


@dataclass(frozen=True)
class ToyOptions(Options):
    strength: float = field(default=1.0, metadata=option("How strong.", min=0))


def test_an_analysis_registered_but_not_wired_is_reported_everywhere_it_is_missing() -> None:
    toy = Analysis("toy", ToyOptions, lambda model, image, options: None, Subject.IMAGE, viewer=True)
    assert wiring_problems({"toy": toy}) == ["toy: no CLI command", "toy: no facade call", "toy: not in the viewer"]


def test_a_command_that_drops_a_flag_is_reported() -> None:
    project = ANALYSES["project"]

    @dataclass(frozen=True)
    class Wider(project.options):  # type: ignore[name-defined, misc]
        gamma: float = field(default=1.0, metadata=option("A flag no command declares.", min=0))

    widened = Analysis("project", Wider, project.function, project.subject, viewer=True)
    assert wiring_problems({"project": widened}) == [
        "project: the CLI lacks ['--gamma']",
        "project: the facade lacks ['gamma']",
    ]


def test_facade_arguments_after_the_subject_are_keyword_only() -> None:
    for analysis in ANALYSES.values():
        parameters = list(inspect.signature(facade(analysis)).parameters.values())
        leading = [p.name for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        several = (["checkpoints"], ["model_a", "model_b", "images"])
        assert leading in (["self"], ["self", parameters[1].name], *several), (analysis.name, leading)
