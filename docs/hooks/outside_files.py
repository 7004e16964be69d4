"""MkDocs hook: pictures kept beside their example, outside ``docs/``, served by the site too.

A picture such as ``examples/correspondence/correspondence.png`` belongs to its example folder
(its README and the command that made it point there); rather than keep a second copy under
``docs/``, the build adds it to the site at the path pages link to.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

# repository path -> path in the site (what pages link to, relative to docs/)
PICTURES = {"examples/correspondence/correspondence.png": "images/correspondence.png"}


def on_files(files: Files, config) -> Files:
    """Add each picture, read from the repository root (the folder holding ``mkdocs.yml``)."""
    root = Path(config["config_file_path"]).parent
    for source, site_path in PICTURES.items():
        files.append(File.generated(config, site_path, abs_src_path=str(root / source)))
    return files
