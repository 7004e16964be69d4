"""onnxruntime sessions: an honest device choice, and sessions built once.

onnxruntime-gpu lists ``CUDAExecutionProvider`` as available on machines with no GPU or no CUDA
libraries, and a session asked for it then logs errors and quietly runs on the CPU. So the CUDA
provider is probed once per process with logging silenced, and trusted only if the probe
session really kept it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from onnxviz.errors import DeviceError, InferenceError, UsageError, runtime_message

DEVICES = ("auto", "cpu", "cuda")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
DEFAULT_LOG_SEVERITY = 2  # onnxruntime's own default (warnings); there is no getter to save it


@dataclass(frozen=True)
class Device:
    """Where sessions run. ``form`` tells the inverse builder which op forms stay on it."""

    name: str
    providers: tuple[str, ...]
    note: str
    custom_ops: tuple[str, ...] = ()  # custom-op libraries registered with every session
    threads: int = 0  # onnxruntime's intra-op threads; 0: its default (one per core)

    @property
    def form(self) -> str:
        return "portable" if self.name == "cuda" else "cpu"


@functools.cache
def cuda_status() -> tuple[bool, str]:
    """(usable, why not): whether a CUDA session really runs on the GPU here."""
    if CUDA not in ort.get_available_providers():
        return False, "this onnxruntime build has no CUDA provider (install onnxruntime-gpu)"
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        # It prints a line per missing CUDA library; the one-line device note says it better.
        with (
            contextlib.suppress(Exception),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            preload()
    probe = onnx.helper.make_model(
        onnx.helper.make_graph(
            [onnx.helper.make_node("Identity", ["x"], ["y"])],
            "probe",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
        ),
        opset_imports=[onnx.helper.make_opsetid("", 13)],
    )
    probe.ir_version = 8
    options = ort.SessionOptions()
    options.log_severity_level = 4
    ort.set_default_logger_severity(4)
    try:
        session = ort.InferenceSession(probe.SerializeToString(), options, providers=[CUDA, CPU])
        kept = session.get_providers()[0] == CUDA
    except Exception:
        kept = False
    finally:
        ort.set_default_logger_severity(DEFAULT_LOG_SEVERITY)
    if kept:
        return True, ""
    return False, (
        "onnxruntime-gpu is installed but CUDA is not usable (no GPU, or the CUDA/cuDNN "
        "libraries are missing: `pip install onnxviz[cuda]` brings them)"
    )


def choose_device(requested: str = "auto") -> Device:
    if requested not in DEVICES:
        raise UsageError(f"Unknown device '{requested}'.", f"Use one of: {', '.join(DEVICES)}.")
    if requested == "cpu":
        return Device("cpu", (CPU,), "running on the CPU (--device cpu)")
    usable, why = cuda_status()
    if usable:
        return Device("cuda", (CUDA, CPU), "running on the GPU (CUDA)")
    if requested == "cuda":
        raise DeviceError(f"--device cuda cannot run: {why}.", "Use --device auto or --device cpu.")
    return Device("cpu", (CPU,), "running on the CPU (no usable CUDA provider)")


def create_session(
    model: onnx.ModelProto | Path, device: Device, what: str, optimized: bool = False, save_to: Path | None = None
) -> ort.InferenceSession:
    """A session with all graph optimizations on; errors become messages that name ``what``.
    A path is read by onnxruntime itself (with the external weights beside it).

    ``optimized``: the file is a graph onnxruntime optimized and saved before (``save_to``), on this
    hardware with this version (``hardware_tag``), so it is opened with the optimizations off:
    they are done, and redoing them is most of a session's start."""
    options = session_options(device.custom_ops)
    options.intra_op_num_threads = device.threads  # a Ray actor's share of the cores, not all of them
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL if optimized else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    if save_to is not None:
        options.optimized_model_filepath = str(save_to)
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    try:
        return ort.InferenceSession(source, options, providers=list(device.providers))
    except Exception as exc:
        raise InferenceError(
            f"onnxruntime could not load the {what}: {runtime_message(exc)}",
            "Run `onnxviz invert` to write the graph out and inspect it, or report the model.",
        ) from None


@functools.cache
def hardware_tag(providers: tuple[str, ...]) -> str:
    """What an optimized graph saved by onnxruntime depends on: its version, the providers, the
    CPU (the blocked layouts it picks follow the vector width: AVX-512 blocks of 16, AVX2 of 8)."""
    cpu = f"{platform.machine()} {platform.processor()}"
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as info:
            lines = [line for line in info if line.startswith(("model name", "flags"))]
        cpu = "".join(sorted(set(lines)))
    text = json.dumps([ort.__version__, list(providers), cpu])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def session_options(custom_ops: tuple[str, ...] = ()) -> ort.SessionOptions:
    """Quiet options with the custom-op libraries registered (``--custom-ops``), and worker threads
    that sleep when a run ends instead of spinning.

    Every method runs two sessions back to back (the forward, then the inverse), each with its own
    thread pool. onnxruntime's workers spin for a while after each run by default, so the pool that
    just finished competes with the one that starts: on 2 cores a ResNet-50 Grad-CAM (forward plus
    the inverse through the head) took 46–51 ms with spinning and 32 ms without, against 26 ms for
    one plain forward (``benchmarks/README.md``, "Explaining a target")."""
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Fatal only: every onnxruntime failure reaches the user as onnxviz's own error paragraph, so
    # its ERROR log line (red, a timestamp, the kernel's status) would only say it twice.
    options.log_severity_level = 4
    for library in custom_ops:
        try:
            options.register_custom_ops_library(str(library))
        except Exception as exc:
            raise UsageError(
                f"The custom-op library {library} cannot be registered with onnxruntime: {runtime_message(exc)}",
                "Give the path of a shared library built for this onnxruntime (for onnxruntime-extensions: "
                "`python -c 'import onnxruntime_extensions as e; print(e.get_library_path())'`).",
            ) from None
    return options


def _probe_model(ir_version: int, opset: int) -> bytes:
    """The smallest model onnxruntime can load, at the given IR version and default-domain opset."""
    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model.SerializeToString()


def _loads(ir_version: int, opset: int) -> bool:
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        ort.InferenceSession(_probe_model(ir_version, opset), options, providers=[CPU])
    except Exception:
        return False
    return True


@functools.cache
def max_ir_version() -> int:
    """The newest IR version this onnxruntime loads.

    onnxruntime has no API that says so (it only names it in the error for a newer model), so a
    one-node model is offered at decreasing IR versions, from the newest the onnx package knows.
    """
    opset = min(ir_opsets()[8], onnx.defs.onnx_opset_version())
    return next((ir for ir in range(onnx.IR_VERSION, 7, -1) if _loads(ir, opset)), 8)


@functools.cache
def max_opset() -> int:
    """The newest default-domain opset this onnxruntime loads (probed as ``max_ir_version``)."""
    ir = max_ir_version()
    return next((v for v in range(onnx.defs.onnx_opset_version(), 7, -1) if _loads(ir, v)), 7)


@functools.cache
def ir_opsets() -> dict[int, int]:
    """IR version -> the newest default-domain opset it may carry (from onnx's release table)."""
    newest: dict[int, int] = {}
    for _, ir, opset, *_ in onnx.helper.VERSION_TABLE:
        newest[ir] = max(newest.get(ir, 0), opset)
    return newest


def ir_version_for(opset: int) -> int:
    """The oldest IR version that may carry ``opset`` (what a model at that opset needs)."""
    return min((ir for ir, newest in ir_opsets().items() if newest >= opset), default=onnx.IR_VERSION)


@functools.cache
def known_ops() -> frozenset[tuple[str, str]]:
    """(domain, op_type) of every operator schema this onnxruntime build knows (its contrib ops too)."""
    from onnxruntime.capi import _pybind_state

    return frozenset(
        ("" if s.domain == "ai.onnx" else s.domain, s.name) for s in _pybind_state.get_all_operator_schema()
    )


def run_bound(
    session: ort.InferenceSession,
    inputs: dict[str, np.ndarray | ort.OrtValue],
    device: Device,
    what: str,
    keep_on_device: frozenset[str] = frozenset(),
) -> dict[str, ort.OrtValue]:
    """Run with IOBinding: outputs named in ``keep_on_device`` stay where the session ran (the
    GPU under CUDA), so the forward's switches and masks reach the inverse without a round
    trip through host memory. On the CPU the same code runs, which is how it is tested."""
    binding = session.io_binding()
    for name, value in inputs.items():
        if isinstance(value, ort.OrtValue):
            binding.bind_ortvalue_input(name, value)
        else:
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
    names = [o.name for o in session.get_outputs()]
    for name in names:
        binding.bind_output(name, device.name if name in keep_on_device else "cpu")
    try:
        session.run_with_iobinding(binding)
    except Exception as exc:
        raise _run_failure(exc, what) from None
    return dict(zip(names, binding.get_outputs(), strict=True))


def run_outputs(session: ort.InferenceSession, feeds: dict[str, np.ndarray], what: str) -> list[np.ndarray]:
    """``session.run`` on host arrays, its failures turned into an error that names ``what``."""
    try:
        return session.run(None, feeds)
    except Exception as exc:
        raise _run_failure(exc, what) from None


def _run_failure(exc: Exception, what: str) -> InferenceError:
    return InferenceError(
        f"onnxruntime failed running the {what}: {runtime_message(exc)}",
        "If onnxruntime runs the original model on this input, write the graphs out with "
        "`onnxviz invert` and report them with the model; otherwise the model itself is invalid.",
    )
