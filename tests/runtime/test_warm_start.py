"""What a repeat run remembers about a model file: its content digest, by the stat stamps of the
file and of its external data, and the loaded graph without its weights (a skeleton). A remembered
answer is only ever given for the bytes it was computed from; the graph from a skeleton is the
graph a plain load gives, node for node; a failing model fails alike every time."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from onnxviz.errors import ModelLoadError, UnknownNodeError
from onnxviz.graph.model import ModelGraph
from onnxviz.inverse import InverseSpec
from onnxviz.runtime import warm_start
from onnxviz.runtime.graph_cache import GraphCache
from onnxviz.runtime.projector import Projector
from onnxviz.runtime.sessions import choose_device
from onnxviz.runtime.warm_start import SKELETONS, STAMPS, load_graph, model_content
from tests import conversions
from tests.helpers import DEMO, FIXTURE_MODELS, FIXTURES, make_model

OLD = 1_600_000_000 * 10**9  # a modification time long past: the stamp is not "racy"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    shutil.copyfile(DEMO, path)
    age(path)
    return path


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The cache directory, and a process that remembers nothing yet."""
    monkeypatch.setattr(warm_start, "_remembered", {})
    path = tmp_path / "cache"
    monkeypatch.setenv("ONNXVIZ_CACHE_DIR", str(path))
    monkeypatch.delenv("ONNXVIZ_CACHE", raising=False)
    return path


def age(path: Path, mtime_ns: int = OLD) -> None:
    os.utime(path, ns=(mtime_ns, mtime_ns))


def new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget what this process remembers: only the cache directory is left, as in a new run."""
    monkeypatch.setattr(warm_start, "_remembered", {})


def sha256(*paths: Path) -> str:
    digest = hashlib.sha256(paths[0].read_bytes())
    for path in paths[1:]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def rewrite_same_size(path: Path) -> None:
    """Other weights, the same number of bytes, the same inode and the same modification time:
    only the change time tells (a copy that restores mtimes, ``cp -p`` or ``rsync -t``)."""
    before = os.stat(path)
    proto = onnx.load(path)
    weight = proto.graph.initializer[0]
    weight.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(weight), weight.name))
    with open(path, "r+b") as file:  # in place: the inode stays
        file.write(proto.SerializeToString())
    age(path, before.st_mtime_ns)
    after = os.stat(path)
    assert (after.st_size, after.st_ino, after.st_mtime_ns) == (before.st_size, before.st_ino, before.st_mtime_ns)


def test_the_digest_is_the_files_sha256_and_a_repeat_run_does_not_read_the_file(
    model: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest, data = model_content(model, root)
    assert digest == sha256(model) and data == model.read_bytes()
    assert len(list((root / STAMPS).iterdir())) == 1
    new_process(monkeypatch)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"{self} was read"))
    assert model_content(model, root) == (digest, None)


def test_a_changed_size_or_modification_time_is_hashed_again(
    model: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = model_content(model, root)
    with open(model, "ab") as file:  # a longer file
        file.write(b"\0")
    age(model)
    new_process(monkeypatch)
    assert model_content(model, root) == (sha256(model), model.read_bytes()) and sha256(model) != first
    age(model, OLD + 10**9)  # a touched file: the same bytes are read again, to the same digest
    new_process(monkeypatch)
    assert model_content(model, root) == (sha256(model), model.read_bytes())


def test_a_rewrite_that_keeps_size_inode_and_mtime_is_still_noticed(
    model: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = model_content(model, root)
    rewrite_same_size(model)
    for _ in range(2):  # in this process, then in a new one
        assert model_content(model, root)[0] == sha256(model) != first
        new_process(monkeypatch)


def test_changed_external_data_is_hashed_again(tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "external.onnx"
    onnx.save(onnx.load(DEMO), path, save_as_external_data=True, location="weights.data", size_threshold=0)
    data = tmp_path / "weights.data"
    age(path), age(data)
    first, _ = model_content(path, root)
    assert first == sha256(path, data)
    data.write_bytes(data.read_bytes()[::-1])
    age(data)
    new_process(monkeypatch)
    assert model_content(path, root)[0] == sha256(path, data) != first
    data.unlink()  # a named file that vanished: the digest is of the graph file alone
    new_process(monkeypatch)
    assert model_content(path, root)[0] == sha256(path)


def test_a_just_written_file_is_not_remembered(tmp_path: Path, root: Path) -> None:
    """Its stamp could survive a rewrite within the filesystem's timestamp granularity."""
    path = tmp_path / "fresh.onnx"
    shutil.copyfile(DEMO, path)
    assert model_content(path, root)[1] is not None
    assert model_content(path, root)[1] is not None, "read again: nothing was remembered"
    assert not (root / STAMPS).exists() and warm_start._remembered == {}


@pytest.mark.parametrize("damage", [b"", b"{not json", b'{"stamp": 3}', b'["a", "list"]'])
def test_a_damaged_memo_file_is_ignored_and_rewritten(
    model: Path, root: Path, monkeypatch: pytest.MonkeyPatch, damage: bytes
) -> None:
    model_content(model, root)
    (memo,) = (root / STAMPS).iterdir()
    memo.write_bytes(damage)
    new_process(monkeypatch)
    assert model_content(model, root) == (sha256(model), model.read_bytes())
    new_process(monkeypatch)
    assert model_content(model, root) == (sha256(model), None)


def test_a_path_that_is_no_file_has_no_content(tmp_path: Path, root: Path) -> None:
    assert model_content(tmp_path / "missing.onnx", root) is None
    assert model_content(tmp_path, root) is None


def count_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    check = onnx.checker.check_model
    monkeypatch.setattr(onnx.checker, "check_model", lambda *a, **k: (calls.append(1), check(*a, **k))[1])
    return calls


def serialized(model: onnx.ModelProto) -> bytes:
    """The model's bytes, with a tensor's explicit "stored inside" (what onnx's external-data
    loader writes) said the default way: the same model either way."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for tensor in copy.graph.initializer:
        tensor.ClearField("data_location")
    return copy.SerializeToString()


def same_graph(a: ModelGraph, b: ModelGraph) -> None:
    assert serialized(a.model) == serialized(b.model)
    assert [n.name for n in a.nodes] == [n.name for n in b.nodes]
    assert a.layers == b.layers and a.signal == b.signal and a.notes == b.notes and a.metadata == b.metadata
    assert (a.input_name, a.input_dims, a.output_names) == (b.input_name, b.input_dims, b.output_names)
    assert (a.original_opset, a.half_precision, a.layout) == (b.original_opset, b.half_precision, b.layout)
    assert a.constants.keys() == b.constants.keys()
    for name, value in a.constants.items():
        np.testing.assert_array_equal(value, b.constants[name])
    if all(isinstance(d, int) and d > 0 for d in a.input_dims[1:]):
        assert a.shapes(a.concrete_input_shape()) == b.shapes(b.concrete_input_shape())


def test_a_repeat_load_skips_the_checker_and_gives_the_same_graph(
    model: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_checks(monkeypatch)
    first = load_graph(model)
    assert len(calls) == 1
    new_process(monkeypatch)
    second = load_graph(model)
    assert len(calls) == 1, "the checker ran again on a content it passed"
    same_graph(second, ModelGraph.load(model))
    same_graph(first, second)
    rewrite_same_size(model)  # new content: checked again
    load_graph(model)
    assert len(calls) == 3


def test_without_the_cache_every_load_checks_and_nothing_is_written(
    model: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONNXVIZ_CACHE", "0")
    calls = count_checks(monkeypatch)
    load_graph(model)
    load_graph(model)
    assert len(calls) == 2 and not root.exists()


def test_a_model_that_fails_the_checker_fails_alike_every_time(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bad.onnx"
    onnx.save(make_model([helper.make_node("Relu", ["missing"], ["y"])], (1, 3, 4, 4), "y"), path)
    age(path)
    with pytest.raises(ModelLoadError) as direct:
        ModelGraph.load(path)
    for _ in range(2):
        with pytest.raises(ModelLoadError) as cached:
            load_graph(path)
        assert (cached.value.message, cached.value.hint) == (direct.value.message, direct.value.hint)
        assert "onnx.checker" in cached.value.message
        new_process(monkeypatch)


@pytest.mark.parametrize("kind", ["missing", "folder", "truncated"])
def test_unreadable_paths_give_the_errors_of_a_plain_load(tmp_path: Path, root: Path, kind: str) -> None:
    path = {"missing": tmp_path / "missing.onnx", "folder": tmp_path}.get(kind, tmp_path / "truncated.onnx")
    if kind == "truncated":
        path.write_bytes(DEMO.read_bytes()[:5000])
        age(path)
    with pytest.raises(ModelLoadError) as direct:
        ModelGraph.load(path)
    with pytest.raises(ModelLoadError) as cached:
        load_graph(path)
    assert (cached.value.message, cached.value.hint) == (direct.value.message, direct.value.hint)


def projection(path: Path) -> np.ndarray:
    """Four channels of pool3 projected for a fixed input, loaded and built as the CLI does."""
    graph = load_graph(path)
    tensor = "/features/pool3/MaxPool_output_0"
    shape = graph.concrete_input_shape()
    projector = Projector(graph, InverseSpec(tensor, shape, sparse=True), choose_device("cpu"))
    forward = projector.forward(np.random.default_rng(0).standard_normal(shape).astype(np.float32), graph.input_name)
    return projector.invert(forward[tensor].numpy(), np.arange(4), forward)


def test_a_rewritten_model_is_never_served_the_graphs_of_its_old_bytes(
    model: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = projection(model)
    new_process(monkeypatch)
    np.testing.assert_array_equal(projection(model), before)  # the stored entry, by the remembered digest
    rewrite_same_size(model)
    after = projection(model)  # in the same process
    new_process(monkeypatch)
    np.testing.assert_array_equal(projection(model), after)  # and in a new one
    monkeypatch.setenv("ONNXVIZ_CACHE", "0")
    np.testing.assert_array_equal(after, projection(model))
    assert not np.array_equal(after, before)
    assert len([e for e in root.iterdir() if len(e.name) == 40]) == 2


def skeleton_of(path: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> ModelGraph:
    """The graph a repeat run gets: stored by a first load, then read in a new process."""
    first = load_graph(path)
    assert "_pending" not in first.__dict__, "the first load is a plain one"
    new_process(monkeypatch)
    graph = load_graph(path)
    assert "_pending" in graph.__dict__, "no skeleton was stored"
    return graph


@pytest.mark.parametrize("name", ["demo.onnx", *FIXTURE_MODELS])
def test_a_graph_from_its_skeleton_is_the_plainly_loaded_graph_node_for_node(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    path = tmp_path / name
    shutil.copyfile(DEMO if name == "demo.onnx" else FIXTURES / name, path)
    age(path)
    graph = skeleton_of(path, root, monkeypatch)
    nodes = list(graph.nodes)
    answers = {layer.alias: graph.resolve(layer.alias) for layer in graph.layers}
    plain = ModelGraph.load(path)
    assert answers == {layer.alias: plain.resolve(layer.alias) for layer in plain.layers}
    same_graph(graph, plain)  # reads the weights
    assert "_pending" not in graph.__dict__
    assert all(a is b for a, b in zip(nodes, graph.nodes, strict=True)), "the nodes were replaced"
    assert all(graph.producer[t] is n for n in graph.nodes for t in n.output if t)


def test_a_repeat_load_reads_neither_the_weights_nor_the_checker(
    model: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_graph(model)
    new_process(monkeypatch)
    with monkeypatch.context() as patch:
        read_bytes = Path.read_bytes
        patch.setattr(Path, "read_bytes", lambda self: pytest.fail("read") if self == model else read_bytes(self))
        patch.setattr(onnx, "load", lambda *a, **k: pytest.fail("the model was parsed"))
        patch.setattr(onnx.checker, "check_model", lambda *a, **k: pytest.fail("the checker ran"))
        graph = load_graph(model)
        graph.resolve("conv2"), graph.layout, graph.concrete_input_shape()
        with pytest.raises(UnknownNodeError) as unknown:
            graph.resolve("conv22")
    with pytest.raises(UnknownNodeError) as plain:
        ModelGraph.load(model).resolve("conv22")
    assert (unknown.value.message, unknown.value.hint) == (plain.value.message, plain.value.hint)


def test_external_weights_are_referenced_where_they_lie(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "external.onnx"
    onnx.save(onnx.load(DEMO), path, save_as_external_data=True, location="weights.data", size_threshold=0)
    age(path), age(tmp_path / "weights.data")
    graph = skeleton_of(path, root, monkeypatch)
    (skeleton,) = (root / SKELETONS).iterdir()
    assert skeleton.stat().st_size < path.stat().st_size + 10_000, "the weights were copied into the skeleton"
    same_graph(graph, ModelGraph.load(path))


def test_a_model_whose_weights_loading_converts_has_no_skeleton(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = conversions.fp16_demo(tmp_path / "half.onnx")
    age(path)
    load_graph(path)
    new_process(monkeypatch)
    graph = load_graph(path)
    assert "_pending" not in graph.__dict__ and not (root / SKELETONS).exists()
    assert graph.half_precision


@pytest.mark.parametrize("damage", [b"", b"{}\nbytes", b"not json\n", "truncated"])
def test_a_damaged_skeleton_is_ignored_and_stored_again(
    model: Path, root: Path, monkeypatch: pytest.MonkeyPatch, damage: bytes | str
) -> None:
    load_graph(model)
    (skeleton,) = (root / SKELETONS).iterdir()
    skeleton.write_bytes(skeleton.read_bytes()[:-10] if damage == "truncated" else damage)
    new_process(monkeypatch)
    graph = load_graph(model)
    assert "_pending" not in graph.__dict__
    same_graph(graph, ModelGraph.load(model))
    new_process(monkeypatch)
    assert "_pending" in load_graph(model).__dict__


def test_weights_of_a_file_changed_since_are_refused(model: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graph = skeleton_of(model, root, monkeypatch)
    rewrite_same_size(model)
    with pytest.raises(ModelLoadError, match="changed after onnxviz loaded it"):
        graph.shapes(graph.concrete_input_shape())


def test_the_same_content_under_another_name_reads_its_own_file(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The skeleton is found by content: the weights come from the file loaded now."""
    first, second = tmp_path / "first.onnx", tmp_path / "second.onnx"
    shutil.copyfile(DEMO, first)
    load_graph(first)
    first.rename(tmp_path / "elsewhere.onnx")
    shutil.copyfile(DEMO, second)
    new_process(monkeypatch)
    graph = load_graph(second)
    assert "_pending" in graph.__dict__
    same_graph(graph, ModelGraph.load(second))


def test_remembered_digests_and_skeletons_are_bounded_with_the_cache(
    model: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_graph(model)
    remembered = [*(root / STAMPS).iterdir(), *(root / SKELETONS).iterdir()]
    assert len(remembered) == 2
    (root / STAMPS / "notes.txt").write_text("not the cache's")
    GraphCache(root, limit=0).evict()
    assert [p.name for p in (root / STAMPS).iterdir()] == ["notes.txt"] and not any((root / SKELETONS).iterdir())
    new_process(monkeypatch)
    graph = load_graph(model)  # read and stored again
    assert "_pending" not in graph.__dict__ and len(list((root / SKELETONS).iterdir())) == 1


def test_a_model_rewritten_while_loaded_never_lends_its_old_graphs_to_the_new_bytes(
    model: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loaded graph's projectors are keyed by the content it was read from, not by what the
    file holds when they are built."""
    graph = load_graph(model)  # read whole: a first load
    rewrite_same_size(model)
    tensor = "/features/pool3/MaxPool_output_0"
    shape = graph.concrete_input_shape()
    Projector(
        graph, InverseSpec(tensor, shape, sparse=True), choose_device("cpu")
    )  # built from the old bytes, and stored
    new_process(monkeypatch)
    cached = projection(model)
    monkeypatch.setenv("ONNXVIZ_CACHE", "0")
    np.testing.assert_array_equal(cached, projection(model))
