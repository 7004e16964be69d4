"""The in-memory model and what is known about it: loading, normalising passes, shapes, aliases,
receptive fields. Nothing here runs onnxruntime sessions for analyses; everything above reads it."""
