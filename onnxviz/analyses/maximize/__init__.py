"""Activation maximisation as a package: the analysis and the pieces it is made of.

``analysis`` holds ``maximize`` (the entry point, rationale in its docstring) and its result
``Maximization``; ``options`` its ``MaximizeOptions``; ``objectives`` says what is maximised,
``parameterisations`` how the image is written (``fft`` or ``pixel``), ``transforms`` the random
transforms and regularisers of each step, ``device`` the step off the CPU as chained graphs built
by ``device_graphs``. The package exposes the analysis function and its result type.
"""

from onnxviz.analyses.maximize.analysis import Maximization, maximize

__all__ = ["Maximization", "maximize"]
