"""What the fuzz feeds onnxviz: hypothesis strategies of broken models, pictures and ``.npy`` inputs.

A model is one of a few small real exports (NCHW and NHWC, three exporters) with up to two
defects: the structural ones of ``tests/cli/test_fuzz.py`` (attributes, dimensions, rewired or
dangling inputs, op types, deleted nodes, truncated initializers, input dtype, outputs, opset, flipped
bytes) and those drawn here: onnxviz's own metadata (preset, mean/std/scale, order, layout, labels),
the IR version, the input's shape, an initializer's type and external-data references. A picture is
a real photograph made hostile (truncated, 16-bit, gray, alpha, huge or forged dimensions, not a
picture at all); an array is the right tensor or a wrong one (shape, dtype, NaN, pickled, cut off).
"""

from __future__ import annotations

import functools
import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, numpy_helper

from tests.cli.test_fuzz import KINDS as STRUCTURAL_KINDS
from tests.cli.test_fuzz import mutate
from tests.helpers import DEMO, FIXTURES

SOURCES = {
    "demo": DEMO,
    "tf2onnx_nhwc": FIXTURES / "tf2onnx_nhwc.onnx",
    "resnet_like": FIXTURES / "resnet_like.onnx",
}
OWN_KINDS = ("metadata", "ir_version", "input_shape", "initializer_type", "external_data", "cut_file")
MODEL_KINDS = STRUCTURAL_KINDS + OWN_KINDS
METADATA_KEYS = ("preset", "mean", "std", "scale", "order", "layout", "labels")
PHOTO = cv2.cvtColor(cv2.imread(str(DEMO.parent / "images" / "chelsea.png")), cv2.COLOR_BGR2RGB)


@dataclass
class ModelInput:
    """A model file's bytes, its name in the case folder, and the files beside it (external data)."""

    source: str
    data: bytes
    defects: list[str] = field(default_factory=list)
    beside: dict[str, bytes] = field(default_factory=dict)

    def write(self, folder: Path) -> Path:
        for name, content in self.beside.items():
            (folder / name).write_bytes(content)
        path = folder / "model.onnx"
        path.write_bytes(self.data)
        return path


# -- model defects drawn here ------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([0.0, -1.0, 1.0, 255.0, 1e-30, 1e30]),
)
METADATA_VALUES = {
    "preset": st.one_of(st.sampled_from(["imagenet", "caffe", "tf", "raw", "IMAGENET", "", "torch"]), st.text()),
    "mean": st.one_of(
        st.lists(NUMBERS, max_size=5).map(lambda v: ",".join(map(str, v))),
        st.lists(st.one_of(NUMBERS, st.text(max_size=3), st.none()), max_size=4).map(json.dumps),
        st.text(max_size=12),
    ),
    "scale": st.one_of(NUMBERS.map(str), st.text(max_size=8), st.sampled_from(["1/255", "0", "nan"])),
    "order": st.one_of(st.sampled_from(["rgb", "bgr", "BGR", "gbr", ""]), st.text(max_size=5)),
    "layout": st.one_of(st.sampled_from(["auto", "nchw", "nhwc", "NHWC", "chw"]), st.text(max_size=5)),
    "labels": st.one_of(
        st.lists(st.text(max_size=12), max_size=12).map(json.dumps),
        st.lists(st.one_of(st.integers(), st.none(), st.lists(st.text(max_size=2), max_size=2)), max_size=4).map(
            json.dumps
        ),
        st.sampled_from(['["<script>alert(1)</script>"]', '{"0": "cat"}', "[", '"cat"', "null", "", "[1e999]"]),
        st.text(max_size=20),
    ),
}
METADATA_VALUES["std"] = METADATA_VALUES["mean"]


def _set_metadata(model: onnx.ModelProto, draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(METADATA_KEYS))
    value = draw(METADATA_VALUES[name])
    props = {p.key: p.value for p in model.metadata_props}
    props["onnxviz." + name] = value
    onnx.helper.set_model_props(model, props)
    return f"metadata onnxviz.{name}={value!r}"


def _set_versions(model: onnx.ModelProto, draw: st.DrawFn) -> str:
    model.ir_version = draw(st.sampled_from([0, 1, 3, 4, 7, 8, 10, 11, 13, 99]))
    return f"ir_version {model.ir_version}"


def _set_input_shape(model: onnx.ModelProto, draw: st.DrawFn) -> str:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    values = draw(
        st.lists(
            st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5, 7, 64, 100_000, -1]), st.sampled_from(["N", "h", ""])),
            min_size=0,
            max_size=6,
        )
    )
    del dims[:]
    for value in values:
        dim = dims.add()
        if isinstance(value, int):
            dim.dim_value = value
        elif value:
            dim.dim_param = value
    return f"input shape {values}"


def _retype_initializer(model: onnx.ModelProto, draw: st.DrawFn) -> str:
    tensors = list(model.graph.initializer)
    tensor = tensors[draw(st.integers(0, len(tensors) - 1))]
    kinds = [TensorProto.INT64, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.UINT8, TensorProto.STRING]
    tensor.data_type = draw(st.sampled_from(kinds))
    return f"initializer {tensor.name} as type {tensor.data_type}"


def _externalise(model: onnx.ModelProto, draw: st.DrawFn, beside: dict[str, bytes]) -> str:
    """The largest initializer moved to a file beside the model, with a reference drawn to be right
    or wrong: a missing, short or outside file, a bad offset or length."""
    tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data) or t.ByteSize())
    try:
        payload = numpy_helper.to_array(tensor).tobytes()
    except Exception:  # an earlier defect retyped it, so its bytes no longer fit its dims: moved as stored
        payload = tensor.raw_data
    location = draw(st.sampled_from(["weights.bin", "missing.bin", "../outside.bin", "/etc/hostname", "", "sub/w.bin"]))
    offset = draw(st.sampled_from([0, 0, 3, len(payload), -8, 2**40]))
    length = draw(st.sampled_from([None, len(payload), len(payload) // 2, 0, 2**40]))
    written = draw(st.sampled_from(["whole", "whole", "short", "none"]))
    if location == "weights.bin" and written != "none":
        content = b"\0" * max(offset, 0) + payload if offset < 2**20 else payload
        beside[location] = content if written == "whole" else content[: len(content) // 3]
    tensor.ClearField("raw_data")
    del tensor.float_data[:]
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    entries = {"location": location, "offset": str(offset)} | ({"length": str(length)} if length is not None else {})
    for key, value in entries.items():
        tensor.external_data.add(key=key, value=value)
    return f"external data {entries} ({written})"


@st.composite
def models(draw: st.DrawFn) -> ModelInput:
    """A source model with 0–2 defects (a third of the cases are intact: every command's happy
    path is fuzzed too, for its outputs)."""
    source = draw(st.sampled_from(sorted(SOURCES)))
    made = ModelInput(source, SOURCES[source].read_bytes())
    for kind in draw(st.lists(st.sampled_from(MODEL_KINDS), max_size=2)):
        if kind in STRUCTURAL_KINDS:
            seed = draw(st.integers(0, 2**32 - 1))
            made.data, made.defects = _structural(made.data, kind, seed), [*made.defects, f"{kind} seed {seed}"]
            continue
        if kind == "cut_file":
            made.data = made.data[: draw(st.integers(0, max(len(made.data) - 1, 0)))]
            made.defects.append(f"file cut to {len(made.data)} bytes")
            continue
        try:
            model = onnx.load_from_string(made.data)
        except Exception:  # an earlier defect left no parseable model: this one has nothing to change
            continue
        needs = {"input_shape": model.graph.input, "initializer_type": model.graph.initializer}
        if not needs.get(kind, needs["initializer_type"] if kind == "external_data" else True):
            continue  # an earlier defect removed what this one changes
        change = {
            "metadata": _set_metadata,
            "ir_version": _set_versions,
            "input_shape": _set_input_shape,
            "initializer_type": _retype_initializer,
            "external_data": lambda m, d: _externalise(m, d, made.beside),
        }[kind]
        made.defects.append(change(model, draw))
        made.data = model.SerializeToString()
    return made


def _structural(data: bytes, kind: str, seed: int) -> bytes:
    """``tests/cli/test_fuzz.mutate`` on bytes (it reads a file): the bytes unchanged when the
    defect cannot apply to them (a model an earlier defect made unparseable)."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".onnx") as handle:
        handle.write(data)
        handle.flush()
        try:
            return mutate(Path(handle.name), kind, seed)
        except Exception:
            return data


# -- pictures and arrays -----------------------------------------------------------------------------


def _encoded(picture: np.ndarray, extension: str) -> bytes:
    ok, data = cv2.imencode(extension, picture)
    assert ok, extension
    return data.tobytes()


@functools.cache
def _huge(height: int, width: int) -> bytes:
    """A real PNG of ``height`` x ``width`` pixels (encoded once: it takes a while)."""
    return _encoded(np.full((height, width, 3), 90, np.uint8), ".png")


def forged_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` with almost no pixel data behind it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _pictures(draw: st.DrawFn) -> tuple[str, bytes, str]:
    side = draw(st.sampled_from([1, 7, 48, 64, 120]))
    small = cv2.resize(PHOTO, (side, side), interpolation=cv2.INTER_AREA)
    bgr = np.ascontiguousarray(small[:, :, ::-1])
    kind = draw(
        st.sampled_from(
            ["png", "jpeg", "gray", "alpha", "deep", "cut", "huge", "forged", "empty", "text", "bmp_wrong_suffix"]
        )
    )
    if kind == "png":
        return kind, _encoded(bgr, ".png"), ".png"
    if kind == "jpeg":
        return kind, _encoded(bgr, ".jpg"), ".jpg"
    if kind == "gray":
        return kind, _encoded(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), ".png"), ".png"
    if kind == "alpha":
        return kind, _encoded(cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), ".png"), ".png"
    if kind == "deep":
        return kind, _encoded(bgr.astype(np.uint16) * 257, ".png"), ".png"
    if kind == "cut":
        data = _encoded(bgr, draw(st.sampled_from([".png", ".jpg"])))
        return kind, data[: draw(st.integers(0, len(data) - 1))], ".png"
    if kind == "huge":
        return kind, _huge(*draw(st.sampled_from([(1, 20000), (20000, 1), (3000, 4000)]))), ".png"
    if kind == "forged":
        width, height = draw(st.sampled_from([(2**31 - 1, 1), (100_000, 100_000), (0, 10)]))
        return kind, forged_png(width, height), ".png"
    if kind == "empty":
        return kind, b"", ".png"
    if kind == "text":
        return kind, b"not a picture at all\n", ".jpg"
    return kind, _encoded(bgr, ".bmp"), ".png"


ARRAY_KINDS = (
    *("right", "unbatched", "wrong_shape", "int64", "float16", "bool", "complex", "nan", "scalar", "empty"),
    *("pickled", "cut", "fortran", "uint8_picture"),
)


def _arrays(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(ARRAY_KINDS))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    tensor = rng.standard_normal(shape).astype(np.float32)
    arrays = {
        "right": lambda: tensor,
        "unbatched": lambda: tensor[0],
        "wrong_shape": lambda: rng.standard_normal(draw(st.lists(st.integers(0, 9), max_size=5))).astype(np.float32),
        "int64": lambda: tensor.astype(np.int64),
        "float16": lambda: tensor.astype(np.float16),
        "bool": lambda: tensor > 0,
        "complex": lambda: tensor.astype(np.complex64),
        "nan": lambda: np.where(tensor > 1, np.nan, tensor).astype(np.float32),
        "scalar": lambda: np.float32(1.0),
        "empty": lambda: np.zeros((0,), np.float32),
        "fortran": lambda: np.asfortranarray(tensor[0]),
        "uint8_picture": lambda: (rng.random((40, 30, draw(st.sampled_from([1, 2, 3, 4])))) * 255).astype(np.uint8),
    }
    if kind == "pickled":
        return kind, _npy(np.array([{"a": 1}], dtype=object))
    if kind == "cut":
        data = _npy(tensor)
        return kind, data[: draw(st.integers(0, len(data) - 1))]
    return kind, _npy(arrays[kind]())


INPUT_SHAPES = {"demo": (1, 3, 64, 64), "tf2onnx_nhwc": (1, 32, 32, 3), "resnet_like": (1, 3, 32, 32)}


@st.composite
def images(draw: st.DrawFn, source: str) -> tuple[str, bytes, str]:
    """(what it is, the file's bytes, its suffix): a picture, or a ``.npy`` for the model ``source``."""
    if draw(st.integers(0, 3)) == 0:
        kind, data = _arrays(draw, INPUT_SHAPES[source])
        return f"npy {kind}", data, ".npy"
    return _pictures(draw)
