"""The ``onnxviz`` command: parses, calls the Python API, prints. No logic of its own.

``app`` is the typer app and ``main`` the console script (``onnxviz.cli:main``). Each command
module registers its commands on import; the import order is the order ``--help`` lists them,
followed by those generated for registered analyses with none written (``cli/generated.py``).
"""

# isort: off
from onnxviz.cli import model  # layers, check, invert, filters
from onnxviz.cli import explain  # project, occlude, activations
from onnxviz.cli import cam
from onnxviz.cli import dataset  # topk, report
from onnxviz.cli import compare
from onnxviz.cli import invariance
from onnxviz.cli import maximize
from onnxviz.cli import correspondence
from onnxviz.cli import evolution
from onnxviz.cli import embed
from onnxviz.cli import serve
from onnxviz.cli import export
from onnxviz.cli.application import app, main

# isort: on

__all__ = [
    "app",
    "cam",
    "compare",
    "correspondence",
    "dataset",
    "embed",
    "evolution",
    "explain",
    "export",
    "invariance",
    "main",
    "maximize",
    "model",
    "serve",
]
