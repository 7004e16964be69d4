"""One module per analysis: each a function that takes loaded models and returns a result.

An analysis only looks down: it uses ``onnxviz.api.Model`` methods, the graph and the runtime
pieces, and never the CLI. The CLI and the API facade call in here.
"""
