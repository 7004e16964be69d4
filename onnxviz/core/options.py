"""Options declared once: each analysis's settings as one frozen dataclass.

A field carries its default, and in its metadata (``option(...)``) the help text, the bounds or
choices, and how the command line spells it. From that one declaration come the checks (here,
at construction, for Python and the CLI alike), the CLI's flags (``cli/options.expand``) and the
facade's keyword arguments (``api.Model``). A bad value raises ``OptionError`` naming the field;
the CLI re-spells it as the flag typed (``cli/application.py``), so no analysis writes
command-line text.

    @dataclass(frozen=True)
    class TopKOptions(Options):
        k: int = field(default=9, metadata=option("Winners per channel.", min=1))
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, fields
from typing import TYPE_CHECKING, Any

from onnxviz.errors import OptionError

if TYPE_CHECKING:
    from typing import Self  # Python 3.11; onnxviz runs on 3.10 too

OPTION = "onnxviz.option"


@dataclass(frozen=True)
class Option:
    """What a field's metadata says about it (see ``option``)."""

    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    flag: str | None = None
    aliases: tuple[str, ...] = ()
    renamed: tuple[str, ...] = ()
    cli: bool = True


def option(
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[Any, ...] | None = None,
    flag: str | None = None,
    aliases: tuple[str, ...] = (),
    renamed: tuple[str, ...] = (),
    cli: bool = True,
) -> dict[str, Option]:
    """A field's metadata: ``help`` text; ``min``/``max`` bounds (inclusive, on each element of a
    list); ``choices``; ``flag`` (default ``--field-name``; ``--a/--b`` for a switch) with
    ``aliases`` (other flags: old spellings, ``-c``); ``renamed``: the field's old Python names,
    still accepted; ``cli=False``: set by the program (an engine, a folder), not a flag."""
    spec = Option(help, min, max, tuple(choices) if choices else None, flag, tuple(aliases), tuple(renamed), cli)
    return {OPTION: spec}


def declared(options: type | object) -> list[tuple[Field, Option]]:
    """Every field of an ``Options`` class (or instance) with its declaration."""
    return [(f, f.metadata.get(OPTION) or Option("")) for f in fields(options)]  # type: ignore[arg-type]


def flag_of(f: Field, spec: Option) -> str:
    """The field's main flag, as the CLI's errors name it (``--no-x`` half of a switch left off)."""
    return (spec.flag or "--" + f.name.replace("_", "-")).split("/")[0]


@dataclass(frozen=True)
class Options:
    """Base of every analysis's options: checked when made, made from keywords by ``of``."""

    def __post_init__(self) -> None:
        for f, spec in declared(self):
            _check(f.name, getattr(self, f.name), spec)

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Self:
        """The options from keyword arguments: old names (``renamed``) accepted, unknown names and
        missing required ones refused naming them."""
        names = {f.name: f for f, _ in declared(cls)}
        renamed = {old: f.name for f, spec in declared(cls) for old in spec.renamed}
        given: dict[str, Any] = {}
        for name, value in values.items():
            field_name = renamed.get(name, name)
            if field_name not in names:
                known = ", ".join(names)
                raise OptionError(name, "Unknown option {option}.", f"{cls.__name__} takes: {known}.")
            if field_name in given:
                raise OptionError(name, "{option} is given twice (under its old and its new name).")
            if isinstance(value, str) and _takes_a_list(names[field_name]):
                value = [value]  # layer="conv5" means one layer, not the letters c, o, n, v, 5
            given[field_name] = value
        for name, f in names.items():
            if name not in given and f.default is MISSING and f.default_factory is MISSING:
                raise OptionError(name, "{option} is required.")
        return cls(**given)

    @classmethod
    def keywords(cls) -> list[inspect.Parameter]:
        """The fields as keyword-only parameters: the facade's signature for this analysis."""
        return [
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=inspect.Parameter.empty if f.default is MISSING else f.default,
                annotation=f.type,
            )
            for f, _ in declared(cls)
        ]


def _takes_a_list(f: Field) -> bool:
    """Whether the field is declared a list (``list[str] | None``): its annotation, a string under
    ``from __future__ import annotations`` or a type."""
    annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", repr(f.type))
    return annotation.replace(" ", "").startswith(("list[", "tuple[", "Sequence[", "list|", "tuple|"))


def _check(name: str, value: Any, spec: Option) -> None:
    if value is None:
        return
    listed = isinstance(value, (list, tuple)) or (hasattr(value, "__array__") and getattr(value, "ndim", 0) > 0)
    for item in value if listed else [value]:
        if spec.choices is not None and item not in spec.choices:
            shown = ", ".join(map(str, spec.choices))
            raise OptionError(name, f"Unknown {{option}} '{item}'.", f"Use one of: {shown}.")
        if spec.min is None and spec.max is None:
            continue
        if isinstance(item, bool) or not isinstance(item, numbers.Real) or not math.isfinite(item):
            raise OptionError(name, f"{{option}} must be a finite number; got '{item}'.")
        if spec.min is not None and item < spec.min:
            least = {0: "must not be negative", 1: "must be a positive number"}.get(spec.min, f"must be ≥ {spec.min:g}")
            raise OptionError(name, f"{{option}} {least}; got {item:g}.")
        if spec.max is not None and item > spec.max:
            raise OptionError(name, f"{{option}} must be ≤ {spec.max:g}; got {item:g}.")
