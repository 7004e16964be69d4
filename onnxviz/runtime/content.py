"""What a model file holds, known on a repeat run without reading it again.

The graph cache keys its entries by the model's content, and hashing a large model (SHA-256 of
the file and of the external data it names) costs as much as reading it; onnx.checker on it costs
more. Both answers depend only on the bytes, so they are remembered:

* the digest, per resolved file path, with the stat stamps (size, mtime, ctime, inode, device)
  of the file and of every external-data file it names. Any change to one of them, or a named
  file appearing or vanishing, and the digest is computed anew. A file modified less than
  ``RACY_SECONDS`` before it was hashed is not remembered: a rewrite within the filesystem's
  timestamp granularity could keep its stamp (git's "racy" index entries);
* that onnx.checker passed a content, per digest and onnx version (a failing model is never
  remembered, so it fails with the same message every time).

Both live in the cache directory beside the graph entries (``stamps/``, ``checked/``) and in the
process; with the cache turned off nothing is written and every run reads and checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from pathlib import Path

STAMPS = "stamps"
CHECKED = "checked"
RACY_SECONDS = 2
NAME_LENGTH = 40
# an external-data entry as protobuf writes it: key "location", then the file name (< 128 bytes)
EXTERNAL_LOCATION = re.compile(rb"\x0a\x08location\x12([\x01-\x7f])")

Stamp = list[int]  # size, mtime_ns, ctime_ns, inode, device (a list: what JSON gives back)
_remembered: dict[str, dict] = {}  # this process's digests, by resolved path


def model_content(path: Path, root: Path | None) -> tuple[str, bytes | None] | None:
    """(digest, the file's bytes where they were read to compute it), or None for a path that is
    not a readable file. Remembered in the process, and under ``root`` when given."""
    try:
        path = path.resolve()
        before = stamp(path)
        known = _recall(path, before, root)
        if known is not None:
            return known, None
        data = path.read_bytes()
        unchanged = stamp(path) == before
    except (OSError, ValueError):
        return None
    digest, named = _digest(path, data)
    stamps = [before, *(s for s in named.values() if s is not None)]
    if unchanged and all(time.time_ns() - s[1] > RACY_SECONDS * 10**9 for s in stamps):
        record = {"stamp": before, "named": named, "digest": digest}
        _remembered[str(path)] = record
        if root is not None:
            write_atomically(root / STAMPS / name_for([str(path)]), json.dumps(record).encode())
    return digest, data


def stamp(path: Path) -> Stamp:
    """The stat stamp of a regular file; anything else raises ``ValueError``."""
    status = os.stat(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path} is not a file")
    return [status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino, status.st_dev]


def _recall(path: Path, current: Stamp, root: Path | None) -> str | None:
    """The remembered digest of ``path`` if neither it nor its named files changed since."""
    record = _remembered.get(str(path))
    if record is None and root is not None:
        try:
            record = json.loads((root / STAMPS / name_for([str(path)])).read_text())
        except (OSError, ValueError):
            return None
    try:
        if record is None or record["stamp"] != current:
            return None
        if any(_named_stamp(path, location) != known for location, known in record["named"].items()):
            return None
        _remembered[str(path)] = record
        return str(record["digest"])
    except (KeyError, TypeError, AttributeError):
        return None  # a memo file from another format: recomputed and rewritten


def _named_stamp(model: Path, location: str) -> Stamp | None:
    """The stamp of an external-data file the model names, None where it is not a separate file
    (absent, or the model itself): those are left out of the digest."""
    named = model.parent / location
    try:
        return None if named.resolve() == model else stamp(named)
    except (OSError, ValueError):
        return None


def _digest(path: Path, data: bytes) -> tuple[str, dict[str, Stamp | None]]:
    """The SHA-256 of the model file and of the external data files it names (weights kept
    beside the graph, which an export can rewrite while the graph file stays byte-identical),
    with the stamps of those files as they were hashed."""
    digest = hashlib.sha256(data)
    named: dict[str, Stamp | None] = {}
    for raw in sorted({data[m.end() : m.end() + m.group(1)[0]] for m in EXTERNAL_LOCATION.finditer(data)}):
        try:
            location = raw.decode()
            named[location] = _named_stamp(path, location)
        except (UnicodeDecodeError, ValueError):
            continue  # bytes in the weights that only looked like an entry
        if named[location] is not None:
            digest.update(raw)
            with open(path.parent / location, "rb") as file:
                while chunk := file.read(1 << 24):
                    digest.update(chunk)
    return digest.hexdigest(), named


def name_for(parts: list) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:NAME_LENGTH]


def write_atomically(path: Path, data: bytes) -> None:
    """Write by renaming a whole temporary file into place; a failure only loses the memo."""
    temporary = path.with_name(f".tmp-{uuid.uuid4().hex}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
