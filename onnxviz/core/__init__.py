"""What every layer shares: the loaded model, the result base, options, the progress callbacks, typed aliases.

Where core sits in the layer order: ``core.loaded`` (``LoadedModel``, ``Source``) and
``core.result`` (``Result``) sit just below ``analyses/``: they build on ``runtime/``, ``data/``
and ``render/``, and every analysis, the facade and the CLI build on them. ``core.options``,
``core.progress``, ``core.types`` and ``core.files`` import nothing of onnxviz but ``errors``, so
any layer may use them. This ``__init__`` imports nothing, so a low layer that reads
``core.progress`` never loads ``core.loaded`` and what it builds on.
"""
