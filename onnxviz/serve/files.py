"""The only files the viewer reads from disk: those under ``--images`` and ``--state``.

A name in a request is untrusted: ``../../etc/passwd``, ``/etc/passwd``, ``..\\x`` or a symlink
that points out of the folder must never reach a file outside it. ``inside`` refuses names with a
``..`` part or an absolute form outright, then resolves the path (following every symlink) and
refuses it unless it still lies under the folder's own resolved path.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath, PureWindowsPath

from onnxviz.data.images import PICTURE_SUFFIXES, list_images
from onnxviz.render.viewer import Gallery

TOPK_SUMMARY = "topk.json"
MAXIMIZE_SUFFIX = "_maximize.png"


class Refused(Exception):
    """A request the viewer will not answer: an HTTP status and a message for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def inside(root: Path, name: str) -> Path:
    """The file ``name`` (relative, ``/``-separated) under ``root``, resolved; ``Refused`` otherwise."""
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if not name or "\x00" in name:
        raise Refused(400, "No file name given.")
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith(("/", "\\")):
        raise Refused(403, f"Absolute paths are not served: '{name}'.")
    if ".." in posix.parts or ".." in windows.parts:
        raise Refused(403, f"Paths with '..' are not served: '{name}'.")
    base = root.resolve()
    path = (base / posix).resolve()
    if not path.is_relative_to(base):
        raise Refused(403, f"'{name}' leads outside the served folder.")
    if not path.is_file():
        raise Refused(404, f"No file '{name}' in the served folder.")
    return path


def served(root: Path, names: list[str]) -> list[str]:
    """``names`` without those ``inside`` would refuse (symlinks out of ``root``)."""
    kept = []
    for name in names:
        try:
            inside(root, name)
        except Refused:
            continue
        kept.append(name)
    return kept


def image_names(root: Path | None) -> list[str]:
    """The pictures and .npy inputs under ``--images`` that can be served, sorted."""
    return served(root, list_images(root)) if root is not None else []


def galleries(state: Path | None) -> list[Gallery]:
    """Top-k outputs (a folder with ``topk.json`` and ``channel_NNNN.png``) and maximisation
    pictures (``*_maximize.png``, the CLI's default name) found under ``--state``."""
    if state is None:
        return []
    found = []
    for summary in served(state, sorted(p.relative_to(state).as_posix() for p in state.rglob(TOPK_SUMMARY))):
        gallery = _topk_gallery(state, summary)
        if gallery is not None:
            found.append(gallery)
    maximized = served(state, sorted(p.relative_to(state).as_posix() for p in state.rglob(f"*{MAXIMIZE_SUFFIX}")))
    if maximized:
        found.append(Gallery("maximisation", [(name, name) for name in maximized]))
    return found


def _topk_gallery(state: Path, summary: str) -> Gallery | None:
    """One topk folder's channels, strongest images named in each caption; None where unreadable."""
    try:
        data = json.loads((state / summary).read_text(encoding="utf-8"))
        node, channels = str(data["node"]), data["channels"]
        order = sorted(channels, key=int)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    folder = PurePosixPath(summary).parent
    pictures = []
    for channel in order:
        name = (folder / f"channel_{int(channel):04d}.png").as_posix()
        if served(state, [name]):
            winners = ", ".join(str(entry.get("image", "")) for entry in channels[channel][:3])
            pictures.append((name, f"channel {channel}: {winners}"))
    title = f"top-k of {node}" + (f" ({folder.as_posix()})" if folder.as_posix() != "." else "")
    return Gallery(title, pictures) if pictures else None


def media_type(path: Path) -> str:
    """The Content-Type a served file is sent with; anything not a picture is plain bytes."""
    suffix = path.suffix.lower()
    types = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
    types |= {".bmp": "image/bmp", ".json": "application/json"}
    return types.get(suffix, "application/octet-stream" if suffix in PICTURE_SUFFIXES else "text/plain")
