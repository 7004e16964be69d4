"""The typer app, its global options, the command decorator and ``main()``.

Errors are printed where the command runs, inside the app, so ``--debug`` is read after typer
parsed it: each run's flag lives in its own click context, never in module state.

The command list is made when the app is built (each ``main()``, each ``typer.main.get_command``):
the written commands, then one generated from each registered analysis that has none
(``cli/generated.py``), so an analysis is a command as soon as it is in the registry.
"""

from __future__ import annotations

import inspect
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from onnxviz.analyses.registry import ANALYSES
from onnxviz.cli.generated import analysis_command
from onnxviz.cli.options import CustomOpsOpt, expand
from onnxviz.cli.output import err
from onnxviz.errors import OnnxvizError, OptionError
from onnxviz.render.outputs import all_or_nothing


class Commands(TyperGroup):
    """The app's commands as built for one run: the written ones, in the order their modules
    registered them, then one generated for each registered analysis with none written."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        for name, analysis in ANALYSES.items():
            if name not in self.commands:
                self.add_command(_click_command(analysis_command(analysis)), name)


app = typer.Typer(
    cls=Commands,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Make an exported ONNX CNN explain itself: deconvnet projections, guided "
    "backprop, saliency, and more, from the ONNX file alone.",
)
Command = TypeVar("Command", bound=Callable[..., Any])


@dataclass(frozen=True)
class Settings:
    """What is given before the command: ``onnxviz [--debug] [--custom-ops LIB] COMMAND``."""

    debug: bool = False
    custom_ops: tuple[Path, ...] = ()


@app.callback()
def main_options(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    custom_ops: CustomOpsOpt = None,
) -> None:
    ctx.obj = Settings(debug=debug, custom_ops=tuple(custom_ops or ()))


def _settings(context: typer.Context) -> Settings:
    settings = context.find_root().obj
    return settings if isinstance(settings, Settings) else Settings()


class SpelledCommand(TyperCommand):
    """A command that keeps the words it was given, so an error can name a flag as it was typed."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        ctx.meta[GIVEN] = list(args)
        return super().parse_args(ctx, args)


GIVEN = "onnxviz.given"


def spelling(flags: dict[str, tuple[str, ...]], given: list[str]) -> dict[str, str]:
    """Each option as the command line names it: the flag the user typed (the last one, as the last
    wins), else its main flag."""

    def typed(names: tuple[str, ...]) -> str:
        used = [w.split("=", 1)[0] for w in given if w.split("=", 1)[0] in names]
        return used[-1] if used else names[0]

    return {name: typed(names) for name, names in flags.items()}


def _as_typed(exc: OptionError, context: typer.Context, flags: dict[str, tuple[str, ...]]) -> OptionError:
    """``exc`` with its options named by the flags typed: the analysis options' flags, else the
    command's own parameters' (by name, or by the singular's name)."""
    own = {p.name: tuple(p.opts) for p in context.command.params if p.name and p.opts}
    named = spelling(own | flags, context.meta.get(GIVEN, []))
    return exc.spelled(named, lambda name: named.get(name.removesuffix("s"), "--" + name.replace("_", "-")))


def command(func: Command) -> Command:
    """Register ``func`` as a command: its ``ModelOptions`` parameter becomes the shared flags, its
    analysis ``Options`` its own, and what it raises becomes one paragraph on stderr and the
    contract's exit code (an option named as the user typed it)."""
    app.command(cls=SpelledCommand)(_guarded(func))
    return func


def _click_command(func: Callable[..., Any]) -> TyperCommand:
    """``func`` made a click command as ``command`` makes one, for a command list being built."""
    single = typer.Typer(add_completion=False)
    single.command(cls=SpelledCommand)(_guarded(func))
    return typer.main.get_command(single)


def _guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` as typer should call it: its option bundles expanded into flags, and its errors
    printed as the contract says."""
    signature, call, flags = expand(func)

    def run(context: typer.Context, **values: Any) -> Any:
        settings = _settings(context)
        try:
            try:
                with all_or_nothing():  # a command's files: all written, or none (a full disk, Ctrl-C)
                    return call(values, settings.custom_ops)
            except OptionError as exc:
                raise _as_typed(exc, context, flags) from exc
        except (typer.Exit, typer.Abort):
            raise
        except OnnxvizError as exc:
            _print_error(settings, f"[bold red]error:[/bold red] {escape(exc.message)}", exc.hint and escape(exc.hint))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:
            message = f"[bold red]internal error:[/bold red] {type(exc).__name__}: {escape(str(exc))}"
            _print_error(settings, message, "rerun with --debug for the traceback, and report it with the model.")
            raise typer.Exit(1) from None

    run.__name__, run.__doc__, run.__module__ = func.__name__, func.__doc__, func.__module__
    context = inspect.Parameter("context", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
    run.__signature__ = signature.replace(parameters=[context, *signature.parameters.values()])  # type: ignore[attr-defined]
    return run


def _print_error(settings: Settings, message: str, hint: str | None) -> None:
    """Called inside ``except``: the traceback (with ``--debug``), then one paragraph."""
    if settings.debug or os.environ.get("ONNXVIZ_DEBUG") == "1":
        traceback.print_exc()
    err.print(message, highlight=False)
    if hint:
        err.print(f"[dim]hint:[/dim] {hint}", highlight=False)


def main() -> None:
    """The ``onnxviz`` console script."""
    app(prog_name="onnxviz")
