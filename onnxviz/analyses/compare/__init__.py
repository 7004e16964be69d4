"""Comparing a converted model with its original, as a package.

``analysis`` holds ``compare`` (the entry point, the measures' definitions in its docstring);
``pairing`` pairs the two models' layers and picks the tolerances for B's precision;
``measures`` holds the distances, the ``Comparison`` result and the verdict. The package exposes
the analysis function and its result type.
"""

from onnxviz.analyses.compare.analysis import compare
from onnxviz.analyses.compare.measures import Comparison

__all__ = ["Comparison", "compare"]
