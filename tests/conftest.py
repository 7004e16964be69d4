"""Session-wide fixtures: models the suite loads again and again, loaded once.

Loading is not free (parsing, opset upgrade, folding, shape inference: a noticeable share of the
suite on this machine), and most tests only read what was loaded. The fixtures below hand out one
shared object per model for the whole session, so **a test that uses them must not modify what it
gets** (no editing ``graph.model`` in place, no changing a ``Model``'s preprocessing); a test that
needs to change a model loads its own copy (``tests.helpers.load_fixture``, ``onnxviz.load``).
Session caches inside an ``onnxviz.Model`` (projectors, occluders) are meant to be shared: reusing
them across tests is what a user's repeated calls do.

Markers are declared in pyproject.toml (``upstream``, ``slow``, ``torch``, ``long``). A ``long``
test (a property or fuzz profile of thousands of cases, minutes to hours) runs only when asked
for by name: ``python -m pytest -m long``; every other run skips it, saying how to run it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import onnx
import pytest

import onnxviz
from onnxviz.graph.model import ModelGraph
from tests.helpers import DEMO, FIXTURE_MODELS, FIXTURES, load_fixture


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the ``long`` profiles unless the marker expression names them (``-m long``)."""
    if "long" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="a long profile: run it with `python -m pytest -m long`")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


def _cached(load: Callable[[str], object]) -> Callable[[str], object]:
    """``load`` memoised by fixture name, refusing names that are not committed fixtures."""
    cache: dict[str, object] = {}

    def get(name: str) -> object:
        if name not in FIXTURE_MODELS:
            raise KeyError(f"{name!r} is not a committed fixture (tests/fixtures/models): {FIXTURE_MODELS}")
        if name not in cache:
            cache[name] = load(name)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def demo_model() -> onnxviz.Model:
    """The bundled demo classifier (``models/demo.onnx``), loaded for the CPU."""
    return onnxviz.load(DEMO, device="cpu")


@pytest.fixture(scope="session")
def fixture_proto() -> Callable[[str], onnx.ModelProto]:
    """``fixture_proto(name)``: the fixture's ``ModelProto`` as committed (read-only)."""
    return _cached(load_fixture)


@pytest.fixture(scope="session")
def fixture_graph() -> Callable[[str], ModelGraph]:
    """``fixture_graph(name)``: the fixture as a loaded ``ModelGraph`` (read-only)."""
    return _cached(lambda name: ModelGraph.load(FIXTURES / name))


@pytest.fixture(scope="session")
def fixture_model() -> Callable[[str], onnxviz.Model]:
    """``fixture_model(name)``: ``onnxviz.load`` of the fixture on the CPU (read-only)."""
    return _cached(lambda name: onnxviz.load(FIXTURES / name, device="cpu"))


@pytest.fixture(scope="session")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real photograph (scikit-image's chelsea, 300x451 RGB) saved as a PNG file."""
    import skimage.data

    path = tmp_path_factory.mktemp("pictures") / "chelsea.png"
    cv2.imwrite(str(path), cv2.cvtColor(skimage.data.chelsea(), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="session", autouse=True)
def graph_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The on-disk graph cache lives in the session's temporary directory, never the user's
    (``~/.cache/onnxviz``); it is shared by the whole session, as a user's repeated runs share it.
    Session-scoped, so it is in place before any other session fixture builds a projector."""
    root = tmp_path_factory.getbasetemp() / "onnxviz-cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ONNXVIZ_CACHE_DIR", str(root))
        patch.delenv("ONNXVIZ_CACHE", raising=False)
        patch.delenv("ONNXVIZ_CACHE_SIZE", raising=False)
        yield root
