"""``onnxviz serve``: its folders checked before anything starts, the host warning, the missing extra.

The server itself is replaced by a recorder: what the command hands it is what uvicorn would serve.
"""

from __future__ import annotations

import sys

import pytest

import onnxviz
import onnxviz.serve
from tests.cli_helpers import run_cli
from tests.helpers import DEMO


@pytest.fixture
def started(monkeypatch) -> list[tuple]:
    calls: list[tuple] = []
    monkeypatch.setattr(onnxviz.serve, "run", lambda *args: calls.append(args))
    return calls


def test_serve_hands_the_loaded_model_and_folders_to_the_server(capsys, started, tmp_path) -> None:
    code, _, err = run_cli(capsys, "serve", DEMO, "--images", tmp_path, "--state", tmp_path, "--port", "8123")
    assert code == 0, err
    ((model, images, state, host, port),) = started
    assert model.graph.input_name == "input" and (images, state, host, port) == (tmp_path, tmp_path, "127.0.0.1", 8123)
    assert "warning" not in err and "http://127.0.0.1:8123/" in err


def test_serve_warns_in_one_line_when_bound_beyond_localhost(capsys, started) -> None:
    code, _, err = run_cli(capsys, "serve", DEMO, "--host", "0.0.0.0")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "0.0.0.0" in warnings[0] and started[0][3] == "0.0.0.0"


@pytest.mark.parametrize("flag", ["--images", "--state"])
def test_serve_refuses_a_folder_that_does_not_exist(capsys, started, tmp_path, flag) -> None:
    code, _, err = run_cli(capsys, "serve", DEMO, flag, tmp_path / "missing")
    assert code == 2 and flag in err and "missing" in err and not started


def test_serve_without_the_extra_says_how_to_install_it(capsys, monkeypatch) -> None:
    for name in [m for m in sys.modules if m == "onnxviz.serve" or m.startswith("onnxviz.serve.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delattr(onnxviz, "serve")  # else ``from onnxviz import serve`` finds the loaded module
    for name in [m for m in sys.modules if m == "starlette" or m.startswith("starlette.")]:
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: the import fails
    code, _, err = run_cli(capsys, "serve", DEMO)
    assert code == 2 and "starlette" in err and 'pip install "onnxviz[serve]"' in err


def test_a_port_in_use_is_one_clear_error_before_anything_is_served(capsys, started) -> None:
    """Found by the fuzz: uvicorn met the busy port itself, logged it and exited with code 3."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code, _, err = run_cli(capsys, "serve", DEMO, "--port", port)
    assert code == 2 and f"Cannot serve on 127.0.0.1:{port}" in err and "--port" in err
    assert not started and "serving" not in err


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_a_port_out_of_range_is_refused_rather_than_wrapped(capsys, started, port) -> None:
    code, _, err = run_cli(capsys, "serve", DEMO, "--port", port)
    assert code == 2 and "--port must be 0 to 65535" in err and not started
