"""Importing the rule modules fills the registry."""

from onnxviz.inverse.rules import (  # noqa: F401
    activation,
    conv,
    elementwise,
    linear,
    normalization,
    pool,
    quantize,
    shape,
)
from onnxviz.inverse.rules.registry import RULES, register

__all__ = ["RULES", "register"]
