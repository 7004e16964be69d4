"""Mutation fuzzing: whatever a broken ONNX file does, the CLI answers with its own error.

Each mutant is a fixture model with one seeded defect (an attribute, a dimension, a rewired or
dangling input, an op type, a deleted node, a truncated initializer, the input's dtype, missing
outputs, the opset number, or flipped bytes of the file). ``layers``, ``project`` (a mid layer's
top channel, saliency and deconvnet) and, for some, ``check`` or ``occlude`` run on it in-process; the only
acceptable endings are success or one of onnxviz's errors (exit 1 or 2, one paragraph on stderr):
never "internal error", never a traceback. The seeds are fixed, so a failure names a mutant that
can be rebuilt: ``mutate(SOURCES[source], kind, seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto

from tests.cli_helpers import invoke
from tests.helpers import FIXTURES

ROOT = Path(__file__).resolve().parents[2]
# Small models of different exporters and layouts; demo.onnx is the one the issue measured.
SOURCES = {
    "demo": ROOT / "models" / "demo.onnx",
    "vgg_like_torchscript": FIXTURES / "vgg_like_torchscript.onnx",
    "vgg_like_dynamo": FIXTURES / "vgg_like_dynamo.onnx",
    "resnet_like": FIXTURES / "resnet_like.onnx",
    "squeezenet_like": FIXTURES / "squeezenet_like.onnx",
    "tf2onnx_nhwc": FIXTURES / "tf2onnx_nhwc.onnx",
    "opset9_zoo": FIXTURES / "opset9_zoo.onnx",
}
KINDS = (
    "attribute",
    "dims",
    "rewire",
    "dangling",
    "op_type",
    "delete_node",
    "truncate_initializer",
    "input_dtype",
    "missing_outputs",
    "opset",
    "byte_flip",
)
MUTANTS = 220
BASE_SEED = 20261129
CHECK_EVERY = 4  # `check` (every layer) and `occlude` run on every 4th mutant each, to stay under a minute
# Replacements of the same arity, so that most op-type mutants pass onnx.checker and reach the
# shape probe, the inverse builder and onnxruntime rather than stopping at the checker.
UNARY_OPS = ("Relu", "Sigmoid", "Identity", "Softmax", "Flatten", "GlobalAveragePool", "Tanh", "Transpose", "Abs")
BINARY_OPS = ("Add", "Mul", "Sub", "Div", "MatMul", "Max", "Conv", "PRelu")
DTYPES = (TensorProto.INT64, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.UINT8, TensorProto.BOOL)
INTS = (-3, -1, 0, 1, 2, 3, 7, 1000)


@dataclass(frozen=True)
class Mutant:
    source: str
    kind: str
    seed: int
    data: bytes

    def __str__(self) -> str:
        return f"{self.kind} mutant of {self.source} (seed {self.seed})"


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _mutate_attribute(model: onnx.ModelProto, rng: np.random.Generator) -> None:
    nodes = [n for n in model.graph.node if n.attribute]
    attribute = _pick(rng, _pick(rng, nodes).attribute)
    if attribute.type == onnx.AttributeProto.INTS:
        values = [int(_pick(rng, INTS)) for _ in range(int(rng.integers(0, len(attribute.ints) + 2)))]
        del attribute.ints[:]
        attribute.ints.extend(values)
    elif attribute.type == onnx.AttributeProto.INT:
        attribute.i = int(_pick(rng, INTS))
    elif attribute.type == onnx.AttributeProto.FLOAT:
        attribute.f = float(_pick(rng, (-1.0, 0.0, 1e30, float("nan"), 2.5)))
    elif attribute.type == onnx.AttributeProto.STRING:
        attribute.s = _pick(rng, (b"BOGUS", b"", b"SAME_UPPER", b"VALID"))
    elif attribute.type == onnx.AttributeProto.TENSOR:
        attribute.t.raw_data = attribute.t.raw_data[: len(attribute.t.raw_data) // 2]
        attribute.t.dims.append(int(rng.integers(1, 4)))
    else:
        attribute.name = "bogus_" + attribute.name


def _mutate_dims(model: onnx.ModelProto, rng: np.random.Generator) -> None:
    graph = model.graph
    choice = int(rng.integers(3))
    if choice == 0:
        dims = graph.input[0].type.tensor_type.shape.dim
        if rng.integers(2) and dims:
            dim = dims[int(rng.integers(len(dims)))]
            dim.Clear()
            dim.dim_value = int(_pick(rng, (1, 2, 3, 5, 17)))
        else:
            dims.add().dim_value = 1
    elif choice == 1:
        tensor = _pick(rng, [t for t in graph.initializer if t.dims])
        tensor.dims[int(rng.integers(len(tensor.dims)))] = int(_pick(rng, (1, 2, 3, 5)))
    else:
        output = graph.output[0].type.tensor_type.shape.dim
        if output:
            output[int(rng.integers(len(output)))].dim_value = int(_pick(rng, (1, 3, 999)))


def _tensors(model: onnx.ModelProto) -> list[str]:
    names = [i.name for i in model.graph.input] + [t.name for t in model.graph.initializer]
    return names + [o for n in model.graph.node for o in n.output if o]


def _mutate_input(model: onnx.ModelProto, rng: np.random.Generator, dangling: bool) -> None:
    node = _pick(rng, [n for n in model.graph.node if n.input])
    slot = int(rng.integers(len(node.input)))
    node.input[slot] = f"no_such_tensor_{slot}" if dangling else _pick(rng, _tensors(model))


def _mutate_op_type(model: onnx.ModelProto, rng: np.random.Generator) -> None:
    node = _pick(rng, [n for n in model.graph.node if n.op_type != "Constant"])
    if rng.integers(5) == 0:
        node.op_type, node.domain = "NotAnOp", _pick(rng, ("", "com.example.custom"))
        return
    node.op_type = _pick(rng, UNARY_OPS if len(node.input) == 1 else BINARY_OPS)
    if node.op_type not in ("Conv", "Flatten", "Softmax", "Transpose"):
        del node.attribute[:]


def _delete_node(model: onnx.ModelProto, rng: np.random.Generator) -> None:
    """Remove a node; half the time its consumers read its first input instead (a bypass), which
    keeps the graph connected and lets the mutant reach the pipelines."""
    index = int(rng.integers(len(model.graph.node)))
    node = model.graph.node[index]
    if rng.integers(2) and node.input and node.output:
        for other in model.graph.node:
            for slot, name in enumerate(other.input):
                if name == node.output[0]:
                    other.input[slot] = node.input[0]
    del model.graph.node[index]


def _truncate_initializer(model: onnx.ModelProto, rng: np.random.Generator) -> None:
    tensors = [t for t in model.graph.initializer if t.raw_data] or list(model.graph.initializer)
    tensor = _pick(rng, tensors)
    if tensor.raw_data:
        tensor.raw_data = tensor.raw_data[: int(rng.integers(len(tensor.raw_data)))]
    else:
        for field in ("float_data", "int64_data", "int32_data"):
            values = getattr(tensor, field)
            if len(values):
                del values[len(values) // 2 :]


def _mutate_input_dtype(model: onnx.ModelProto, rng: np.random.Generator) -> None:
    model.graph.input[0].type.tensor_type.elem_type = int(_pick(rng, DTYPES))


def _remove_outputs(model: onnx.ModelProto, rng: np.random.Generator) -> None:
    if rng.integers(2):
        del model.graph.output[:]
    else:
        model.graph.output[0].name = "not_produced_anywhere"


def _mutate_opset(model: onnx.ModelProto, rng: np.random.Generator) -> None:
    version = int(_pick(rng, (1, 5, 6, 7, 9, 10, 11, 13, 18, 22, 30, 99)))
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = version
    if rng.integers(3) == 0:
        model.ir_version = int(_pick(rng, (1, 3, 15, 99)))


def mutate(path: Path, kind: str, seed: int) -> bytes:
    """The serialized mutant ``kind`` of the model at ``path`` made with ``seed``."""
    rng = np.random.default_rng(seed)
    data = path.read_bytes()
    if kind == "byte_flip":
        flipped = bytearray(data)
        for _ in range(int(rng.integers(1, 9))):
            position = int(rng.integers(len(flipped)))
            flipped[position] ^= 1 << int(rng.integers(8))
        return bytes(flipped)
    mutation = {
        "attribute": _mutate_attribute,
        "dims": _mutate_dims,
        "rewire": lambda m, r: _mutate_input(m, r, dangling=False),
        "dangling": lambda m, r: _mutate_input(m, r, dangling=True),
        "op_type": _mutate_op_type,
        "delete_node": _delete_node,
        "truncate_initializer": _truncate_initializer,
        "input_dtype": _mutate_input_dtype,
        "missing_outputs": _remove_outputs,
        "opset": _mutate_opset,
    }[kind]
    intact = onnx.load_from_string(data).SerializeToString()
    while True:  # some draws change nothing (a value replaced by itself): draw again
        model = onnx.load_from_string(data)
        mutation(model, rng)
        mutated = model.SerializeToString()
        if mutated != intact:
            return mutated


def mutants() -> list[Mutant]:
    names = list(SOURCES)
    made = []
    for i in range(MUTANTS):
        source, kind = names[i % len(names)], KINDS[(i // len(names) + i) % len(KINDS)]
        seed = BASE_SEED + i
        made.append(Mutant(source, kind, seed, mutate(SOURCES[source], kind, seed)))
    return made


def _mid_layer(path: Path) -> str:
    """The middle conv alias of the intact model: the layer `project` is asked for."""
    convs = [la.alias for la in onnxviz_layers(path) if la.alias.startswith("conv")]
    return convs[len(convs) // 2]


def onnxviz_layers(path: Path):
    from onnxviz.graph.model import ModelGraph

    return ModelGraph.load(path).layers


def run_cli(capsys, *args: object) -> tuple[int, str]:
    """``onnxviz ARGS`` in-process: (exit code, stderr); ``verdict`` judges the stderr."""
    code, _, err = invoke(capsys, *args)
    return code, err


def verdict(code: int, stderr: str) -> str | None:
    """Why this ending is not acceptable, or None: success, or one onnxviz error paragraph."""
    if "Traceback" in stderr or "internal error" in stderr:
        return f"exit {code}: {stderr.strip()[-600:]}"
    if code not in (0, 1, 2):
        return f"exit code {code}"
    if code == 2 or (code == 1 and "error:" in stderr):
        lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("onnxviz:")]
        if not lines or not lines[0].startswith("error:") or "\n\n" in stderr.strip():
            return f"exit {code} without one error paragraph: {stderr.strip()[-600:]}"
    return None


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "noise.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    return path


def test_mutants_are_deterministic_and_cover_every_kind() -> None:
    first, second = mutants(), mutants()
    assert [m.data for m in first] == [m.data for m in second]
    assert {m.kind for m in first} == set(KINDS) and {m.source for m in first} == set(SOURCES)
    originals = {name: onnx.load(str(path)).SerializeToString() for name, path in SOURCES.items()}
    assert all(m.data not in (originals[m.source], SOURCES[m.source].read_bytes()) for m in first)


@pytest.mark.slow
def test_no_mutant_escapes_onnxviz_errors(capsys, tmp_path, picture) -> None:
    mid = {name: _mid_layer(path) for name, path in SOURCES.items()}
    failures = []
    for index, mutant in enumerate(mutants()):
        path = tmp_path / f"{mutant.source}_{mutant.kind}_{mutant.seed}.onnx"
        path.write_bytes(mutant.data)
        commands = [
            ("layers", path, "--json", "--device", "cpu"),
            *(
                ("project", path, picture, "--node", mid[mutant.source], "--rule", rule, "--json", "--device", "cpu")
                for rule in ("saliency", "deconvnet")
            ),
        ]
        if index % CHECK_EVERY == 0:
            commands.append(("check", path, "--json", "--device", "cpu"))
        if index % CHECK_EVERY == 2:
            occlude = ("occlude", path, picture, "--patch", "16", "--stride", "16", "--json", "--device", "cpu")
            commands.extend([occlude, (*occlude, "--node", mid[mutant.source])])
        for command in commands:
            problem = verdict(*run_cli(capsys, *command))
            if problem:
                failures.append(f"{mutant}: onnxviz {command[0]}: {problem}")
        path.unlink()
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)


def test_debug_flag_given_to_the_app_shows_the_traceback(capsys, picture) -> None:
    code, stderr = run_cli(capsys, "--debug", "project", SOURCES["demo"], picture, "--node", "conv55")
    assert code == 2 and "Traceback" in stderr and "No node" in stderr
    code, stderr = run_cli(capsys, "project", SOURCES["demo"], picture, "--node", "conv55")
    assert code == 2 and "Traceback" not in stderr


@pytest.mark.parametrize(("option", "value"), [("--lrn", "approximate"), ("--form", "gpu"), ("--rule", "lrp")])
def test_invert_refuses_bad_choices_instead_of_writing_a_graph(capsys, tmp_path, option, value) -> None:
    code, stderr = run_cli(
        capsys, "invert", SOURCES["demo"], "--node", "conv2", "--out-dir", tmp_path, option, value, "--device", "cpu"
    )
    assert code == 2 and f"'{value}'" in stderr and verdict(code, stderr) is None
    assert not list(tmp_path.iterdir())


def test_a_graph_onnxruntime_rejects_names_shape_inference_and_the_node(capsys, picture, tmp_path) -> None:
    model = onnx.load(str(SOURCES["demo"]))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    path = tmp_path / "double.onnx"
    onnx.save(model, str(path))
    code, stderr = run_cli(capsys, "layers", path)
    assert code == 2 and verdict(code, stderr) is None
    assert "tensor shapes" in stderr and conv.name in stderr


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (["--mean", "1,2"], "--mean needs 1 or 3"),
        (["--std", "0,0,0"], "--std must not be 0"),
        (["--scale", "0"], "--scale must be a non-zero"),
        (["--layout", "nhwc"], "NHWC (--layout) contradicts the model"),
    ],
)
def test_preprocessing_that_cannot_fit_the_model_is_a_usage_error(capsys, picture, options, needle) -> None:
    code, stderr = run_cli(capsys, "project", SOURCES["demo"], picture, "--node", "conv2", "--json", *options)
    assert code == 2 and needle in stderr and verdict(code, stderr) is None


def test_a_layout_the_graph_contradicts_is_refused_before_anything_runs(capsys, picture, tmp_path) -> None:
    """A Conv reading the input directly takes it channels first, a Transpose to NCHW says it
    arrives channels last: forced the other way, every crop and field would be cut from the wrong
    axes (topk once divided by zero and cropped empty patches after such a scan)."""
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    np.save(pictures / "right.npy", np.zeros((1, 3, 64, 64), np.float32))
    out = tmp_path / "out"
    args = ("topk", SOURCES["demo"], pictures, "--node", "conv1", "--top", "2", "--k", "2", "--out", out)
    code, stderr = run_cli(capsys, *args, "--layout", "nhwc")
    assert code == 2 and verdict(code, stderr) is None
    assert "NHWC (--layout) contradicts the model" in stderr and "read by Conv" in stderr and "--layout nchw" in stderr
    assert not out.exists()
    code, stderr = run_cli(capsys, "layers", SOURCES["tf2onnx_nhwc"], "--layout", "nchw")
    assert code == 2 and "read by Transpose" in stderr and "--layout nhwc" in stderr
    assert run_cli(capsys, *args, "--layout", "nchw")[0] == 0  # the layout the graph says: accepted


def test_topk_over_files_none_of_which_can_be_read_says_so_and_leaves_nothing(capsys, tmp_path) -> None:
    from tests.fuzz import harness  # it imports this module's mutations

    pictures = tmp_path / "pictures"
    pictures.mkdir()
    np.save(pictures / "short.npy", np.zeros((1, 3, 7, 64), np.float32))
    (pictures / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a picture")
    out = tmp_path / "out"
    code, stderr = run_cli(capsys, "topk", SOURCES["demo"], pictures, "--node", "conv1", "--k", "2", "--out", out)
    assert code == 2 and harness.judge(code, stderr, "topk") is None  # the device note, then one paragraph
    assert "needs at least one readable image" in stderr and "2 unreadable" in stderr and "[1, 3, 64, 64]" in stderr
    assert harness.outputs_verdict(out, code) is None
