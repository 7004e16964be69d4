"""User-facing errors.

Every failure a user can cause or meet is one of these types. The CLI prints ``message`` and
``hint`` as one paragraph and exits with ``exit_code`` (2: the user asked for something that
cannot be, 1: onnxviz could not do what was asked), so scripts and CI can tell them apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable


class OnnxvizError(Exception):
    """Base class: a message written for the user, and what to do about it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nHint: {self.hint}"


class UsageError(OnnxvizError):
    """The request itself is wrong: bad option value, unknown node, unreadable file."""

    exit_code = 2


class ModelLoadError(UsageError):
    """The ONNX file is missing, corrupt, truncated, or its external data cannot be found."""


class UnknownNodeError(UsageError):
    """``--node`` matched nothing (or more than one thing) in the graph."""


class ImageError(UsageError):
    """The image cannot be read, or its shape does not fit the model input."""


class UnsupportedOpError(OnnxvizError):
    """An op on the signal path has no inverse rule (or not for these attributes)."""


class DeviceError(OnnxvizError):
    """The requested execution device is not usable on this machine."""


class ExportError(OnnxvizError):
    """A model that cannot become a portable explainer (a custom operator, a batch of 1 written into
    the graph): the message names the node."""


class InferenceError(OnnxvizError):
    """onnxruntime refused to build or run a session."""


class InvalidModelError(ModelLoadError):
    """The file reads, but its graph contradicts itself (an attribute, shape or type that does not
    fit), so onnxruntime would refuse it too: the model has to be fixed, not onnxviz's options."""


def runtime_message(exc: BaseException) -> str:
    """onnxruntime's (or onnx's) message cut to what a user needs: its first line, without the
    ``[ONNXRuntimeError] : 1 : FAIL :`` status prefix; the node it names stays in the text."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return _STATUS_PREFIX.sub("", line).strip() or type(exc).__name__


_STATUS_PREFIX = re.compile(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*[A-Z_]+\s*:\s*")


class OptionError(UsageError):
    """One option's value is wrong. ``template`` (and ``hint``) say what, with ``{option}`` where
    the option's name goes and ``{field}`` for any other option mentioned: the analysis that raises
    it names fields, and the caller spells them as its user wrote them (the Python argument by
    default, the flag on the command line: ``spelled``)."""

    def __init__(self, option: str, template: str, hint: str | None = None) -> None:
        super().__init__(_spell(template, option, {}), hint and _spell(hint, option, {}))
        self.option = option
        self.template = template
        self.hint_template = hint

    def spelled(self, spelling: dict[str, str], unmapped: Callable[[str], str] = str) -> OptionError:
        """The same error with the options named as ``spelling`` maps them (others: ``unmapped(name)``)."""
        respelled = OptionError(self.option, self.template, self.hint_template)
        respelled.message = _spell(self.template, self.option, spelling, unmapped)
        respelled.hint = self.hint_template and _spell(self.hint_template, self.option, spelling, unmapped)
        respelled.args = (respelled.message,)
        return respelled


_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def _spell(template: str, option: str, spelling: dict[str, str], unmapped: Callable[[str], str] = str) -> str:
    def name(match: re.Match) -> str:
        field = option if match.group(1) == "option" else match.group(1)
        return spelling[field] if field in spelling else unmapped(field)

    return _PLACEHOLDER.sub(name, template)
