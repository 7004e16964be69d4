"""Commands made from the registry: one for each registered analysis with no command written for it.

A generated command takes what the analysis reads as arguments (``MODEL IMAGE``, ``MODEL
IMAGES...``, ``MODEL FOLDER``, ``MODEL MASKS``, ``CHECKPOINTS...``), its ``Options`` as flags
(``cli/options.expand``), the shared ``ModelOptions``, and ``--out PNG`` (``result.save``),
``--json`` (``result.summary()``) and, where the analysis's declared result has an array
(``Result.offers_raw``), ``--raw NPY``. It calls the facade, as a written command does; a written
command prints richer text, a generated one the paths it wrote.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer

from onnxviz import api
from onnxviz.analyses.registry import Analysis, Subject
from onnxviz.cli.options import ImageArg, ImagesArg, JsonOpt, ModelArg, ModelOptions
from onnxviz.cli.output import Outputs, load_notes, print_json, progress, safe_name
from onnxviz.core.result import Result

SUBJECT_ARGUMENTS: dict[Subject, Any] = {
    Subject.IMAGE: ImageArg,
    Subject.IMAGES: ImagesArg,
    Subject.FOLDER: Annotated[Path, typer.Argument(help="A folder of pictures.", show_default=False)],
    Subject.MASKS: Annotated[
        Path, typer.Argument(help="A JSON file naming images and their parts' rectangles.", show_default=False)
    ],
    Subject.CHECKPOINTS: Annotated[
        list[Path], typer.Argument(help="Model files (or folders of them), in training order.", show_default=False)
    ],
}
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="PNG to write (default: <subject>_<command>.png).")]
RawOpt = Annotated[Path | None, typer.Option("--raw", help="Write the result's array as float32 .npy.")]


def _declared_result(analysis: Analysis) -> type | None:
    """The result type the analysis's function declares it returns, if it names one that resolves."""
    try:
        returns = get_type_hints(analysis.function).get("return")
    except (NameError, TypeError):
        return None
    return returns if isinstance(returns, type) else None


def analysis_command(analysis: Analysis) -> Callable[..., None]:
    """The command function of ``analysis``, for ``cli.application`` to wrap like a written one:
    its signature names the arguments and option bundles, its body loads, runs the facade, writes."""

    def run(**values: Any) -> None:
        call, given, stem = _facade_call(analysis, values)
        outputs = Outputs(values["out_png"], values.get("raw"), values["json_output"])
        keywords: dict[str, Any] = {"options": values["settings"]}
        with progress(analysis.name, counted=analysis.progress, quiet=outputs.json) as tracker:
            if analysis.progress:
                keywords["progress"] = tracker.count
            result = call(*given, **keywords)
        written = outputs.write(result, result.raw(), Path(f"{safe_name(stem)}_{analysis.name}.png"))
        if outputs.json:
            print_json(result.summary() | written)
            return
        outputs.print_paths()

    run.__signature__ = _signature(analysis)  # type: ignore[attr-defined]
    run.__name__, run.__module__, run.__doc__ = analysis.name, __name__, inspect.getdoc(analysis.function)
    return run


def _facade_call(analysis: Analysis, values: dict[str, Any]) -> tuple[Callable[..., Any], tuple, str]:
    """The facade's call for ``analysis``, what it reads, and the stem of the default picture's name
    (the image's, else the model's): several models are loaded by the analysis, one by the command."""
    model_options: ModelOptions = values["options"]
    subject = values.get(analysis.subject.value)
    if analysis.subject is Subject.CHECKPOINTS:
        return functools.partial(getattr(api, analysis.name), loader=model_options.load), (subject,), "checkpoints"
    if analysis.subject is Subject.PAIR:
        pair = tuple(model_options.load(values[name]) for name in ("model_a", "model_b"))
        return getattr(api, analysis.name), (*pair, values["images"]), values["model_b"].stem
    loaded = model_options.load(values["model"])
    load_notes(loaded)
    given = () if analysis.subject is Subject.MODEL else (subject,)
    stem = subject.stem if isinstance(subject, Path) else values["model"].stem
    return getattr(loaded, analysis.name), given, stem


def _signature(analysis: Analysis) -> inspect.Signature:
    """The command's parameters, as a written command declares them: the model and what the
    analysis reads, the bundles ``expand`` turns into flags, then the outputs."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    subject = analysis.subject
    models = {Subject.CHECKPOINTS: (), Subject.PAIR: ("model_a", "model_b")}.get(subject, ("model",))
    arguments = [inspect.Parameter(name, keyword, annotation=ModelArg) for name in models]
    if subject is Subject.PAIR:
        arguments.append(inspect.Parameter("images", keyword, annotation=ImagesArg))
    elif subject in SUBJECT_ARGUMENTS:
        arguments.append(inspect.Parameter(subject.value, keyword, annotation=SUBJECT_ARGUMENTS[subject]))
    bundles = [
        inspect.Parameter("options", keyword, annotation=ModelOptions),
        inspect.Parameter("settings", keyword, annotation=analysis.options),
    ]
    outputs = [inspect.Parameter("out_png", keyword, default=None, annotation=OutOpt)]
    result = _declared_result(analysis)
    if result is not None and issubclass(result, Result) and result.offers_raw():
        outputs.append(inspect.Parameter("raw", keyword, default=None, annotation=RawOpt))
    outputs.append(inspect.Parameter("json_output", keyword, default=False, annotation=JsonOpt))
    return inspect.Signature([*arguments, *bundles, *outputs])
