"""Importing this package fills the registry: every rule module in it is imported, so adding an op
family is one new module (and its test) and nothing else is touched."""

import importlib
import pkgutil

from onnxviz.inverse.rules.registry import RULES, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["RULES", "register"]
