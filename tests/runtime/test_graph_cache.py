"""The on-disk graph cache: a stored entry gives the same projections as a fresh build, and a
changed model, a damaged or foreign entry, the size bound and the environment all behave."""

from __future__ import annotations

import json
import os
import shutil
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import onnxviz
from onnxviz.errors import UsageError
from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import InverseSpec
from onnxviz.runtime import sessions
from onnxviz.runtime.gradient import GradientEngine
from onnxviz.runtime.graph_cache import (
    FORWARD_FILE,
    MANIFEST,
    WEIGHTS_FILE,
    GraphCache,
    parse_size,
    projector_key,
)
from onnxviz.runtime.projector import Projector
from onnxviz.runtime.sessions import choose_device
from tests.helpers import DEMO

POOL3 = "/features/pool3/MaxPool_output_0"
CONV2 = "/features/relu2/Relu_output_0"
DEVICE = choose_device("cpu")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A private copy of the demo model, which a test may rewrite."""
    path = tmp_path / "model.onnx"
    shutil.copyfile(DEMO, path)
    return path


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("ONNXVIZ_CACHE_DIR", str(root))
    return root


def project(path: Path, tensor: str = POOL3, rule: str = "deconvnet") -> np.ndarray:
    """Projections of the four first channels of ``tensor`` for a fixed input, by a new Projector."""
    graph = ModelGraph.load(path)
    shape = graph.concrete_input_shape()
    projector = Projector(graph, InverseSpec(tensor, shape, rule=rule, form=DEVICE.form, sparse=True), DEVICE)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    forward = projector.forward(x, graph.input_name)
    activation = forward[tensor].numpy()
    return projector.invert(activation, np.arange(4), forward)


def fresh(path: Path, monkeypatch: pytest.MonkeyPatch, **kwargs: str) -> np.ndarray:
    """The projection built from scratch, the cache turned off."""
    with monkeypatch.context() as patch:
        patch.setenv("ONNXVIZ_CACHE", "0")
        return project(path, **kwargs)


def entries(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []


def key_of(path: Path, tensor: str = POOL3, rule: str = "deconvnet") -> str:
    graph = ModelGraph.load(path)
    shape = graph.concrete_input_shape()
    key = projector_key(graph, InverseSpec(tensor, shape, rule=rule, form=DEVICE.form, sparse=True))
    assert key is not None
    return key


@pytest.mark.parametrize("rule", ["deconvnet", "guided", "saliency"])
def test_a_cached_projector_is_bit_identical_to_a_fresh_build(
    model: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, rule: str
) -> None:
    expected = fresh(model, monkeypatch, rule=rule)
    assert entries(cache_dir) == []
    stored = project(model, rule=rule)  # builds, stores, opens the stored files
    (entry,) = entries(cache_dir)
    assert entry.name == key_of(model, rule=rule)
    os.utime(entry / MANIFEST, (0, 0))
    loaded = project(model, rule=rule)  # opens the entry without building
    assert (entry / MANIFEST).stat().st_mtime > 0, "the second projector did not read the entry"
    assert entries(cache_dir) == [entry]
    np.testing.assert_array_equal(stored, expected)
    np.testing.assert_array_equal(loaded, expected)


def test_every_field_of_the_spec_is_in_the_key(model: Path, cache_dir: Path) -> None:
    """A paired or layer-source inverse is another graph: it never opens another spec's entry."""
    graph = ModelGraph.load(model)
    base = InverseSpec(POOL3, graph.concrete_input_shape())
    variants = [
        base,
        replace(base, target=CONV2),
        replace(base, input_shape=(1, 3, 96, 96)),
        replace(base, source="/features/pool1/MaxPool_output_0"),
        replace(base, rule="saliency"),
        replace(base, form="portable"),
        replace(base, lrn="passthrough"),
        replace(base, sparse=True),
        replace(base, paired=True),
    ]
    keys = [projector_key(graph, spec) for spec in variants]
    assert None not in keys and len(set(keys)) == len(variants)
    assert projector_key(graph, InverseSpec(POOL3, graph.concrete_input_shape())) == keys[0]


def test_a_layer_gradient_engine_opened_from_its_entry_gives_the_same_numbers(model: Path, cache_dir: Path) -> None:
    """The stored forward graph keeps the layer source among its outputs."""
    source = "/features/pool1/MaxPool_output_0"
    shape = ModelGraph.load(model).concrete_input_shape()
    images = np.random.default_rng(2).standard_normal((2, *shape[1:])).astype(np.float32)

    def run() -> tuple[np.ndarray, ...]:
        engine = GradientEngine(ModelGraph.load(model), "logits", shape, DEVICE, source=source)
        return engine.value_activation_gradient(images, np.ones_like)

    built = run()
    (entry,) = entries(cache_dir)
    os.utime(entry / MANIFEST, (0, 0))
    opened = run()
    assert (entry / MANIFEST).stat().st_mtime > 0, "the second engine did not read the entry"
    for first, second in zip(built, opened, strict=True):
        np.testing.assert_array_equal(first, second)


def test_weights_are_stored_once_for_both_graphs(model: Path, cache_dir: Path) -> None:
    project(model)
    (entry,) = entries(cache_dir)
    weights = sum(t.ByteSize() for t in onnx.load(model).graph.initializer)
    assert (entry / WEIGHTS_FILE).stat().st_size <= weights
    total = sum(f.stat().st_size for f in entry.iterdir())
    assert total < 1.3 * weights, f"entry {total} bytes for {weights} bytes of weights"


def test_a_changed_model_file_misses_the_cache(model: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = project(model)
    proto = onnx.load(model)
    weight = next(t for t in proto.graph.initializer if t.name == "features.conv1.weight")
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight)[::-1].copy(), weight.name))
    onnx.save(proto, model)  # same path, other content
    after = project(model)
    assert len(entries(cache_dir)) == 2
    np.testing.assert_array_equal(after, fresh(model, monkeypatch))
    assert not np.array_equal(after, before)


def test_changed_external_weights_miss_the_cache(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The graph file stays byte-identical when only the external weights beside it change."""
    path = tmp_path / "external.onnx"
    proto = onnx.load(DEMO)
    onnx.save(proto, path, save_as_external_data=True, location="external.onnx.data", size_threshold=0)
    graph_bytes = path.read_bytes()
    before = project(path)
    proto = onnx.load(DEMO)  # the first was turned into external references by saving it
    weight = next(t for t in proto.graph.initializer if t.name == "features.conv1.weight")
    weight.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(weight), weight.name))
    (tmp_path / "external.onnx.data").unlink()
    onnx.save(proto, path, save_as_external_data=True, location="external.onnx.data", size_threshold=0)
    assert path.read_bytes() == graph_bytes
    after = project(path)
    assert len(entries(cache_dir)) == 2
    np.testing.assert_array_equal(after, fresh(path, monkeypatch))
    assert not np.array_equal(after, before)


def saved_optimized(entry: Path) -> list[Path]:
    """The graphs onnxruntime optimized for this CPU and saved in the entry, with their record."""
    kinds = ("forward.", "inverse.", "optimized.")
    return sorted(p for p in entry.iterdir() if p.name.startswith(kinds) and p.name.count(".") == 2)


@pytest.mark.parametrize("damage", ["truncated weights", "flipped bytes", "foreign manifest", "unreadable graph"])
def test_a_damaged_entry_is_rebuilt(model: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    """Damage to what the graph files need: found when they are opened (here, on a CPU for which
    no optimized graphs were saved yet, so the graph files themselves are read)."""
    expected = fresh(model, monkeypatch)
    project(model)
    (entry,) = entries(cache_dir)
    for path in saved_optimized(entry):
        path.unlink()
    weights = entry / WEIGHTS_FILE
    if damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:-100])
    elif damage == "flipped bytes":  # same size: only the checksum tells
        data = np.frombuffer(weights.read_bytes(), np.uint8).copy()
        data[3::4] ^= 0x40  # every float's exponent: every weight changes
        weights.write_bytes(data.tobytes())
    elif damage == "foreign manifest":
        (entry / MANIFEST).write_text(json.dumps({"format": 999, "key": "someone else's"}))
    else:  # sizes and checksums agree, yet onnxruntime cannot read the graph: caught when opened
        (entry / FORWARD_FILE).write_bytes(b"not an onnx model")
        manifest = json.loads((entry / MANIFEST).read_text())
        manifest["files"][FORWARD_FILE] = [17, zlib.crc32(b"not an onnx model")]
        (entry / MANIFEST).write_text(json.dumps(manifest))
    np.testing.assert_array_equal(project(model), expected)
    # the damaged entry was dropped; the next run stores a whole one again
    np.testing.assert_array_equal(project(model), expected)
    assert GraphCache(cache_dir).load(entry.name) is not None


def test_optimized_graphs_are_saved_once_and_then_opened(
    model: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run stores the entry and onnxruntime's optimized graphs beside it; the next runs
    open those with the optimizations off (never optimizing again). All give the same numbers to
    the bit."""
    expected = fresh(model, monkeypatch)
    np.testing.assert_array_equal(project(model), expected)
    (entry,) = entries(cache_dir)
    saved = saved_optimized(entry)
    assert [p.name.split(".")[0] for p in saved] == ["forward", "inverse", "optimized"]
    stamps = [p.stat().st_mtime_ns for p in saved]
    levels = []
    real = sessions.ort.InferenceSession

    def recording(source, options, **kwargs):
        levels.append((Path(source).name, options.graph_optimization_level))
        return real(source, options, **kwargs)

    monkeypatch.setattr(sessions.ort, "InferenceSession", recording)
    np.testing.assert_array_equal(project(model), expected)
    disabled = sessions.ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert sorted(levels) == [(saved[0].name, disabled), (saved[1].name, disabled)]
    assert [p.stat().st_mtime_ns for p in saved] == stamps


def test_optimized_graphs_touched_but_whole_are_kept(
    model: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A saved graph whose stat stamp changed (copied, touched) but whose bytes did not passes its
    CRC and is opened, not saved again."""
    expected = fresh(model, monkeypatch)
    project(model)
    (entry,) = entries(cache_dir)
    forward, _, record = saved_optimized(entry)
    os.utime(forward, ns=(1, 1))
    before = record.read_text()
    np.testing.assert_array_equal(project(model), expected)
    assert record.read_text() == before and forward.stat().st_mtime_ns == 1


@pytest.mark.parametrize("damage", ["truncated", "flipped bytes", "no record", "unreadable"])
def test_damaged_optimized_graphs_are_saved_again(
    model: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    expected = fresh(model, monkeypatch)
    project(model)
    (entry,) = entries(cache_dir)
    forward, inverse, record = saved_optimized(entry)
    if damage == "truncated":
        forward.write_bytes(forward.read_bytes()[:-100])
    elif damage == "flipped bytes":  # the same size; onnxruntime may well read it: only the CRC tells
        data = bytearray(inverse.read_bytes())
        data[len(data) // 2] ^= 0x40
        inverse.write_bytes(bytes(data))
    elif damage == "no record":
        record.unlink()
    else:  # the record agrees, yet onnxruntime cannot read the graph
        forward.write_bytes(b"not an onnx model")
        recorded = json.loads(record.read_text())
        recorded[forward.name] = [17, zlib.crc32(b"not an onnx model")]
        record.write_text(json.dumps(recorded))
    np.testing.assert_array_equal(project(model), expected)
    assert [p.name for p in saved_optimized(entry)] == [forward.name, inverse.name, record.name]
    recorded = json.loads(record.read_text())
    for path in (forward, inverse):
        stat = path.stat()
        assert recorded[path.name] == [stat.st_size, zlib.crc32(path.read_bytes()), stat.st_mtime_ns, stat.st_ino]
    np.testing.assert_array_equal(project(model), expected)


def test_the_size_bound_evicts_the_least_recently_used(
    model: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def size(entry: Path) -> int:
        return sum(f.stat().st_size for f in entry.iterdir())

    project(model, rule="deconvnet")
    (first,) = entries(cache_dir)
    project(model, rule="guided")
    (second,) = [e for e in entries(cache_dir) if e != first]
    limit = size(first) + int(1.5 * size(second))  # room for the first two, not for a third like the second
    monkeypatch.setenv("ONNXVIZ_CACHE_SIZE", str(limit))
    os.utime(first / MANIFEST, (1, 1))
    os.utime(second / MANIFEST, (2, 2))
    project(model, rule="deconvnet")  # reading the first makes it the most recently used
    project(model, rule="saliency")  # a third entry: the second, least recently used, goes
    remaining = entries(cache_dir)
    assert first in remaining and second not in remaining and len(remaining) == 2
    assert sum(size(e) for e in remaining) <= limit


def test_a_check_sweep_saves_no_optimized_graphs(cache_dir: Path) -> None:
    """``check`` uses each layer's entry once: writing onnxruntime's optimized graphs would only
    cost time and room."""
    model = onnxviz.load(DEMO, device="cpu")
    assert model.check().ok
    stored = entries(cache_dir)
    assert len(stored) >= 4 and all(saved_optimized(entry) == [] for entry in stored)
    model.project(np.zeros(model.input_shape(), np.float32), node="conv2")
    assert any(saved_optimized(entry) for entry in entries(cache_dir))


def test_eviction_touches_only_the_caches_own_directories(model: Path, cache_dir: Path) -> None:
    project(model)
    (entry,) = entries(cache_dir)
    size = sum(f.stat().st_size for f in entry.iterdir())
    (cache_dir / "photos").mkdir()
    (cache_dir / "photos" / "big.bin").write_bytes(bytes(4 * size))
    (cache_dir / ".tmp-half").mkdir()
    GraphCache(cache_dir, limit=size // 2).evict()
    assert entries(cache_dir) == [cache_dir / "photos"]
    assert (cache_dir / ".tmp-half").exists()


def test_an_entry_larger_than_the_bound_is_not_stored(
    model: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONNXVIZ_CACHE_SIZE", "1K")
    expected = fresh(model, monkeypatch)
    np.testing.assert_array_equal(project(model), expected)
    assert entries(cache_dir) == []
    assert not any(cache_dir.iterdir()), "a temporary directory was left behind"


def test_the_cache_can_be_turned_off(model: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for off in ("0", "off", "false"):
        monkeypatch.setenv("ONNXVIZ_CACHE", off)
        project(model)
        assert entries(cache_dir) == []
    monkeypatch.setenv("ONNXVIZ_CACHE", "1")
    project(model)
    assert len(entries(cache_dir)) == 1


def test_the_cache_directory_follows_the_environment(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ONNXVIZ_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert GraphCache.from_environment().root == tmp_path / "xdg" / "onnxviz"
    monkeypatch.setenv("ONNXVIZ_CACHE_DIR", str(tmp_path / "elsewhere"))
    project(model)
    assert len(entries(tmp_path / "elsewhere")) == 1
    assert not (tmp_path / "xdg").exists()


def test_an_unwritable_cache_directory_is_no_error(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv("ONNXVIZ_CACHE_DIR", str(blocker / "cache"))
    np.testing.assert_array_equal(project(model), fresh(model, monkeypatch))


def test_a_concurrent_writer_of_the_same_key_is_harmless(model: Path, cache_dir: Path) -> None:
    project(model)
    (entry,) = entries(cache_dir)
    first = GraphCache(cache_dir).load(entry.name)
    proto = onnx.load(model)
    stored = GraphCache(cache_dir).store(entry.name, proto, proto, ("other",), False)  # the key is taken
    assert stored == first, "the entry already in place was replaced"
    assert entries(cache_dir) == [entry] and not any(p.name.startswith(".tmp-") for p in cache_dir.iterdir())


def test_cache_sizes_parse() -> None:
    assert parse_size("2G") == 2 * 1024**3
    assert parse_size("500M") == 500 * 1024**2
    assert parse_size("1.5k") == 1536
    assert parse_size("4096") == 4096
    assert parse_size("") == 2 * 1024**3
    with pytest.raises(UsageError, match="ONNXVIZ_CACHE_SIZE"):
        parse_size("lots")
