"""One module per analysis: each a function that takes a loaded model, what it reads and its
frozen ``Options`` (``core/options.py``), and returns a ``Result``; ``registry.py`` lists them.

An analysis only looks down: it takes an ``analyses.loaded.LoadedModel`` (never the facade),
the graph, the runtime engines, the data streams and the renderers, and never the CLI. The CLI
and the API facade (``onnxviz.api.Model``, one method per analysis) call in here.
"""
