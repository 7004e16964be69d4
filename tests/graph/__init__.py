"""Tests of onnxviz.graph: loading, folding, signal, shapes, aliases, receptive fields."""
