"""Graphs written out as ONNX files: ``invert`` writes the forward (with switches) and the inverse
graph of a layer to inspect or run elsewhere; ``export`` fuses the forward, the inverse and a
method's arithmetic into one explainer model (``builder``, ``heads``; ``analysis`` checks it)."""
