"""Options the commands share, each declared once: arguments, flags and the model-loading bundle.

``ModelOptions`` is the device + preprocessing + custom-op bundle every command that loads a model
takes as one parameter. Its fields' ``Annotated`` metadata is the command-line declaration;
``expand`` turns the bundle parameter of a command into those flags for typer and builds the
bundle back from the parsed values, so a flag and its help text are written in this file only.
An analysis's ``Options`` (``core/options.py``) is expanded the same way from its fields'
``option(...)`` metadata: the flags, their help, list flags given as ``3,7`` or repeated.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Sequence
from dataclasses import MISSING, Field, dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

import typer

from onnxviz import api
from onnxviz.core.options import Options, declared, flag_of
from onnxviz.data.scanner import DEFAULT_DECODERS, Engine
from onnxviz.data.shards import DEFAULT_SHARD_SIZE
from onnxviz.errors import OptionError, UsageError

ModelArg = Annotated[Path, typer.Argument(help="The ONNX model file.", show_default=False)]
ImageArg = Annotated[
    Path, typer.Argument(help="A picture OpenCV can read, or a .npy input tensor.", show_default=False)
]
ImagesArg = Annotated[list[Path], typer.Argument(help="Pictures or .npy inputs.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]
CustomOpsOpt = Annotated[
    list[Path] | None,
    typer.Option("--custom-ops", help="Custom-op library to register with onnxruntime (repeatable)."),
]


@dataclass(frozen=True)
class ModelOptions:
    """How a command loads its model(s): device, preprocessing overrides, custom-op libraries, and a
    detector's pre-NMS boxes and scores to read as one output (``graph/detector_join``).

    ``custom_ops`` is also a global option (``onnxviz --custom-ops LIB COMMAND``); ``expand``'s call
    puts the libraries given there before the command's own.
    """

    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda.")] = "auto"
    size: Annotated[str | None, typer.Option("--size", help="Input size H,W (for models with a free size).")] = None
    scale: Annotated[float | None, typer.Option("--scale", help="Pixel scale factor (before mean/std).")] = None
    mean: Annotated[str | None, typer.Option("--mean", help="Per-channel mean, e.g. 0.485,0.456,0.406.")] = None
    std: Annotated[str | None, typer.Option("--std", help="Per-channel std, e.g. 0.229,0.224,0.225.")] = None
    bgr: Annotated[
        bool | None, typer.Option("--bgr/--rgb", help="Channel order the model expects.", show_default=False)
    ] = None
    layout: Annotated[str, typer.Option("--layout", help="auto | nchw | nhwc.")] = "auto"
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="imagenet | caffe | tf | raw (default: the model's metadata; raw for ultralytics; else imagenet).",
        ),
    ] = None
    custom_ops: CustomOpsOpt = None
    boxes: Annotated[
        str | None,
        typer.Option("--boxes", help="A detector's pre-NMS boxes (1, N, 4), x1, y1, x2, y2 (with --scores)."),
    ] = None
    scores: Annotated[
        str | None,
        typer.Option("--scores", help="A detector's pre-NMS class scores (1, N, nc) (with --boxes)."),
    ] = None

    def load(self, path: Path) -> api.Model:
        """Load ``path`` with these options; bad values are usage errors naming the flag."""
        return api.load(
            path,
            device=self.device,
            preset=self.preset,
            scale=self.scale,
            mean=floats(self.mean, "--mean"),
            std=floats(self.std, "--std"),
            order=None if self.bgr is None else ("bgr" if self.bgr else "rgb"),
            layout=self.layout,
            size=input_size(self.size),
            custom_ops=self.custom_ops or [],
            boxes=self.boxes,
            scores=self.scores,
        )


@dataclass(frozen=True)
class ScanOptions:
    """Where a dataset scan runs: ``data.scan.Engine``, as flags."""

    engine: Annotated[str, typer.Option("--engine", help="local | ray (Ray Data actors; needs the ray extra).")] = (
        "local"
    )
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="A running Ray cluster (auto, ray://HOST:10001); default: a local one."),
    ] = None
    workers: Annotated[
        int | None, typer.Option("--workers", help="Ray actors (default: one per GPU, else one per CPU).")
    ] = None
    shard_size: Annotated[
        int, typer.Option("--shard-size", help="Images per shard: the unit of work, of progress and of --resume.")
    ] = DEFAULT_SHARD_SIZE
    decoders: Annotated[int, typer.Option("--decoders", help="Threads decoding images ahead of the model.")] = (
        DEFAULT_DECODERS
    )

    def engine_for(self, model_options: ModelOptions) -> Engine:
        """The engine; Ray actors take no GPU when the model was asked to run on the CPU."""
        gpus = model_options.device != "cpu"
        return Engine(self.engine, self.ray_address, self.workers, self.shard_size, self.decoders, gpus)


def floats(text: str | None, name: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{name} must be comma-separated numbers; got '{text}'.") from None


def ints(values: list[str] | None, name: str) -> list[int] | None:
    """A list option given as ``3,7`` or repeated (``--channel 3 --channel 7``), as integers."""
    if not values:
        return None
    try:
        return [int(v) for text in values for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{name} must be comma-separated integers; got '{','.join(values)}'.") from None


def input_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    dims = ints([text], "--size")
    if not dims or len(dims) != 2 or min(dims) <= 0:
        raise UsageError(f"--size must be H,W with two positive integers; got '{text}'.")
    return dims[0], dims[1]


Call = Callable[[dict[str, Any], Sequence[Path]], Any]


def expand(func: Callable[..., Any]) -> tuple[inspect.Signature, Call, dict[str, tuple[str, ...]]]:
    """The signature typer should see for ``func``, how to call ``func`` with what typer parsed,
    and the flags of every analysis option (field name → its flags, the main one first).

    A parameter annotated with an option bundle is replaced by one keyword parameter per field
    (after the command's own); the call gathers them back into the dataclass. A bundle is either
    an analysis's ``Options`` (flags from its fields' ``option`` metadata; fields set by the
    program, ``cli=False``, are left to the command) or a dataclass whose fields are ``Annotated``
    flags (``ModelOptions``, ``ScanOptions``, ``occlude``'s ``ScoredFlags``). ``ModelOptions`` gets the
    custom-op libraries given before the command first. Annotations are resolved here because
    typer reads a given ``__signature__`` as it is.
    """
    hints = get_type_hints(func, include_extras=True)
    own = [
        parameter.replace(
            kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints.get(parameter.name, parameter.annotation)
        )
        for parameter in inspect.signature(func).parameters.values()
    ]
    bundles = {p.name: p.annotation for p in own if isinstance(p.annotation, type) and is_dataclass(p.annotation)}
    flags: list[inspect.Parameter] = []
    parsers: dict[str, Callable[[Any], Any]] = {}
    spelling: dict[str, tuple[str, ...]] = {}
    for bundle in bundles.values():
        if issubclass(bundle, Options):
            for f, annotation, parse in _option_fields(bundle):
                flags.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, **annotation))
                parsers[f.name] = parse
            spelling |= {f.name: (flag_of(f, spec), *spec.aliases) for f, spec in declared(bundle)}
        else:
            flags += [
                inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=annotation)
                for f, annotation in _annotated_fields(bundle)
            ]

    def call(values: dict[str, Any], global_custom_ops: Sequence[Path]) -> Any:
        for name, bundle in bundles.items():
            given = {f.name: values.pop(f.name) for f in fields(bundle) if f.name in values}
            options = bundle(**{key: parsers.get(key, _same)(value) for key, value in given.items()})
            if isinstance(options, ModelOptions):
                options = replace(options, custom_ops=[*global_custom_ops, *(options.custom_ops or [])])
            values[name] = options
        return func(**values)

    return inspect.Signature([p for p in own if p.name not in bundles] + flags), call, spelling


def _same(value: Any) -> Any:
    return value


def _option_fields(bundle: type[Options]) -> list[tuple[Field, dict[str, Any], Callable[[Any], Any]]]:
    """Each command-line field of ``bundle``: its typer annotation and default, and how its parsed
    value becomes the field's (a list flag's texts split at commas into numbers or names)."""
    hints = get_type_hints(bundle)
    found = []
    for f, spec in declared(bundle):
        if not spec.cli:
            continue
        kind, parse = _cli_type(f.name, hints[f.name])
        declaration = typer.Option(flag_of(f, spec) if spec.flag is None else spec.flag, *spec.aliases, help=spec.help)
        default = inspect.Parameter.empty if f.default is MISSING else f.default
        found.append((f, {"annotation": Annotated[kind, declaration], "default": default}, parse))
    return found


def _cli_type(name: str, hint: Any) -> tuple[Any, Callable[[Any], Any]]:
    """The type typer parses a field as, and the conversion to the field's type: lists and tuples
    are read as repeated texts (each ``3,7`` or ``3``); a union of scalars other than ``None`` as text."""
    union = get_origin(hint) in (Union, types.UnionType)
    optional = union and type(None) in get_args(hint)
    members = [a for a in get_args(hint) if a is not type(None)] if union else [hint]
    sequence = get_origin(members[0]) if len(members) == 1 else None
    if sequence in (list, tuple):
        item = get_args(members[0])[0]
        return list[str] | None, lambda texts: _items(name, texts, item, sequence)
    if len(members) > 1:
        scalar = Path if Path in members else str
        return (scalar | None) if optional else scalar, _same
    return (members[0] | None) if optional else members[0], _same


def _items(name: str, texts: list[str] | None, item: type, sequence: type = list) -> list | tuple | None:
    """A list option given as ``3,7`` or repeated (``--channel 3 --channel 7``), as ``item`` values
    in a ``sequence`` (a tuple for a field typed as one, e.g. ``--zoom 0.9,1.1``)."""
    if not texts:
        return None
    parts = [v.strip() for text in texts for v in str(text).split(",") if v.strip()]  # str: a default comes as numbers
    try:
        return sequence(item(v) for v in parts)
    except ValueError:
        kind = {int: "integers", float: "numbers"}.get(item, "values")
        raise OptionError(name, f"{{option}} must be comma-separated {kind}; got '{','.join(texts)}'.") from None


def _annotated_fields(bundle: type) -> list[tuple[Any, Any]]:
    hints = get_type_hints(bundle, include_extras=True)
    return [(f, hints[f.name]) for f in fields(bundle)]
