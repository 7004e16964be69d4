"""Tests of onnxviz.passes: the forward surgery passes and their stated requirements."""
