"""One module per analysis: each a function that takes a loaded model, what it reads and its
frozen ``Options`` (``core/options.py``), and returns a ``Result``; ``registry.py`` lists them.

An analysis with helpers of its own is a package (``maximize/``, ``compare/``) whose
``__init__`` exposes the analysis function and its result type. Helpers several analyses share
live in ``_common.py``, so no analysis imports another analysis's helpers.

An analysis only looks down: it takes a ``core.loaded.LoadedModel`` (never the facade),
the graph, the runtime engines, the data streams and the renderers, and never the CLI. The CLI
and the API facade (``onnxviz.api.Model``, one method per analysis) call in here.
"""
