"""The parts of ``benchmarks/gpu_check.py`` that run without a GPU.

The script can only do its job where CUDA works; what it concludes there rests on the node
placement parser, the session recorder and the comparison, which are checked here against a CPU
session's real profile and CPU-against-CPU runs, each both ways (must pass, must fail).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import onnxviz
from onnxviz.runtime.sessions import cuda_status
from tests.helpers import DEMO, FIXTURES, ROOT, GraphBuilder

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


gpu_check = _load_script()


def _conv_relu_pool() -> onnx.ModelProto:
    g = GraphBuilder((1, 3, 8, 8))
    a = g.op("Conv", ["x", g.rand(4, 3, 3, 3), g.rand(4)], pads=[1, 1, 1, 1])
    a = g.op("Relu", [a])
    return g.model([g.op("MaxPool", [a], kernel_shape=[2, 2], strides=[2, 2])])


def test_placements_name_every_node_a_cpu_session_ran(tmp_path: Path) -> None:
    model = _conv_relu_pool()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # nodes keep their names
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "profile")
    session = ort.InferenceSession(model.SerializeToString(), options, providers=[CPU])
    session.run(None, {"x": np.ones((1, 3, 8, 8), np.float32)})
    events = json.loads(Path(session.end_profiling()).read_text())

    found = gpu_check.placements(events)
    assert [(p.node, p.op_type) for p in found] == [(n.name, n.op_type) for n in model.graph.node]
    assert {p.provider for p in found} == {CPU}
    assert gpu_check.off_provider(found, CPU) == []
    assert gpu_check.off_provider(found, CUDA) == found


def test_recorded_onnxviz_sessions_pass_on_their_provider_and_fail_on_another(tmp_path: Path) -> None:
    original = ort.InferenceSession

    def project_once() -> list:
        with gpu_check.profiled("demo", tmp_path) as sessions:
            model = onnxviz.load(DEMO, device="cpu")
            model.project(np.full(model.input_shape(), 0.5, np.float32), node="conv2", top=2)
        return sessions

    rows = gpu_check.check_placement("demo", CPU, project_once())
    assert rows and all(row.ok for row in rows), [row.line() for row in rows]
    assert {"forward", "inverse"} <= {row.subject.split()[1] for row in rows if "never run" not in row.note}
    assert ort.InferenceSession is original  # the recorder put onnxruntime back

    # The same sessions judged as if they were meant for CUDA: every one that ran a node fails.
    stray = gpu_check.check_placement("demo", CPU, [])
    assert [row.ok for row in stray] == [False]
    recorded = project_once()
    for session in recorded:
        session.providers.append(CUDA)
    judged = gpu_check.check_placement("demo", CUDA, recorded)
    ran = [row for row in judged if "never run" not in row.note]
    assert ran and not any(row.ok for row in ran)
    assert all("on CPUExecutionProvider" in row.note for row in ran)


def test_comparison_passes_a_model_against_itself_and_fails_a_changed_weight(tmp_path: Path) -> None:
    name = "vgg_like_torchscript.onnx"
    proto = onnx.load(str(FIXTURES / name))
    weight = next(i for i in reversed(proto.graph.initializer) if len(i.dims) == 4)  # the last conv's
    scaled = onnx.numpy_helper.to_array(weight) * np.float32(1.01)
    weight.CopyFrom(onnx.numpy_helper.from_array(scaled, weight.name))
    onnx.save(proto, str(tmp_path / name))

    reference = onnxviz.load(FIXTURES / name, device="cpu")
    same = gpu_check.compare_projections(name, reference, onnxviz.load(FIXTURES / name, device="cpu"), ("guided",))
    assert same and all(row.ok and row.value == 0.0 for row in same)
    changed = gpu_check.compare_projections(name, reference, onnxviz.load(tmp_path / name, device="cpu"), ("guided",))
    conv = [row for row in changed if " conv" in row.subject]
    assert conv and not any(row.ok for row in conv), [row.line() for row in changed]
    occlusion = gpu_check.compare_occlusion(name, reference, onnxviz.load(tmp_path / name, device="cpu"))
    assert [row.ok for row in occlusion] == [False]


def test_relative_error() -> None:
    a = np.array([1.0, -2.0, 4.0])
    assert gpu_check.relative_error(a, a) == 0.0
    assert gpu_check.relative_error(a, a + np.array([0.0, 0.0, 0.002])) == pytest.approx(5e-4)
    assert gpu_check.relative_error(a, a[:2]) == float("inf")
    assert gpu_check.relative_error(a, np.array([1.0, np.nan, 4.0])) == float("inf")
    assert gpu_check.relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert gpu_check.relative_error(np.zeros(3), a) == float("inf")


@pytest.mark.skipif(cuda_status()[0], reason="CUDA works here: the script runs for real")
def test_without_cuda_the_script_stops_at_once_saying_why(capsys) -> None:
    assert gpu_check.main(["--no-timings"]) == 2
    err = capsys.readouterr().err
    assert "no usable CUDA provider" in err and cuda_status()[1] in err
