"""The explainer runs on runtimes no one here wrote, with the result onnxruntime gives (rel ≤ 1e-3):
OpenVINO (PyPI) on every cam fixture and method, and onnxruntime-web's wasm backend under node
(``examples/export/run_web.mjs``) where node and the npm package are installed."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess

import numpy as np
import onnxruntime as ort
import pytest
import skimage.data

import onnxviz
from onnxviz.analyses.export.analysis import ATTRIBUTIONS, CAMS
from tests.helpers import FIXTURES, ROOT

MODELS = ["cam_vgg", "cam_resnet", "cam_mobilenet", "cam_nhwc"]
STEPS = 8
WEB_SCRIPT = ROOT / "examples" / "export" / "run_web.mjs"
# Where `.ci/run` installs onnxruntime-web (npm install --prefix); ONNXVIZ_WEB_MODULES overrides it.
WEB_MODULES = os.environ.get("ONNXVIZ_WEB_MODULES", str(ROOT / ".ci" / "web" / "node_modules"))


@functools.cache
def load(name: str) -> onnxviz.Model:
    return onnxviz.load(FIXTURES / name, device="cpu")


@functools.cache
def images(name: str) -> np.ndarray:
    model = load(f"{name}.onnx")
    photos = (skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea())
    return np.concatenate([model.prepare(photo)[0] for photo in photos])


def onnxruntime_outputs(path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))


def assert_close(found: np.ndarray, expected: np.ndarray, rel: float = 1e-3) -> None:
    assert found.shape == expected.shape
    assert np.abs(found - expected).max() <= rel * np.abs(expected).max()


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("method", CAMS + ATTRIBUTIONS)
def test_openvino_runs_the_explainer_with_onnxruntimes_result(tmp_path, name, method) -> None:
    ov = pytest.importorskip("openvino", reason="OpenVINO is in the test extra: pip install '.[test]'")
    path = load(f"{name}.onnx").export(out=tmp_path / "e.onnx", method=method, steps=STEPS).path
    x = images(name)
    # f32: OpenVINO's CPU plugin computes in bfloat16 by default where the CPU has it.
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    found = compiled({load(f"{name}.onnx").graph.input_name: x})
    expected = onnxruntime_outputs(path, {load(f"{name}.onnx").graph.input_name: x})
    for output, value in expected.items():
        assert_close(found[compiled.output(output)], value)


def _web_runtime() -> str:
    """Why onnxruntime-web cannot be run here, or '' where it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not os.path.isdir(os.path.join(WEB_MODULES, "onnxruntime-web")):
        return f"onnxruntime-web is not installed in {WEB_MODULES} (.ci/run installs it with npm)"
    return ""


@pytest.mark.parametrize("name", MODELS)
def test_onnxruntime_web_runs_every_explainer_with_onnxruntimes_result(tmp_path, name) -> None:
    missing = _web_runtime()
    if missing:
        pytest.skip(missing)
    model, x = load(f"{name}.onnx"), images(name)
    (tmp_path / "input.bin").write_bytes(np.ascontiguousarray(x, np.float32).tobytes())
    paths = [
        model.export(out=tmp_path / f"{method}.onnx", method=method, steps=STEPS).path for method in CAMS + ATTRIBUTIONS
    ]
    requests = [
        {"model": str(p), "input": model.graph.input_name, "shape": list(x.shape), "data": "input.bin"} for p in paths
    ]
    done = subprocess.run(
        ["node", str(WEB_SCRIPT), json.dumps(requests)],
        cwd=tmp_path,
        env={**os.environ, "NODE_PATH": WEB_MODULES},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for path, found in zip(paths, json.loads(done.stdout), strict=True):
        expected = onnxruntime_outputs(path, {model.graph.input_name: x})
        assert set(found) == set(expected), path.name
        for output, value in expected.items():
            web = np.asarray(found[output]["data"], np.float32).reshape(found[output]["dims"])
            assert_close(web, value)
