"""Importing the rule modules fills the registry."""

from onnxviz.inverse.rules import activation, conv, einsum, linear, normalization, pool, resize, shape  # noqa: F401
from onnxviz.inverse.rules.registry import RULES, register

__all__ = ["RULES", "register"]
