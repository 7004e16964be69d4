"""One module per analysis: each a function that takes a loaded model and returns a ``Result``.

An analysis only looks down: it takes an ``core.loaded.LoadedModel`` (never the facade),
the graph, the runtime engines, the data streams and the renderers, and never the CLI. The CLI
and the API facade (``onnxviz.api.Model``, one method per analysis) call in here.
"""
