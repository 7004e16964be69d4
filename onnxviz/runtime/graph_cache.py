"""Built forward and inverse graphs kept on disk, so a repeat run skips building them.

Building a projector's graphs (the inverse, the forward rewrite) and handing them to onnxruntime
as serialized bytes is most of what a repeat ``onnxviz project`` spends outside onnxruntime's runs.
An entry holds the two graphs' structure plus one weights file they both point into (the inverse
reads the forward's weights by name, so they are stored once), and onnxruntime opens the entry
from its paths.

An entry's key covers everything the graphs depend on: the model file's content (not its path;
its digest is remembered by the files' stat stamps, ``warm_start.py``), the target, rule, input
shape, source, LRN mode, form, sparse head, pairing (all the ``InverseSpec``), custom-op
libraries, and the versions of onnxviz (its
source), onnx and onnxruntime. Entries are written into a temporary directory and renamed into
place, so a crash or a concurrent writer never leaves a half entry under a key; a manifest with
each file's size and CRC lets a damaged or foreign entry be noticed, dropped and rebuilt, never
reported as an error. The weights file's CRC is checked while onnxruntime opens the two
sessions side by side, and no session of an entry that fails it is used; on the CPU the entry
also keeps onnxruntime's optimized graphs, which later runs open instead (``optimized.py``). The
directory is bounded: beyond the limit the least recently used entries go.

Environment: ``ONNXVIZ_CACHE=0`` turns the cache off, ``ONNXVIZ_CACHE_DIR`` moves it (default
``$XDG_CACHE_HOME/onnxviz``, else ``~/.cache/onnxviz``), ``ONNXVIZ_CACHE_SIZE`` bounds it (bytes,
or with a K/M/G suffix; default 2G).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx
import onnxruntime as ort

from onnxviz.errors import InferenceError, UsageError
from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import InverseSpec
from onnxviz.runtime.checksums import file_whole
from onnxviz.runtime.optimized import OptimizedGraphs
from onnxviz.runtime.sessions import Device, create_session
from onnxviz.runtime.warm_start import SKELETONS, STAMPS, cache_root, model_content, source_digest

FORMAT = 1
MANIFEST = "manifest.json"
FORWARD_FILE = "forward.onnx"
INVERSE_FILE = "inverse.onnx"
WEIGHTS_FILE = "weights.bin"
DEFAULT_LIMIT = 2 * 1024**3
EXTERNAL_THRESHOLD = 1024  # tensors smaller than this stay inside the graph file
STALE_TEMPORARY_SECONDS = 3600  # a temporary directory this old belongs to a writer that died
KEY_LENGTH = 40
ENTRY_NAME = re.compile(f"[0-9a-f]{{{KEY_LENGTH}}}")
TEMPORARY_NAME = re.compile(r"\.tmp-[0-9a-f]{32}")  # also core.files.write_atomically's
UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


@dataclass(frozen=True)
class CachedGraphs:
    """A stored entry: the graph files onnxruntime opens and what the projector reads besides."""

    forward: Path
    inverse: Path
    forward_tensors: tuple[str, ...]
    sparse: bool
    weights: tuple[int, int] = (0, 0)  # the weights file's size and CRC, as the manifest gives them

    def weights_whole(self) -> bool:
        """Whether the weights file has the size and CRC its manifest gives. Read through a map
        (no copy); zlib lets other threads run meanwhile, so this runs beside the session
        initialisations that read the same file."""
        return file_whole(self.forward.parent / WEIGHTS_FILE, *self.weights)


class GraphCache:
    """A directory of entries, each a subdirectory named by its key."""

    def __init__(self, root: Path, limit: int = DEFAULT_LIMIT) -> None:
        self.root = Path(root)
        self.limit = limit

    @classmethod
    def from_environment(cls) -> GraphCache | None:
        """The cache the environment asks for, or None where ``ONNXVIZ_CACHE`` turns it off."""
        root = cache_root()
        return None if root is None else cls(root, parse_size(os.environ.get("ONNXVIZ_CACHE_SIZE", "")))

    # -- reading --------------------------------------------------------------------------------

    def load(self, key: str) -> CachedGraphs | None:
        """The entry under ``key`` if it is whole and ours; a damaged one is removed."""
        cached = self.peek(key)
        if cached is not None and not cached.weights_whole():
            self.discard(key)
            return None
        return cached

    def peek(self, key: str) -> CachedGraphs | None:
        """The entry under ``key`` with its manifest and graph files checked, not yet its weights
        file (``CachedGraphs.weights_whole``); a damaged or foreign one is removed."""
        entry = self.root / key
        if not entry.is_dir():
            return None
        try:
            manifest = json.loads((entry / MANIFEST).read_text())
            if manifest.get("format") != FORMAT or manifest.get("key") != key:
                raise ValueError("a foreign entry")
            files = {name: (int(size), int(crc)) for name, (size, crc) in manifest["files"].items()}
            if files.keys() != {FORWARD_FILE, INVERSE_FILE, WEIGHTS_FILE}:
                raise ValueError("a foreign entry")
            if not all(file_whole(entry / name, *files[name]) for name in (FORWARD_FILE, INVERSE_FILE)):
                raise ValueError("a graph file is damaged")
            os.utime(entry / MANIFEST)  # the recency eviction goes by
            return CachedGraphs(
                entry / FORWARD_FILE,
                entry / INVERSE_FILE,
                tuple(str(t) for t in manifest["forward_tensors"]),
                bool(manifest["sparse"]),
                files[WEIGHTS_FILE],
            )
        except (OSError, ValueError, KeyError, TypeError):
            self.discard(key)
            return None

    def discard(self, key: str) -> None:
        """Remove an entry (one that failed to load); a missing one is fine."""
        shutil.rmtree(self.root / key, ignore_errors=True)

    # -- writing --------------------------------------------------------------------------------

    def store(
        self,
        key: str,
        forward: onnx.ModelProto,
        inverse: onnx.ModelProto,
        forward_tensors: tuple[str, ...],
        sparse: bool,
    ) -> CachedGraphs | None:
        """Write an entry and return it, or None when it cannot be written (no space, no rights,
        larger than the whole cache). The two protos are left as they were."""
        temporary = self.root / f".tmp-{uuid.uuid4().hex}"  # matches TEMPORARY_NAME
        try:
            temporary.mkdir(parents=True)
            files = write_graphs(temporary, forward, inverse)
            if sum(size for size, _ in files.values()) > self.limit:
                return None
            manifest = {"format": FORMAT, "key": key, "files": files}
            manifest.update(forward_tensors=list(forward_tensors), sparse=sparse)
            (temporary / MANIFEST).write_text(json.dumps(manifest))
            with contextlib.suppress(OSError):  # another process stored the same key first: as good
                os.rename(temporary, self.root / key)
            self.evict(keep=key)
        except OSError:
            return None
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
        return self.peek(key)  # its weights are checked while onnxruntime opens it

    def evict(self, keep: str = "") -> None:
        """Drop least recently used entries (and remembered digests and skeletons,
        ``runtime/warm_start.py``) until the cache fits its limit, and temporary files left by
        writers that died. Only names this cache makes are touched: a directory pointed at by
        mistake (``ONNXVIZ_CACHE_DIR=~``) loses nothing else."""
        entries = []
        for folder in (self.root, self.root / STAMPS, self.root / SKELETONS):
            for path in folder.iterdir() if folder.is_dir() else ():
                try:
                    if TEMPORARY_NAME.fullmatch(path.name):
                        if time.time() - path.stat().st_mtime > STALE_TEMPORARY_SECONDS:
                            remove(path)
                    elif ENTRY_NAME.fullmatch(path.name) and path.is_dir() and folder == self.root:
                        used = (path / MANIFEST).stat().st_mtime if (path / MANIFEST).exists() else 0.0
                        entries.append((used, sum(f.stat().st_size for f in path.iterdir()), path))
                    elif ENTRY_NAME.fullmatch(path.name) and path.is_file() and folder != self.root:
                        entries.append((path.stat().st_mtime, path.stat().st_size, path))
                except OSError:
                    continue  # removed by another process meanwhile
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.limit:
                break
            if path.name != keep:
                remove(path)
                total -= size


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


Sessions = tuple[ort.InferenceSession, ort.InferenceSession, tuple[str, ...], bool]


def open_cached(key: str | None, device: Device, save_optimized: bool = True) -> Sessions | None:
    """The forward and inverse sessions of a stored entry (with the forward tensors the inverse
    reads and whether its head is sparse), or None on a miss. An entry that is damaged or that
    onnxruntime cannot open is dropped and counts as a miss."""
    cache = GraphCache.from_environment()
    cached = cache.peek(key) if cache and key else None
    return open_entry(cache, key, cached, device, save_optimized) if cached else None


def open_built(
    key: str | None,
    device: Device,
    forward: onnx.ModelProto,
    inverse: onnx.ModelProto,
    forward_tensors: tuple[str, ...],
    sparse: bool,
    save_optimized: bool = True,
) -> Sessions:
    """Sessions for freshly built graphs, which are stored first where the cache is on (then
    onnxruntime reads the files just written instead of the weights serialized once more)."""
    cache = GraphCache.from_environment()
    cached = cache.store(key, forward, inverse, forward_tensors, sparse) if cache and key else None
    opened = open_entry(cache, key, cached, device, save_optimized) if cached else None
    if opened is not None:
        return opened
    forward_session = create_session(forward, device, "forward graph")
    return forward_session, create_session(inverse, device, "inverse graph"), forward_tensors, sparse


def open_entry(
    cache: GraphCache, key: str, cached: CachedGraphs, device: Device, save_optimized: bool = False
) -> Sessions | None:
    """The sessions of an entry, or None (the entry dropped) where its weights fail their check
    or onnxruntime cannot open it.

    Initialising the two sessions is most of what a warm run spends outside onnxruntime's runs,
    and onnxruntime releases the GIL meanwhile: they are made side by side, while this thread
    checks the weights file they read (a damaged one only gives wrong numbers or a read error,
    and is caught before any session is used). On the CPU, the graphs onnxruntime optimizes are
    saved beside the entry (``save_optimized``; a sweep over every layer, whose entries are each
    used once, does not pay for writing them) and opened instead from then on."""
    optimized = OptimizedGraphs.of(cached.forward.parent, device)
    if optimized is not None:
        opened = optimized.open(device)
        if opened is not None:
            return (*opened, cached.forward_tensors, cached.sparse)
    if not save_optimized:
        optimized = None
    temporaries = optimized.temporaries() if optimized is not None else (None, None)
    saving = temporaries
    try:
        sessions = open_pair(cached, device, saving)
        if sessions is None and optimized is not None:  # saving them failed (a graph over 2 GB, a full disk)
            saving = (None, None)
            sessions = open_pair(cached, device, saving)
        if sessions is None:
            cache.discard(key)
            return None
        if optimized is not None and saving[0] is not None:
            optimized.keep(saving)
            cache.evict(keep=key)  # the entry has grown by the saved graphs
    finally:
        for path in temporaries:  # moved into place by ``keep``, or left by a failure
            if path is not None:
                path.unlink(missing_ok=True)
    return (*sessions, cached.forward_tensors, cached.sparse)


def open_pair(
    cached: CachedGraphs, device: Device, save_to: tuple[Path | None, Path | None]
) -> tuple[ort.InferenceSession, ort.InferenceSession] | None:
    """Both sessions of the entry's graph files, side by side, with the weights file checked
    meanwhile; None where onnxruntime refuses one or the weights fail their check."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        forward = pool.submit(create_session, cached.forward, device, "forward graph", False, save_to[0])
        inverse = pool.submit(create_session, cached.inverse, device, "inverse graph", False, save_to[1])
        whole = cached.weights_whole()
        try:
            sessions = forward.result(), inverse.result()
        except InferenceError:
            return None
    return sessions if whole else None


def write_graphs(directory: Path, forward: onnx.ModelProto, inverse: onnx.ModelProto) -> dict[str, list[int]]:
    """Write both graphs with their large tensors in one weights file; an inverse tensor equal to
    a forward one (same name, same bytes) points at the forward's copy. Returns each file's
    [size, crc32]. The tensors are moved out only while the graph files are serialized.

    No fsync: an entry torn by a power cut fails its checksums and is rebuilt, and syncing every
    entry would make a sweep over all layers (``check``) wait on the disk."""
    written: dict[str, tuple[bytes, int]] = {}  # the forward's tensors by name: (bytes, offset)
    moved: list[tuple[onnx.TensorProto, bytes]] = []
    files = {}
    try:
        crc = 0
        with open(directory / WEIGHTS_FILE, "wb") as weights:
            for model in (forward, inverse):
                for tensor in model.graph.initializer:
                    data = tensor.raw_data
                    if len(data) < EXTERNAL_THRESHOLD or tensor.data_location == onnx.TensorProto.EXTERNAL:
                        continue
                    shared = written.get(tensor.name)
                    if shared is not None and shared[0] == data:
                        offset = shared[1]
                    else:
                        offset = weights.tell()
                        weights.write(data)
                        crc = zlib.crc32(data, crc)
                        written.setdefault(tensor.name, (data, offset))
                    moved.append((tensor, data))
                    length = len(data)
                    tensor.ClearField("raw_data")
                    tensor.data_location = onnx.TensorProto.EXTERNAL
                    for name, value in (("location", WEIGHTS_FILE), ("offset", offset), ("length", length)):
                        entry = tensor.external_data.add()
                        entry.key, entry.value = name, str(value)
            files[WEIGHTS_FILE] = [weights.tell(), crc]
        for name, model in ((FORWARD_FILE, forward), (INVERSE_FILE, inverse)):
            data = model.SerializeToString()
            (directory / name).write_bytes(data)
            files[name] = [len(data), zlib.crc32(data)]
    finally:
        for tensor, data in moved:
            del tensor.external_data[:]
            tensor.data_location = onnx.TensorProto.DEFAULT
            tensor.raw_data = data
    return files


def projector_key(graph: ModelGraph, spec: InverseSpec) -> str | None:
    """The key of a projector's graphs, or None where the cache is off or the model was not read
    from a file (nothing to tell two in-memory models apart by without serializing them). The
    content is the one the graph was loaded from (``load_graph``): a file rewritten since never
    gets graphs built from the old one under its key; a graph loaded otherwise goes by what the
    file holds now. Every field of the spec counts: a paired or layer-source inverse is another
    graph, under another key."""
    cache = GraphCache.from_environment()
    if cache is None or graph.path is None:
        return None
    content = graph.digest or (model_content(Path(graph.path), cache.root) or (None,))[0]
    if content is None:
        return None
    parts = [FORMAT, source_digest(), onnx.__version__, ort.__version__, content, list(graph.custom_ops)]
    parts.append(asdict(spec))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:KEY_LENGTH]


def parse_size(text: str) -> int:
    """``ONNXVIZ_CACHE_SIZE``: bytes, or a number with a K, M or G suffix; empty: the default."""
    text = text.strip().upper().removesuffix("B")
    if not text:
        return DEFAULT_LIMIT
    unit = text[-1] if text[-1] in UNITS else ""
    try:
        return int(float(text[: len(text) - len(unit)]) * UNITS[unit])
    except ValueError:
        raise UsageError(
            f"ONNXVIZ_CACHE_SIZE={text!r} is not a size.",
            "Give bytes or a number with a K, M or G suffix, e.g. ONNXVIZ_CACHE_SIZE=2G.",
        ) from None
