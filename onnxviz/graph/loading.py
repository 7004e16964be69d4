"""From a file to a graph every later step can read alike.

* external data is resolved next to the file, and its absence is a clear error;
* graphs older than opset 8 are upgraded, since MaxPool only gained its ``Indices`` output then;
  an IR version newer than onnxruntime loads is lowered where the opset allows, an opset newer
  than it runs is refused naming both, and a custom-domain op it does not know is refused by name;
* fp16 graphs are run in float32 and QOperator graphs are rewritten in QDQ form
  (``precision.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from onnxviz.errors import ModelLoadError, UnsupportedOpError
from onnxviz.graph.attributes import default_opset, tensor_array
from onnxviz.graph.ops import MIN_OPSET_FOR_SWITCHES, UPGRADE_OPSET
from onnxviz.graph.precision import half_to_float, operators_to_qdq, restore_fused_relus


@dataclass
class Normalised:
    """A model made loadable, and what loading changed in it."""

    model: onnx.ModelProto
    original_opset: int
    notes: list[str] = field(default_factory=list)  # one line each on what loading changed
    half_precision: bool = False  # the file computes in fp16 (loading made it float32)
    # initializer values read while checking them, by name: those normalising did not replace
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def read_model(path: str | Path, data: bytes | None = None) -> onnx.ModelProto:
    """The ONNX file at ``path`` with its external data, or a load error saying what is wrong.
    ``data``: the file's bytes, where the caller has read them already (to hash them)."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"Model file not found: {path}", "Check the path.")
    if path.is_dir():
        raise ModelLoadError(f"{path} is a folder, not an ONNX file.")
    try:
        model = onnx.load(str(path), load_external_data=False) if data is None else onnx.load_from_string(data)
    except Exception as exc:
        raise ModelLoadError(
            f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc}).",
            "The file may be truncated or corrupt; export it again.",
        ) from None
    if not model.graph.node:
        raise ModelLoadError(f"{path} holds no graph nodes; it is not an ONNX model or it is empty.")
    _load_external_data(model, path)
    return model


def normalise(model: onnx.ModelProto, custom_ops: tuple[str, ...] = ()) -> Normalised:
    """Check the model, upgrade or lower its versions, and bring fp16 and QOperator graphs to the
    float32 / QDQ form the rules read. ``model`` is changed in place unless it must be upgraded."""
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        # onnx deprecates ops (GroupNormalization-18) that onnxruntime still runs as specified
        if not _only_deprecated(exc):
            raise ModelLoadError(
                f"The model does not pass onnx.checker: {str(exc).splitlines()[0]}",
                "Re-export the model, or fix the graph with onnx tools.",
            ) from None
    original_opset = default_opset(model)
    if original_opset < MIN_OPSET_FOR_SWITCHES:
        model = _upgrade_opset(model)
    # read (so checked) before any pass reads them, and kept: each initializer is converted once
    arrays = {tensor.name: tensor_array(tensor, f"initializer '{tensor.name}'") for tensor in model.graph.initializer}
    notes = _fit_versions(model)
    _check_custom_ops(model, custom_ops)
    half_precision = half_to_float(model)
    if half_precision:
        notes.append("fp16 model: running in float32")
        arrays.clear()  # its fp16 initializers were replaced by float32 ones
    converted = operators_to_qdq(model)
    if converted:
        notes.append(f"QOperator model: {', '.join(converted)} converted to their QDQ form")
    restore_fused_relus(model)
    return Normalised(model, original_opset, notes, half_precision, arrays)


def _only_deprecated(exc: Exception) -> bool:
    """Whether onnx.checker's only objection is an op it has deprecated for the model's opset."""
    return "is deprecated in domain_version" in str(exc)


def _load_external_data(model: onnx.ModelProto, path: Path) -> None:
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    missing = []
    for tensor in _all_tensors(model):
        if uses_external_data(tensor):
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            if not (path.parent / location).exists():
                missing.append((tensor.name, location))
    if missing:
        name, location = missing[0]
        raise ModelLoadError(
            f"The model keeps its weights in external data, and '{location}' (for tensor '{name}'"
            f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}) is not next to {path.name}.",
            f"Put the data file(s) in {path.parent.resolve()} beside the model.",
        )
    try:
        load_external_data_for_model(model, str(path.parent))
    except Exception as exc:
        outside = "points outside" in str(exc)  # onnx refuses a location that leaves the model's folder
        raise ModelLoadError(
            f"The external data of {path} cannot be read ({exc}).",
            "Keep the data files in the model's folder and name them relative to it."
            if outside
            else "The data file may be truncated.",
        ) from None


def _all_tensors(model: onnx.ModelProto) -> Iterable[onnx.TensorProto]:
    yield from model.graph.initializer
    for node in model.graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                yield a.t


def _fit_versions(model: onnx.ModelProto) -> list[str]:
    """Make the model loadable by the installed onnxruntime where that changes nothing it means.

    A newer IR version (onnx's helper stamps its own, e.g. 14 for onnx 1.23) is lowered to the
    newest onnxruntime loads, if that IR may still carry the model's opset; an opset newer than
    onnxruntime runs cannot be lowered without rewriting ops, and is refused naming both.
    Returns the notes to show.
    """
    import onnxruntime as ort

    from onnxviz.runtime.sessions import ir_version_for, max_ir_version, max_opset

    opset = default_opset(model)
    if opset > max_opset():
        raise ModelLoadError(
            f"The model uses ONNX opset {opset}, and the installed onnxruntime {ort.__version__} runs opsets up "
            f"to {max_opset()}.",
            f"Upgrade onnxruntime, or re-export the model with opset {max_opset()} or older.",
        )
    newest = max_ir_version()
    if model.ir_version <= newest:
        return []
    if ir_version_for(opset) > newest:
        raise ModelLoadError(
            f"The model has IR version {model.ir_version} and opset {opset}; the installed onnxruntime "
            f"{ort.__version__} loads IR versions up to {newest}, too old for that opset.",
            "Upgrade onnxruntime, or re-export the model with an older opset.",
        )
    lowered_from, model.ir_version = model.ir_version, newest
    return [f"IR version {lowered_from} lowered to {newest}, the newest onnxruntime {ort.__version__} loads"]


def _check_custom_ops(model: onnx.ModelProto, custom_ops: tuple[str, ...]) -> None:
    """An op onnxruntime does not know is refused here, naming it, rather than deep inside a session.

    With custom-op libraries given, their ops cannot be listed beforehand: onnxruntime judges.
    """
    from onnxviz.runtime.sessions import known_ops

    if custom_ops:
        return
    local = {(f.domain, f.name) for f in model.functions}
    for node in model.graph.node:
        key = ("" if node.domain == "ai.onnx" else node.domain, node.op_type)
        if key in local or key in known_ops():
            continue
        if not node.domain or node.domain == "ai.onnx":
            continue  # a misspelt standard op: onnx.checker and onnxruntime say so themselves
        raise UnsupportedOpError(
            f"Node '{node.name}' uses the custom op {node.domain}::{node.op_type}, which the installed "
            "onnxruntime does not know.",
            "Register the library that implements it with --custom-ops LIBRARY (onnxruntime-extensions: "
            "`python -c 'import onnxruntime_extensions as e; print(e.get_library_path())'`).",
        )


def _upgrade_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnx import version_converter

    for target in (UPGRADE_OPSET, 11, MIN_OPSET_FOR_SWITCHES):
        try:
            converted = version_converter.convert_version(model, target)
            onnx.checker.check_model(converted)
            return converted
        except Exception:
            continue
    raise ModelLoadError(
        f"The model uses opset {default_opset(model)}, which has no MaxPool indices, and could not be "
        f"upgraded to opset {MIN_OPSET_FOR_SWITCHES}+.",
        "Upgrade it with onnx.version_converter, or re-export it with a newer opset.",
    )
