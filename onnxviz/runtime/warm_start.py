"""What a model file holds, known on a repeat run without reading it again.

A repeat ``onnxviz project`` needs of its model only the names, the input and the aliases: the
forward and inverse graphs come from the graph cache. Yet reading a large model, hashing it for
the cache key (SHA-256 of the file and of the external data it names), onnx.checker and indexing
cost more than the cached sessions' start. What depends only on the bytes is remembered:

* the digest, per resolved file path, with the stat stamps (size, mtime, ctime, inode, device)
  of the file and of every external-data file it names. Any change to one of them, or a named
  file appearing or vanishing, and the digest is computed anew. A file modified less than
  ``RACY_SECONDS`` before it was hashed is not remembered: a rewrite within the filesystem's
  timestamp granularity could keep its stamp (git's "racy" index entries);
* the loaded graph, per digest (with onnxviz's source, onnx, onnxruntime and the custom-op
  libraries): the graph as loading left it (checked, upgraded, folded, explicit pads) with each
  large initializer replaced by a reference to where the same bytes lie in the model file or its
  external data, and what indexing found (``ModelGraph.facts``). ``ModelGraph.from_skeleton``
  answers from it, and reads the weights only when they are used (a layer not cached yet).
  A model whose weights loading changed (fp16, QOperator) has no such skeleton.

Both live in the cache directory beside the graph entries (``stamps/``, ``skeletons/``) and the
digests also in the process; with the cache turned off nothing is written and every run reads.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import mmap
import os
import stat as stat_module
import time
import zlib
from pathlib import Path
from typing import BinaryIO

import onnx
import onnxruntime as ort
from google.protobuf.message import DecodeError

from onnxviz.core.files import write_atomically
from onnxviz.errors import ModelLoadError
from onnxviz.graph.model import ModelGraph

STAMPS = "stamps"
SKELETONS = "skeletons"
MODEL_FILE = ""  # a skeleton's location for the model file: the same bytes may later lie under another name
SKELETON_FORMAT = 1
OFF_VALUES = ("0", "false", "no", "off")
EXTERNAL_THRESHOLD = 1024  # initializers smaller than this stay inside the skeleton
NEAR_BYTES = 4096  # how far past the previous tensor's bytes the next one's are looked for first
RACY_SECONDS = 2
NAME_LENGTH = 40
# an external-data entry as protobuf writes it: key "location", then the file name's length (< 128) and name
LOCATION_ENTRY = b"\x0a\x08location\x12"

Stamp = list[int]  # size, mtime_ns, ctime_ns, inode, device (a list: what JSON gives back)
_remembered: dict[str, dict] = {}  # this process's digests, by resolved path


def cache_root() -> Path | None:
    """The cache directory the environment names, or None where ``ONNXVIZ_CACHE`` turns it off."""
    if os.environ.get("ONNXVIZ_CACHE", "1").strip().lower() in OFF_VALUES:
        return None
    root = os.environ.get("ONNXVIZ_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base) / "onnxviz"
    return Path(root)


def load_graph(path: str | Path, custom_ops: tuple[str, ...] = ()) -> ModelGraph:
    """``ModelGraph.load``, or on a repeat run the graph from its skeleton (weights read when
    used); the file is read once either way. Errors are those of ``ModelGraph.load``."""
    path, root = Path(path), cache_root()
    content = model_content(path, root) if root is not None else None
    if content is None:  # no cache, or missing, a folder, unreadable: ModelGraph.load says which
        return ModelGraph.load(path, custom_ops)
    digest, data = content
    versions = [SKELETON_FORMAT, source_digest(), onnx.__version__, ort.__version__]
    skeleton_path = root / SKELETONS / name_for([*versions, digest, list(custom_ops)])
    stored = read_skeleton(skeleton_path)
    if stored is not None:
        skeleton, facts = stored
        weights = functools.partial(load_weights, path=path, digest=digest, root=root)
        graph = ModelGraph.from_skeleton(skeleton, facts, path, custom_ops, weights)
    else:
        if data is None:
            try:
                data = path.read_bytes()
            except OSError:
                return ModelGraph.load(path, custom_ops)
        graph = ModelGraph.load(path, custom_ops, data=data)
        write_skeleton(skeleton_path, graph, path, data, digest)
    graph.digest = digest  # the cache keys this graph's projectors by it, whatever the file holds later
    return graph


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
            _keep(root / STAMPS / name_for([str(path)]), json.dumps(record).encode())
    return digest, data


def stamp(path: Path) -> Stamp:
    """The stat stamp of a regular file; anything else raises ``ValueError``."""
    status = os.stat(path)
    if not stat_module.S_ISREG(status.st_mode):
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
    for location in _locations(data):
        named[location] = _named_stamp(path, location)
        if named[location] is not None:
            digest.update(location.encode())
            with open(path.parent / location, "rb") as file:
                while chunk := file.read(1 << 24):
                    digest.update(chunk)
    return digest.hexdigest(), named


def _locations(data: bytes) -> list[str]:
    """The external-data file names a serialized model holds, sorted (with whatever bytes of its
    weights look like such an entry: a name that is no file is left out by the callers)."""
    names = set()
    at = data.find(LOCATION_ENTRY)
    while at >= 0:
        start = at + len(LOCATION_ENTRY)
        if start < len(data) and 0 < data[start] < 0x80:
            names.add(data[start + 1 : start + 1 + data[start]])
        at = data.find(LOCATION_ENTRY, start)
    locations = set()
    for raw in names:
        try:
            location = raw.decode()
        except UnicodeDecodeError:
            continue
        if "\0" not in location:  # a name with a NUL byte cannot be a path
            locations.add(location)
    return sorted(locations)


def name_for(parts: list) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:NAME_LENGTH]


# -- the loaded graph, without its weights -------------------------------------------------------


def write_skeleton(target: Path, graph: ModelGraph, path: Path, data: bytes, digest: str) -> None:
    """Store ``graph`` with each large initializer as a reference to where its bytes lie in the
    model file or an external-data file it names; nothing is stored if one lies in neither
    (loading converted it). The tensors are emptied only while the skeleton is serialized."""
    # name ("" for the model file itself, whatever its name then), bytes (mapped when first searched), where to look
    files: list[list] = [[MODEL_FILE, data, 0]]
    files += [[location, None, 0] for location in _locations(data) if _named_stamp(path.resolve(), location)]
    moved: list[tuple[onnx.TensorProto, bytes, bool]] = []  # tensor, its bytes, whether it said DEFAULT
    try:
        with contextlib.ExitStack() as stack:
            for tensor in graph.model.graph.initializer:
                raw = tensor.raw_data if tensor.HasField("raw_data") else None  # read once: each read copies
                if (tensor.ByteSize() if raw is None else len(raw)) < EXTERNAL_THRESHOLD:
                    continue
                found = None if raw is None else _find(raw, path.parent, files, stack)
                if found is None:  # values in typed fields, or bytes loading made
                    return
                moved.append((tensor, raw, tensor.HasField("data_location")))
                tensor.ClearField("raw_data")
                tensor.data_location = onnx.TensorProto.EXTERNAL
                for key, value in zip(("location", "offset", "length"), found, strict=True):
                    entry = tensor.external_data.add()
                    entry.key, entry.value = key, str(value)
            body = graph.model.SerializeToString()
    finally:
        for tensor, raw, said_default in moved:  # the proto as it was, to the byte
            del tensor.external_data[:]
            tensor.ClearField("data_location")
            if said_default:
                tensor.data_location = onnx.TensorProto.DEFAULT
            tensor.raw_data = raw
    header = {"format": SKELETON_FORMAT, "digest": digest, "size": len(body), "crc": zlib.crc32(body)}
    header["facts"] = graph.facts()
    _keep(target, json.dumps(header).encode() + b"\n" + body)


def _find(raw: bytes, folder: Path, files: list[list], stack: contextlib.ExitStack) -> tuple[str, int, int] | None:
    """(file name, offset, length) of ``raw`` in the model file or one of its external-data files.
    Exporters write the initializers in order, so each search starts where the last one ended."""
    for file in files:
        location, data, start = file
        if data is None:
            try:
                with open(folder / location, "rb") as handle:  # the map keeps its own
                    data = file[1] = stack.enter_context(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))
            except (OSError, ValueError):
                data = file[1] = b""
        offset = _offset(data, raw, start)
        if offset >= 0:
            file[2] = offset + len(raw)
            return location, offset, len(raw)
    return None


def _offset(data: bytes | mmap.mmap, raw: bytes, start: int) -> int:
    """Where ``raw`` lies in ``data``, -1 if nowhere. A tensor's bytes follow the previous one's
    after a few header bytes: a short prefix found there and compared whole saves searching for
    the whole tensor (which costs a pass over it for every search)."""
    near = data.find(raw[:64], start, start + NEAR_BYTES + 64)
    if near >= 0 and data[near : near + len(raw)] == raw:
        return near
    offset = data.find(raw, start)
    return data.find(raw) if offset < 0 and start else offset


def read_skeleton(target: Path) -> tuple[onnx.ModelProto, dict] | None:
    """A stored skeleton and its facts, or None where there is none, or it is damaged or foreign
    (then the graph is loaded and its skeleton stored again)."""
    try:
        header, body = target.read_bytes().split(b"\n", 1)
        meta = json.loads(header)
        if meta["format"] != SKELETON_FORMAT or meta["size"] != len(body) or meta["crc"] != zlib.crc32(body):
            return None
        os.utime(target)  # the recency the cache's eviction goes by
        return onnx.load_from_string(body), dict(meta["facts"])
    except (OSError, ValueError, KeyError, TypeError, DecodeError):
        return None


def load_weights(model: onnx.ModelProto, path: Path, digest: str, root: Path) -> None:
    """Fill the skeleton's referenced initializers from the model's files, which must still hold
    the content it was made from."""
    current = model_content(path, root)
    if current is None or current[0] != digest:
        raise ModelLoadError(
            f"{path} changed after onnxviz loaded it: its weights no longer belong to the loaded graph.",
            "Load the model again (rerun the command, or call onnxviz.load anew).",
        )
    try:
        with contextlib.ExitStack() as stack:
            opened: dict[str, BinaryIO] = {}
            for tensor in model.graph.initializer:
                if tensor.data_location != onnx.TensorProto.EXTERNAL:
                    continue
                info = {entry.key: entry.value for entry in tensor.external_data}
                location = info["location"]
                if location not in opened:
                    named = path if location == MODEL_FILE else path.parent / location
                    opened[location] = stack.enter_context(open(named, "rb"))
                opened[location].seek(int(info["offset"]))
                tensor.raw_data = opened[location].read(int(info["length"]))
                tensor.ClearField("data_location")
                del tensor.external_data[:]
    except OSError as exc:  # removed or replaced meanwhile
        raise ModelLoadError(
            f"The weights of {path} cannot be read ({exc}).", "Load the model again (rerun the command)."
        ) from None


@functools.cache
def source_digest() -> str:
    """A digest of onnxviz's own source: a changed onnxviz never reads an older one's graphs,
    also between releases (the version number alone would not tell two working trees apart)."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _keep(path: Path, data: bytes) -> None:
    """Write a memo atomically; a failure (no space, no rights) only loses the memo."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data)
