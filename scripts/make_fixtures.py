#!/usr/bin/env python
"""Regenerate the small ONNX test fixtures in ``tests/fixtures/models/``.

Why this exists: onnxviz rewrites arbitrary user-exported CNNs (MaxPool -> MaxPool
with argmax indices, Conv -> ConvTranspose, ...).  Real exports differ a lot in graph
*shape* depending on the producer (TorchScript vs. dynamo exporter, tf2onnx with NHWC
transposes, old Caffe2 zoo graphs with constant subgraphs and opset 7/9 operators).
These fixtures reproduce those shapes in miniature (32x32-ish inputs, a few channels,
each file well under 300 KB) so the test-suite can exercise them without downloading
real models.

Everything is seeded, so re-running the script rewrites (nearly) byte-identical files.
Weights use He initialisation (std = sqrt(2 / fan_in)) so activations keep a sensible
scale through the network instead of vanishing or exploding; BatchNorm statistics are
randomised so BN is not a no-op.

Each fixture is validated on generation: ``onnx.checker.check_model(full_check=True)``,
an onnxruntime CPU session on a random input (finite, not all-zero outputs) and, for
torch-exported models, agreement with the torch forward pass (atol 1e-4).

Usage::

    python scripts/make_fixtures.py
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "tests" / "fixtures" / "models"
SEED = 20240607
MAX_BYTES = 300 * 1024

# --------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------


def _rng(offset: int) -> np.random.Generator:
    """Per-fixture RNG so adding/reordering fixtures does not change the others."""
    return np.random.default_rng(SEED + offset)


def he(rng: np.random.Generator, shape: Sequence[int], fan_in: int | None = None) -> np.ndarray:
    """He-normal weights; ``fan_in`` defaults to prod(shape[1:]) (OIHW / (out, in))."""
    if fan_in is None:
        fan_in = int(np.prod(shape[1:]))
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def small(rng: np.random.Generator, shape: Sequence[int], scale: float = 0.05) -> np.ndarray:
    """Small random values for biases so they are non-trivial but do not dominate."""
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def init_torch_module(model: nn.Module, seed: int) -> None:
    """He-initialise every conv/linear and randomise BN params + running stats."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                std = (2.0 / fan_in) ** 0.5
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.05)
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))


def calibrate_bn(model: nn.Module, seed: int, shape: Sequence[int] = (16, 3, 32, 32)) -> None:
    """Set BN running stats from random-input batch statistics, then switch to eval().

    Purely random running_mean/var that do not match the real activation statistics make
    activations grow block after block in a deep residual stack; calibrated stats keep them
    at unit scale while still being non-trivial (not 0/1) values.
    """
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(tuple(shape), generator=gen))
    for bn in bns:
        bn.momentum = 0.1
    model.eval()


def tensor_const(name: str, array: np.ndarray) -> onnx.NodeProto:
    """A ``Constant`` node holding ``array`` (old zoo graphs use these instead of
    initializers)."""
    return helper.make_node("Constant", [], [name], name=name, value=numpy_helper.from_array(array, name))


def value_info(name: str, dims: Sequence[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))


def _concrete_shape(model: onnx.ModelProto, batch: int) -> list[int]:
    (inp,) = real_inputs(model)
    dims = inp.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else batch for d in dims]


def real_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are not initializers (IR<4 models list weights as inputs)."""
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


Reference = Callable[[onnx.ModelProto, np.ndarray], np.ndarray]


def validate(
    path: Path,
    reference: Reference | None = None,
    batch: int = 2,
    seed: int = 0,
) -> dict[str, object]:
    """Check the saved file: checker, ORT run, finiteness, and parity with ``reference``.

    ``reference`` recomputes the first output independently in torch (the source module
    for exported fixtures, a hand-written re-implementation for tricky helper graphs), so
    a fixture whose attributes do not mean what we think they mean fails loudly here.
    """
    size = path.stat().st_size
    assert size < MAX_BYTES, f"{path.name} is {size} bytes (limit {MAX_BYTES})"
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        assert init.data_location != TensorProto.EXTERNAL, f"{path.name}: external data"
    onnx.checker.check_model(model, full_check=True)
    ins = real_inputs(model)
    assert len(ins) == 1, f"{path.name}: expected one real input, got {[i.name for i in ins]}"

    shape = _concrete_shape(model, batch)
    x = np.random.default_rng(SEED + 1000 + seed).standard_normal(shape).astype(np.float32)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # IR<4 fixtures warn about initializers listed as inputs
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == [ins[0].name], sess.get_inputs()
    outs = sess.run(None, {ins[0].name: x})
    assert outs, f"{path.name}: no outputs"
    for o in outs:
        assert np.all(np.isfinite(o)), f"{path.name}: non-finite output"
        assert np.any(o != 0), f"{path.name}: all-zero output"

    max_err = None
    if reference is not None:
        with torch.no_grad():
            ref = reference(model, x)
        assert ref.shape == outs[0].shape, f"{path.name}: {ref.shape} vs {outs[0].shape}"
        max_err = float(np.max(np.abs(ref - outs[0])))
        assert np.allclose(ref, outs[0], atol=1e-4), f"{path.name}: torch/ORT max err {max_err}"

    opset = {o.domain or "ai.onnx": o.version for o in model.opset_import}["ai.onnx"]
    ops = sorted({n.op_type for n in model.graph.node})
    return {
        "size": size,
        "opset": opset,
        "ir": model.ir_version,
        "ops": ops,
        "input": (ins[0].name, shape),
        "out_shapes": [o.shape for o in outs],
        "out_std": [float(np.std(o)) for o in outs],
        "max_err": max_err,
        "conv_pool_nodes": [
            (n.name, n.op_type)
            for n in model.graph.node
            if n.op_type in ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool")
        ],
    }


def save_helper_model(
    path: Path,
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    initializers: list[onnx.TensorProto],
    *,
    opset: int,
    ir_version: int,
    graph_name: str,
    producer: str,
    producer_version: str = "",
    initializers_as_inputs: bool = False,
) -> None:
    """Assemble and save a hand-built graph (strict shape inference is run by validate)."""
    if initializers_as_inputs:
        inputs = inputs + [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in initializers]
    graph = helper.make_graph(nodes, graph_name, inputs, outputs, initializer=initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name=producer,
        producer_version=producer_version,
    )
    model.ir_version = ir_version
    onnx.save(model, str(path))


# --------------------------------------------------------------------------------------
# torch fixtures
# --------------------------------------------------------------------------------------


def vgg_like() -> nn.Sequential:
    """Classic VGG: conv/relu blocks + MaxPool2d, then an MLP head with Dropout."""
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 32),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(32, 10),
    )
    init_torch_module(model, SEED + 1)
    return model.eval()


class BasicBlock(nn.Module):
    """ResNet basic block; optional 1x1 projection and optional BN after the Add.

    The post-Add BN has no preceding Conv to fold into, so it survives any exporter
    Conv+BN fusion pass.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, post_add_bn: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Identity()
        self.post_bn: nn.Module = nn.BatchNorm2d(cout) if post_add_bn else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(self.post_bn(y + self.shortcut(x)))


class ResNetLike(nn.Module):
    """Stem + identity block + projection block (stride 2) + GAP + Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = BasicBlock(8, 8)
        self.layer2 = BasicBlock(8, 16, stride=2, post_add_bn=True)
        self.layer3 = BasicBlock(16, 16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


class Fire(nn.Module):
    """SqueezeNet Fire module: squeeze 1x1 -> (expand 1x1 || expand 3x3) -> Concat."""

    def __init__(self, cin: int, squeeze: int, e1: int, e3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, e1, 1)
        self.expand3x3 = nn.Conv2d(squeeze, e3, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.act(self.squeeze(x))
        return torch.cat([self.act(self.expand1x1(s)), self.act(self.expand3x3(s))], 1)


def squeezenet_like() -> nn.Sequential:
    """SqueezeNet 1.1 in miniature.

    Both ceil-mode MaxPools run on sizes where ceil and floor differ (30 -> 15 vs 14,
    14 -> 7 vs 6); the extra 2x2 conv exists only to turn 15 into 14 for the second one.
    """
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3),  # 32 -> 30
        nn.ReLU(),
        nn.MaxPool2d(3, 2, ceil_mode=True),  # 30 -> 15 (floor would give 14)
        Fire(16, 4, 8, 8),
        Fire(16, 4, 8, 8),
        nn.Conv2d(16, 16, 2),  # 15 -> 14
        nn.ReLU(),
        nn.MaxPool2d(3, 2, ceil_mode=True),  # 14 -> 7 (floor would give 6)
        Fire(16, 8, 16, 16),
        nn.Dropout(0.5),
        nn.Conv2d(32, 10, 1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Softmax(dim=1),
    )
    init_torch_module(model, SEED + 4)
    return model.eval()


def mobilenet_like() -> nn.Sequential:
    """MobileNet-ish: depthwise/pointwise pairs with ReLU6, grouped + dilated convs."""

    def dw_pw(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [
            nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin),
            nn.ReLU6(),
            nn.Conv2d(cin, cout, 1),
            nn.ReLU6(),
        ]

    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),  # 32 -> 16
        nn.ReLU6(),
        *dw_pw(8, 16, 1),
        *dw_pw(16, 32, 2),  # 16 -> 8
        nn.Conv2d(32, 32, 3, padding=1, groups=4),
        nn.ReLU6(),
        nn.Conv2d(32, 32, 3, padding=2, dilation=2),
        nn.ReLU6(),
        nn.AvgPool2d(2),  # 8 -> 4
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )
    init_torch_module(model, SEED + 5)
    return model.eval()


def export_torchscript(model: nn.Module, path: Path, name_in: str = "input", **kwargs: object) -> None:
    """Legacy TorchScript exporter (dynamo=False), opset 13, dynamic batch axis."""
    x = torch.randn(1, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=False,
            opset_version=13,
            input_names=[name_in],
            output_names=["output"],
            dynamic_axes={name_in: {0: "batch"}, "output": {0: "batch"}},
            **kwargs,  # type: ignore[arg-type]
        )


def make_vgg_torchscript(path: Path) -> nn.Module:
    model = vgg_like()
    export_torchscript(model, path)
    return model


def make_vgg_dynamo(path: Path) -> nn.Module:
    """Same network and weights, new dynamo exporter with a dynamic batch dimension.

    ``external_data=False`` keeps the weights inside the single .onnx file.
    """
    model = vgg_like()
    x = torch.randn(2, 3, 32, 32)
    batch = torch.export.Dim("batch", min=1, max=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(
            model,
            (x,),
            dynamo=True,
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes=({0: batch},),
            external_data=False,
            verbose=False,
        )
    assert prog is not None
    onnx.save(prog.model_proto, str(path))
    # The dynamo exporter names nodes after aten ops ("node_conv2d_1"), not module paths;
    # print them so changes across torch versions are easy to spot.
    for node in prog.model_proto.graph.node:
        print(f"   [dynamo] {node.op_type:10s} {node.name}")
    return model


def make_resnet(path: Path) -> nn.Module:
    """TorchScript export that keeps BatchNormalization nodes unfused.

    With the exporter defaults (training=EVAL, do_constant_folding=True) torch 2.13 folds
    every Conv+BN pair into the Conv; only the post-Add BN in ``layer2`` (no Conv to fold
    into) survives.  ``do_constant_folding=False`` (and/or ``TrainingMode.PRESERVE`` on a
    model already in eval()) keeps all of them, which is what a tool must handle when
    users export that way.  BN is emitted in inference form (training_mode=0).
    """
    model = ResNetLike()
    init_torch_module(model, SEED + 3)
    calibrate_bn(model, SEED + 33)
    export_torchscript(
        model,
        path,
        training=torch.onnx.TrainingMode.PRESERVE,
        do_constant_folding=False,
    )
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    # 7 BNs follow a Conv (stem, 3x bn1, 3x bn2) + 1 projection-shortcut BN + 1 post-Add.
    assert ops.count("BatchNormalization") == 9, f"BN got fused: {ops}"
    return model


def make_squeezenet(path: Path) -> nn.Module:
    model = squeezenet_like()
    export_torchscript(model, path)
    return model


def make_mobilenet(path: Path) -> nn.Module:
    model = mobilenet_like()
    export_torchscript(model, path)
    return model


# --------------------------------------------------------------------------------------
# onnx.helper fixtures
# --------------------------------------------------------------------------------------


def make_tf2onnx_nhwc(path: Path) -> None:
    """Mimic tf2onnx's export of a small Keras Sequential model (NHWC input).

    tf2onnx wraps the NCHW body in Transposes, keeps TF's SAME padding as
    ``auto_pad=SAME_UPPER`` (asymmetric for the stride-2 conv: 16 -> 8 needs pad 0/1),
    and flattens with the dynamic Shape->Gather->Unsqueeze->Concat->Reshape pattern.
    """
    rng = _rng(6)
    p = "StatefulPartitionedCall/model"
    w1, b1 = he(rng, (8, 3, 3, 3)), small(rng, (8,))
    w2, b2 = he(rng, (16, 8, 3, 3)), small(rng, (16,))
    # A Keras dense kernel is (in, out), so fan_in is shape[0], not prod(shape[1:]).
    k1, d1 = he(rng, (4 * 4 * 16, 32), fan_in=4 * 4 * 16), small(rng, (32,))
    k2, d2 = he(rng, (32, 10), fan_in=32), small(rng, (10,))
    inits = [
        numpy_helper.from_array(w1, f"{p}/conv2d/Conv2D/ReadVariableOp:0"),
        numpy_helper.from_array(b1, f"{p}/conv2d/BiasAdd/ReadVariableOp:0"),
        numpy_helper.from_array(w2, f"{p}/conv2d_1/Conv2D/ReadVariableOp:0"),
        numpy_helper.from_array(b2, f"{p}/conv2d_1/BiasAdd/ReadVariableOp:0"),
        numpy_helper.from_array(k1, f"{p}/dense/MatMul/ReadVariableOp:0"),
        numpy_helper.from_array(d1, f"{p}/dense/BiasAdd/ReadVariableOp:0"),
        numpy_helper.from_array(k2, f"{p}/dense_1/MatMul/ReadVariableOp:0"),
        numpy_helper.from_array(d2, f"{p}/dense_1/BiasAdd/ReadVariableOp:0"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), "const_fold_opt__42"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "const_axes__37"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "const_fold_opt__40"),
    ]
    n = helper.make_node
    nodes = [
        n(
            "Transpose",
            ["input_1"],
            [f"{p}/conv2d/BiasAdd__6:0"],
            name=f"{p}/conv2d/BiasAdd__6",
            perm=[0, 3, 1, 2],
        ),
        n(
            "Conv",
            [f"{p}/conv2d/BiasAdd__6:0", inits[0].name, inits[1].name],
            [f"{p}/conv2d/BiasAdd:0"],
            name=f"{p}/conv2d/BiasAdd",
            auto_pad="SAME_UPPER",
            dilations=[1, 1],
            group=1,
            kernel_shape=[3, 3],
            strides=[1, 1],
        ),
        n("Relu", [f"{p}/conv2d/BiasAdd:0"], [f"{p}/conv2d/Relu:0"], name=f"{p}/conv2d/Relu"),
        n(
            "MaxPool",
            [f"{p}/conv2d/Relu:0"],
            [f"{p}/max_pooling2d/MaxPool:0"],
            name=f"{p}/max_pooling2d/MaxPool",
            auto_pad="VALID",
            kernel_shape=[2, 2],
            strides=[2, 2],
        ),
        n(
            "Conv",
            [f"{p}/max_pooling2d/MaxPool:0", inits[2].name, inits[3].name],
            [f"{p}/conv2d_1/BiasAdd:0"],
            name=f"{p}/conv2d_1/BiasAdd",
            auto_pad="SAME_UPPER",
            dilations=[1, 1],
            group=1,
            kernel_shape=[3, 3],
            strides=[2, 2],
        ),
        n("Relu", [f"{p}/conv2d_1/BiasAdd:0"], [f"{p}/conv2d_1/Relu:0"], name=f"{p}/conv2d_1/Relu"),
        n(
            "MaxPool",
            [f"{p}/conv2d_1/Relu:0"],
            [f"{p}/max_pooling2d_1/MaxPool:0"],
            name=f"{p}/max_pooling2d_1/MaxPool",
            auto_pad="VALID",
            kernel_shape=[2, 2],
            strides=[2, 2],
        ),
        n(
            "Transpose",
            [f"{p}/max_pooling2d_1/MaxPool:0"],
            [f"{p}/max_pooling2d_1/MaxPool__28:0"],
            name=f"{p}/max_pooling2d_1/MaxPool__28",
            perm=[0, 2, 3, 1],
        ),
        n(
            "Shape",
            [f"{p}/max_pooling2d_1/MaxPool__28:0"],
            [f"{p}/flatten/Shape:0"],
            name=f"{p}/flatten/Shape",
        ),
        n(
            "Gather",
            [f"{p}/flatten/Shape:0", "const_fold_opt__42"],
            [f"{p}/flatten/strided_slice:0"],
            name=f"{p}/flatten/strided_slice",
            axis=0,
        ),
        n(
            "Unsqueeze",
            [f"{p}/flatten/strided_slice:0", "const_axes__37"],
            [f"{p}/flatten/Reshape/shape_Unsqueeze__36:0"],
            name=f"{p}/flatten/Reshape/shape_Unsqueeze__36",
        ),
        n(
            "Concat",
            [f"{p}/flatten/Reshape/shape_Unsqueeze__36:0", "const_fold_opt__40"],
            [f"{p}/flatten/Reshape/shape_Concat__38:0"],
            name=f"{p}/flatten/Reshape/shape_Concat__38",
            axis=0,
        ),
        n(
            "Reshape",
            [f"{p}/max_pooling2d_1/MaxPool__28:0", f"{p}/flatten/Reshape/shape_Concat__38:0"],
            [f"{p}/flatten/Reshape:0"],
            name=f"{p}/flatten/Reshape",
        ),
        n(
            "MatMul",
            [f"{p}/flatten/Reshape:0", inits[4].name],
            [f"{p}/dense/MatMul:0"],
            name=f"{p}/dense/MatMul",
        ),
        n(
            "Add",
            [f"{p}/dense/MatMul:0", inits[5].name],
            [f"{p}/dense/BiasAdd:0"],
            name=f"{p}/dense/BiasAdd",
        ),
        n("Relu", [f"{p}/dense/BiasAdd:0"], [f"{p}/dense/Relu:0"], name=f"{p}/dense/Relu"),
        n(
            "MatMul",
            [f"{p}/dense/Relu:0", inits[6].name],
            [f"{p}/dense_1/MatMul:0"],
            name=f"{p}/dense_1/MatMul",
        ),
        n(
            "Add",
            [f"{p}/dense_1/MatMul:0", inits[7].name],
            [f"{p}/dense_1/BiasAdd:0"],
            name=f"{p}/dense_1/BiasAdd",
        ),
        n("Softmax", [f"{p}/dense_1/BiasAdd:0"], ["dense_1"], name=f"{p}/dense_1/Softmax", axis=-1),
    ]
    save_helper_model(
        path,
        nodes,
        [value_info("input_1", ["unk__47", 32, 32, 3])],
        [value_info("dense_1", ["unk__48", 10])],
        inits,
        opset=13,
        ir_version=7,
        graph_name="tf2onnx",
        producer="tf2onnx",
        producer_version="1.16.1 15c810",
    )


def make_opset9_zoo(path: Path) -> None:
    """Mimic an old Caffe2 model-zoo graph (opset 9, IR 4).

    Conv weights are computed by constant subgraphs (ConstantOfShape * Constant + Constant,
    and Unsqueeze(Constant)) instead of being initializers, so a tool must constant-fold
    to find them.  Remaining initializers (biases, FC) are also listed as graph inputs,
    as the zoo exporter did.
    """
    rng = _rng(7)
    n = helper.make_node
    # conv1 weight = ConstantOfShape([8,3,3,3], 1.0) * Constant(he) + Constant(small)
    w1_shape = np.array([8, 3, 3, 3], dtype=np.int64)
    w1_scale = he(rng, (8, 3, 3, 3))
    w1_offset = small(rng, (8, 3, 3, 3), 0.01)
    # conv2 weight = Constant(he) * Constant(scalar 0.5) computed by Mul broadcast
    w2_raw = he(rng, (16, 8, 3, 3)) * 2.0
    # branch weights: A = ConstantOfShape * Constant, B = Unsqueeze(Constant [16, 16], [2, 3])
    wa_shape = np.array([16, 16, 3, 3], dtype=np.int64)
    wa_vals = he(rng, (16, 16, 3, 3)) * 0.7
    wb_vals = he(rng, (16, 16), fan_in=16) * 0.7
    inits = [
        numpy_helper.from_array(small(rng, (8,)), "conv1_b_0"),
        numpy_helper.from_array(small(rng, (16,)), "conv2_b_0"),
        numpy_helper.from_array(small(rng, (16,)), "conv3a_b_0"),
        numpy_helper.from_array(small(rng, (16,)), "conv3b_b_0"),
        numpy_helper.from_array(he(rng, (10, 16 * 7 * 7)), "fc_w_0"),
        numpy_helper.from_array(small(rng, (10,)), "fc_b_0"),
    ]
    nodes = [
        tensor_const("conv1_w_shape", w1_shape),
        n(
            "ConstantOfShape",
            ["conv1_w_shape"],
            ["conv1_w_ones"],
            name="conv1_w_ones",
            value=numpy_helper.from_array(np.array([1.0], dtype=np.float32)),
        ),
        tensor_const("conv1_w_scale", w1_scale),
        n("Mul", ["conv1_w_ones", "conv1_w_scale"], ["conv1_w_scaled"], name="conv1_w_mul"),
        tensor_const("conv1_w_offset", w1_offset),
        n("Add", ["conv1_w_scaled", "conv1_w_offset"], ["conv1_w_0"], name="conv1_w_add"),
        tensor_const("conv2_w_raw", w2_raw),
        tensor_const("conv2_w_half", np.array(0.5, dtype=np.float32)),
        n("Mul", ["conv2_w_raw", "conv2_w_half"], ["conv2_w_0"], name="conv2_w_mul"),
        tensor_const("conv3a_w_shape", wa_shape),
        n(
            "ConstantOfShape",
            ["conv3a_w_shape"],
            ["conv3a_w_ones"],
            name="conv3a_w_ones",
            value=numpy_helper.from_array(np.array([1.0], dtype=np.float32)),
        ),
        tensor_const("conv3a_w_vals", wa_vals),
        n("Mul", ["conv3a_w_ones", "conv3a_w_vals"], ["conv3a_w_0"], name="conv3a_w_mul"),
        tensor_const("conv3b_w_2d", wb_vals),
        n("Unsqueeze", ["conv3b_w_2d"], ["conv3b_w_0"], name="conv3b_w_unsqueeze", axes=[2, 3]),
        # signal path
        n(
            "Conv",
            ["data_0", "conv1_w_0", "conv1_b_0"],
            ["conv1_1"],
            name="conv1",
            kernel_shape=[3, 3],
            pads=[1, 1, 2, 2],
            strides=[1, 1],
        ),  # 32 -> 33
        n("Relu", ["conv1_1"], ["conv1_2"], name="relu1"),
        n("LRN", ["conv1_2"], ["norm1_1"], name="norm1", size=5, alpha=1e-4, beta=0.75, bias=1.0),
        n(
            "MaxPool",
            ["norm1_1"],
            ["pool1_1"],
            name="pool1",
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[0, 0, 0, 0],
        ),  # 33 -> 16
        n(
            "Conv",
            ["pool1_1", "conv2_w_0", "conv2_b_0"],
            ["conv2_1"],
            name="conv2",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
        ),
        n("Relu", ["conv2_1"], ["conv2_2"], name="relu2"),
        n(
            "Conv",
            ["conv2_2", "conv3a_w_0", "conv3a_b_0"],
            ["conv3a_1"],
            name="conv3a",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
        ),
        n(
            "Conv",
            ["conv2_2", "conv3b_w_0", "conv3b_b_0"],
            ["conv3b_1"],
            name="conv3b",
            kernel_shape=[1, 1],
        ),
        n("Sum", ["conv3a_1", "conv3b_1"], ["sum3_1"], name="sum3"),
        n("Relu", ["sum3_1"], ["sum3_2"], name="relu3"),
        n("MaxPool", ["sum3_2"], ["pool3_1"], name="pool3", kernel_shape=[3, 3], strides=[2, 2]),  # 16 -> 7
        n("Dropout", ["pool3_1"], ["drop3_1"], name="drop3", ratio=0.5),
        n("Flatten", ["drop3_1"], ["flat_1"], name="flatten", axis=1),
        n("Gemm", ["flat_1", "fc_w_0", "fc_b_0"], ["fc_1"], name="fc", transB=1),
        n("Softmax", ["fc_1"], ["prob_1"], name="prob"),
    ]
    save_helper_model(
        path,
        nodes,
        [value_info("data_0", [1, 3, 32, 32])],
        [value_info("prob_1", [1, 10])],
        inits,
        opset=9,
        ir_version=4,
        graph_name="onnxviz_zoo_opset9",
        producer="onnx-caffe2",
        initializers_as_inputs=True,
    )


def make_opset7_alexnet(path: Path) -> None:
    """AlexNet in miniature at opset 7 / IR 3 (initializers must be graph inputs there).

    MaxPool-7 has no Indices output, so onnxviz has to upgrade the opset before it can
    ask for argmax indices.
    """
    rng = _rng(8)
    n = helper.make_node
    inits = [
        numpy_helper.from_array(he(rng, (16, 3, 5, 5)), "conv1_w_0"),
        numpy_helper.from_array(small(rng, (16,)), "conv1_b_0"),
        numpy_helper.from_array(he(rng, (32, 8, 3, 3)), "conv2_w_0"),
        numpy_helper.from_array(small(rng, (32,)), "conv2_b_0"),
        numpy_helper.from_array(he(rng, (64, 32 * 3 * 3)), "fc6_w_0"),
        numpy_helper.from_array(small(rng, (64,)), "fc6_b_0"),
        numpy_helper.from_array(he(rng, (10, 64)), "fc7_w_0"),
        numpy_helper.from_array(small(rng, (10,)), "fc7_b_0"),
    ]
    nodes = [
        n(
            "Conv",
            ["data_0", "conv1_w_0", "conv1_b_0"],
            ["conv1_1"],
            name="conv1",
            kernel_shape=[5, 5],
            strides=[2, 2],
            pads=[2, 2, 2, 2],
        ),  # 32 -> 16
        n("Relu", ["conv1_1"], ["conv1_2"], name="relu1"),
        n("LRN", ["conv1_2"], ["norm1_1"], name="norm1", size=5, alpha=1e-4, beta=0.75, bias=1.0),
        n("MaxPool", ["norm1_1"], ["pool1_1"], name="pool1", kernel_shape=[3, 3], strides=[2, 2]),  # 16 -> 7
        n(
            "Conv",
            ["pool1_1", "conv2_w_0", "conv2_b_0"],
            ["conv2_1"],
            name="conv2",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            group=2,
        ),
        n("Relu", ["conv2_1"], ["conv2_2"], name="relu2"),
        n("MaxPool", ["conv2_2"], ["pool2_1"], name="pool2", kernel_shape=[3, 3], strides=[2, 2]),  # 7 -> 3
        n("Flatten", ["pool2_1"], ["flat_1"], name="flatten", axis=1),
        n("Gemm", ["flat_1", "fc6_w_0", "fc6_b_0"], ["fc6_1"], name="fc6", transB=1),
        n("Relu", ["fc6_1"], ["fc6_2"], name="relu6"),
        n("Dropout", ["fc6_2"], ["fc6_3"], name="drop6", ratio=0.5),
        n("Gemm", ["fc6_3", "fc7_w_0", "fc7_b_0"], ["fc7_1"], name="fc7", transB=1),
        n("Softmax", ["fc7_1"], ["prob_1"], name="prob"),
    ]
    save_helper_model(
        path,
        nodes,
        [value_info("data_0", [1, 3, 32, 32])],
        [value_info("prob_1", [1, 10])],
        inits,
        opset=7,
        ir_version=3,
        graph_name="onnxviz_alexnet_opset7",
        producer="onnx-caffe2",
        initializers_as_inputs=True,
    )


def make_edge_cases(path: Path) -> None:
    """Features-only net hitting awkward attribute combinations on odd 33x35 input.

    Spatial sizes (H x W) are chosen so every special case actually matters:
    Pad -> 38x37; conv_asym keeps 38x37; maxpool_dilated -> 36x35; conv_same_lower
    (stride 2) -> 18x18 with H pads (1, 0); maxpool_ceil -> 10x10 (floor would be 9, last
    window starts inside the image, so all runtimes agree); conv_group_s2 -> 5x5.
    """
    rng = _rng(9)
    n = helper.make_node
    mean = np.array([0.1, -0.2, 0.05], dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.9, 1.1, 1.0], dtype=np.float32).reshape(1, 3, 1, 1)
    inits = [
        numpy_helper.from_array(std, "input_std"),
        numpy_helper.from_array(mean, "input_mean_scaled"),
        numpy_helper.from_array(np.array([0, 0, 2, 1, 0, 0, 3, 1], dtype=np.int64), "pad_pads"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "pad_value"),
        numpy_helper.from_array(he(rng, (8, 3, 3, 3)), "conv_asym.weight"),
        numpy_helper.from_array(small(rng, (8,)), "conv_asym.bias"),
        numpy_helper.from_array((0.1 + 0.2 * rng.random((8, 1, 1))).astype(np.float32), "prelu.slope"),
        numpy_helper.from_array(he(rng, (8, 8, 3, 3)), "conv_same_lower.weight"),
        numpy_helper.from_array(small(rng, (8,)), "conv_same_lower.bias"),
        numpy_helper.from_array((0.5 + rng.random(8)).astype(np.float32), "bn.scale"),
        numpy_helper.from_array(small(rng, (8,), 0.1), "bn.bias"),
        numpy_helper.from_array(small(rng, (8,), 0.1), "bn.mean"),
        numpy_helper.from_array((0.5 + rng.random(8)).astype(np.float32), "bn.var"),
        numpy_helper.from_array(he(rng, (8, 8, 3, 3)), "conv_dilated.weight"),
        numpy_helper.from_array(small(rng, (8,)), "conv_dilated.bias"),
        numpy_helper.from_array(he(rng, (16, 4, 3, 3)), "conv_group_s2.weight"),
        numpy_helper.from_array(small(rng, (16,)), "conv_group_s2.bias"),
        numpy_helper.from_array(np.array(1.5, dtype=np.float32), "mul_scale"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "slice_a_starts"),
        numpy_helper.from_array(np.array([6], dtype=np.int64), "slice_a_ends"),
        numpy_helper.from_array(np.array([6], dtype=np.int64), "slice_b_starts"),
        numpy_helper.from_array(np.array([16], dtype=np.int64), "slice_b_ends"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "slice_axes"),
    ]
    nodes = [
        n("Sub", ["input", "input_mean_scaled"], ["centered"], name="normalize/sub"),
        n("Div", ["centered", "input_std"], ["normalized"], name="normalize/div"),
        n("Pad", ["normalized", "pad_pads", "pad_value"], ["padded"], name="pad", mode="constant"),  # 33x35 -> 38x37
        n(
            "Conv",
            ["padded", "conv_asym.weight", "conv_asym.bias"],
            ["c1"],
            name="conv_asym",
            kernel_shape=[3, 3],
            pads=[0, 1, 2, 1],
        ),  # 38x37
        n("PRelu", ["c1", "prelu.slope"], ["a1"], name="prelu"),
        n(
            "MaxPool",
            ["a1"],
            ["p1"],
            name="maxpool_dilated",
            kernel_shape=[2, 2],
            dilations=[2, 2],
            strides=[1, 1],
        ),  # 36x35
        n(
            "Conv",
            ["p1", "conv_same_lower.weight", "conv_same_lower.bias"],
            ["c2"],
            name="conv_same_lower",
            kernel_shape=[3, 3],
            strides=[2, 2],
            auto_pad="SAME_LOWER",
        ),  # 18x18
        n(
            "BatchNormalization",
            ["c2", "bn.scale", "bn.bias", "bn.mean", "bn.var"],
            ["b2"],
            name="bn",
            epsilon=1e-5,
        ),
        n("LeakyRelu", ["b2"], ["a2"], name="leaky_relu", alpha=0.1),
        n(
            "Conv",
            ["a2", "conv_dilated.weight", "conv_dilated.bias"],
            ["c3"],
            name="conv_dilated",
            kernel_shape=[3, 3],
            dilations=[2, 2],
            pads=[2, 2, 2, 2],
        ),
        n("Sigmoid", ["c3"], ["a3"], name="sigmoid"),
        n(
            "MaxPool",
            ["a3"],
            ["p3"],
            name="maxpool_ceil",
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
            ceil_mode=1,
        ),  # 18 -> 10
        n(
            "Conv",
            ["p3", "conv_group_s2.weight", "conv_group_s2.bias"],
            ["c4"],
            name="conv_group_s2",
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
            group=2,
        ),  # 10 -> 5
        n(
            "AveragePool",
            ["c4"],
            ["p4"],
            name="avgpool_excl_pad",
            kernel_shape=[3, 3],
            strides=[1, 1],
            pads=[1, 1, 1, 1],
            count_include_pad=0,
        ),
        n("Mul", ["p4", "mul_scale"], ["m4"], name="mul_const"),
        n("Slice", ["m4", "slice_a_starts", "slice_a_ends", "slice_axes"], ["s_a"], name="slice_a"),
        n("Slice", ["m4", "slice_b_starts", "slice_b_ends", "slice_axes"], ["s_b"], name="slice_b"),
        n("Concat", ["s_b", "s_a"], ["cat"], name="concat_swapped", axis=1),
        n("Identity", ["cat"], ["features"], name="identity"),
    ]
    save_helper_model(
        path,
        nodes,
        [value_info("input", [1, 3, 33, 35])],
        [value_info("features", [1, 16, 5, 5])],
        inits,
        opset=13,
        ir_version=7,
        graph_name="onnxviz_edge_cases",
        producer="onnxviz-fixtures",
    )


# --------------------------------------------------------------------------------------
# independent torch references for the hand-built graphs
# --------------------------------------------------------------------------------------


def _weights(model: onnx.ModelProto) -> dict[str, torch.Tensor]:
    return {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in model.graph.initializer}


def torch_reference(module: nn.Module) -> Reference:
    """Reference that simply runs the torch module the fixture was exported from."""

    def run(_: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
        return module(torch.from_numpy(x)).numpy()

    return run


def ref_tf2onnx_nhwc(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """SAME_UPPER stride 2 on 16x16 with k3 means pad 0 before / 1 after."""
    w = _weights(model)
    p = "StatefulPartitionedCall/model"
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    t = F.conv2d(t, w[f"{p}/conv2d/Conv2D/ReadVariableOp:0"], padding=1)
    t = F.max_pool2d(F.relu(t + w[f"{p}/conv2d/BiasAdd/ReadVariableOp:0"][:, None, None]), 2)
    t = F.conv2d(F.pad(t, (0, 1, 0, 1)), w[f"{p}/conv2d_1/Conv2D/ReadVariableOp:0"], stride=2)
    t = F.max_pool2d(F.relu(t + w[f"{p}/conv2d_1/BiasAdd/ReadVariableOp:0"][:, None, None]), 2)
    t = t.permute(0, 2, 3, 1).reshape(t.shape[0], -1)  # flatten in NHWC order
    t = F.relu(t @ w[f"{p}/dense/MatMul/ReadVariableOp:0"] + w[f"{p}/dense/BiasAdd/ReadVariableOp:0"])
    t = t @ w[f"{p}/dense_1/MatMul/ReadVariableOp:0"] + w[f"{p}/dense_1/BiasAdd/ReadVariableOp:0"]
    return torch.softmax(t, -1).numpy()


def ref_edge_cases(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """Spell out every ONNX padding convention as an explicit torch F.pad."""
    w = _weights(model)
    t = (torch.from_numpy(x) - w["input_mean_scaled"]) / w["input_std"]
    t = F.pad(t, (1, 1, 2, 3))  # ONNX pads [0,0,2,1, 0,0,3,1] -> (W0, W1, H0, H1)
    t = F.conv2d(F.pad(t, (1, 1, 0, 2)), w["conv_asym.weight"], w["conv_asym.bias"])
    t = torch.where(t > 0, t, t * w["prelu.slope"])
    t = F.max_pool2d(t, 2, stride=1, dilation=2)
    # SAME_LOWER: H 36 -> 18 needs 1 pad, put *before*; W 35 -> 18 needs 2 (1/1).
    t = F.pad(t, (1, 1, 1, 0))
    t = F.conv2d(t, w["conv_same_lower.weight"], w["conv_same_lower.bias"], stride=2)
    t = F.batch_norm(t, w["bn.mean"], w["bn.var"], w["bn.scale"], w["bn.bias"], eps=1e-5)
    t = F.leaky_relu(t, 0.1)
    t = F.conv2d(t, w["conv_dilated.weight"], w["conv_dilated.bias"], padding=2, dilation=2)
    t = F.max_pool2d(torch.sigmoid(t), 3, 2, padding=1, ceil_mode=True)
    t = F.conv2d(t, w["conv_group_s2.weight"], w["conv_group_s2.bias"], stride=2, padding=1, groups=2)
    t = F.avg_pool2d(t, 3, 1, padding=1, count_include_pad=False) * 1.5
    return torch.cat([t[:, 6:16], t[:, 0:6]], 1).numpy()


# --------------------------------------------------------------------------------------
# model families: small-width versions of real architectures, both exporters
# --------------------------------------------------------------------------------------
#
# Each family is built from its torchvision/timm constructor with small widths and depths
# where the constructor allows it; where widths are hard-coded (SqueezeNet's Fire widths,
# GoogLeNet, Inception v3, Xception, HRNet's classification head) the model is a faithful
# miniature of the family's distinctive blocks. Every family is exported twice: by the
# dynamo exporter (static shapes, the default; saved without external data) and by the
# TorchScript exporter (opset 17, dynamic batch). Beside each pair a ``.npz`` holds the
# torch autograd saliency of the top logit on a fixed input, so the tests compare against
# torch without needing it.

FAMILY_SEED = SEED + 500
FAMILY_MAX_BYTES = 120 * 1024


def randomise_norms(model: nn.Module, seed: int, size: int, batches: int = 4, batch_size: int = 8) -> nn.Module:
    """Random norm affine parameters (gamma in [0.5, 1.5), small beta) and layer scales, and BN
    running statistics calibrated on ``batches`` random batches: not 0/1 (BN is no identity), yet
    matched to the activations, so a deep random net keeps O(1) activations.

    A zero-initialised last gamma (timm's ``zero_init_last``) or a 1e-6 layer scale (ConvNeXt)
    would switch whole branches off and leave the model testing an identity.
    """
    gen = torch.Generator().manual_seed(seed)
    batch_norms = []
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)) and module.weight is not None:
                module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=gen))
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
            if isinstance(module, nn.BatchNorm2d) and module.track_running_stats:
                module.reset_running_stats()
                module.momentum = None
                batch_norms.append(module)
        for name, parameter in model.named_parameters():
            if name.endswith("layer_scale") or (".ls" in name and name.endswith(".gamma")):
                parameter.copy_(0.1 + 0.4 * torch.rand(parameter.shape, generator=gen))
    if batch_norms:
        model.train()
        with torch.no_grad():
            for _ in range(batches):
                model(torch.randn((batch_size, 3, size, size), generator=gen))
        for module in batch_norms:
            module.momentum = 0.1
    return model.eval()


def _tv():  # imported on demand: only the family fixtures need torchvision
    import torchvision

    return torchvision.models


def _timm():  # as above
    import timm.models

    return timm.models


def fam_alexnet() -> nn.Module:
    """torchvision AlexNet (its forward: features, adaptive pool, flatten, classifier), small widths."""
    model = _tv().AlexNet(num_classes=10)
    model.features = nn.Sequential(
        nn.Conv2d(3, 8, 5, stride=2, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(12, 16, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
    )  # fmt: skip
    model.avgpool = nn.AdaptiveAvgPool2d((2, 2))  # 2x2 maps at 48 px, as 6x6 at 224: no averaging
    model.classifier = nn.Sequential(
        nn.Dropout(), nn.Linear(64, 32), nn.ReLU(inplace=True), nn.Dropout(), nn.Linear(32, 10)
    )
    return model


def fam_vgg_bn() -> nn.Module:
    """torchvision VGG with BatchNorm (``make_layers``), small cfg and head."""
    vgg = _tv().vgg
    model = vgg.VGG(vgg.make_layers([8, "M", 16, "M", 16, 16, "M"], batch_norm=True), num_classes=10)
    model.avgpool = nn.AdaptiveAvgPool2d((2, 2))
    model.classifier = nn.Sequential(nn.Linear(64, 32), nn.ReLU(True), nn.Dropout(), nn.Linear(32, 10))
    return model


def fam_resnet() -> nn.Module:
    """timm ResNet-18's layout at depth 1 per stage; its 7x7 stem is 64 wide whatever the stages
    are, so the stem and the first block are rebuilt 8 wide."""
    resnet = _timm().resnet
    model = resnet.ResNet(resnet.BasicBlock, [1, 1, 1, 1], num_classes=10, channels=(8, 12, 16, 20))
    model.conv1 = nn.Conv2d(3, 8, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(8)
    model.layer1 = nn.Sequential(resnet.BasicBlock(8, 8))
    return model


def fam_resnext() -> nn.Module:
    """Grouped-conv bottlenecks (cardinality 4); a narrow 3-conv stem keeps the file small."""
    return _timm().resnet.ResNet(
        _timm().resnet.Bottleneck, [1, 1, 1, 1], num_classes=10, stem_width=4, stem_type="deep",
        channels=(4, 8, 8, 12), cardinality=4, base_width=32,
    )  # fmt: skip


def fam_resnet_d() -> nn.Module:
    """ResNet-D: deep 3-conv stem and average-pool downsampling shortcuts."""
    return _timm().resnet.ResNet(
        _timm().resnet.BasicBlock, [1, 1, 1, 1], num_classes=10, stem_width=4, channels=(8, 12, 16, 20),
        stem_type="deep", avg_down=True,
    )  # fmt: skip


def fam_res2net() -> nn.Module:
    """Res2Net's Bottle2neck (scale 4: hierarchical split, add, concat); narrow 3-conv stem."""
    from timm.models.res2net import Bottle2neck

    return _timm().resnet.ResNet(
        Bottle2neck, [1, 1, 1, 1], num_classes=10, stem_width=4, stem_type="deep", channels=(4, 8, 8, 12),
        base_width=26, block_args={"scale": 4},
    )  # fmt: skip


def fam_densenet() -> nn.Module:
    return _tv().DenseNet(growth_rate=6, block_config=(2, 2, 2), num_init_features=8, bn_size=2, num_classes=10)


def fam_squeezenet() -> nn.Module:
    """torchvision SqueezeNet (its Fire module, its forward) at small widths; 1.1's layout."""
    sq = _tv().squeezenet
    model = sq.SqueezeNet("1_1", num_classes=10)
    model.features = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True),
        sq.Fire(8, 4, 8, 8), sq.Fire(16, 4, 8, 8), nn.MaxPool2d(3, 2, ceil_mode=True),
        sq.Fire(16, 6, 12, 12),
    )  # fmt: skip
    model.classifier = nn.Sequential(
        nn.Dropout(0.5), nn.Conv2d(24, 10, 1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1))
    )
    return model


def fam_shufflenet() -> nn.Module:
    return _tv().ShuffleNetV2([1, 1, 1], [8, 16, 32, 48, 64], num_classes=10)


def fam_mobilenet_v2() -> nn.Module:
    mv2 = _tv().mobilenetv2
    model = mv2.MobileNetV2(num_classes=10, inverted_residual_setting=[[1, 8, 1, 1], [6, 8, 2, 2], [6, 16, 1, 2]])
    model.features[-1] = mv2.Conv2dNormActivation(16, 32, kernel_size=1, activation_layer=nn.ReLU6)
    model.classifier[-1] = nn.Linear(32, 10)
    return model


def fam_mobilenet_v3() -> nn.Module:
    mv3 = _tv().mobilenetv3
    setting, _ = mv3._mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.25)
    return mv3.MobileNetV3(setting[:4], last_channel=32, num_classes=10)


def fam_mnasnet() -> nn.Module:
    """torchvision MNASNet at alpha 0.125: its stem and first two stacks, then its head narrowed
    (the last 1x1 conv is 1280 wide whatever alpha says)."""
    model = _tv().MNASNet(alpha=0.125, num_classes=10)
    width = [m for m in model.layers[9].modules() if isinstance(m, nn.Conv2d)][-1].out_channels
    head = [nn.Conv2d(width, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True)]
    model.layers = nn.Sequential(*model.layers[:10], *head)
    model.classifier[-1] = nn.Linear(32, 10)
    return model


def fam_efficientnet() -> nn.Module:
    ef = _tv().efficientnet
    setting, _ = ef._efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
    return ef.EfficientNet(setting[:4], dropout=0.2, last_channel=32, num_classes=10)


def fam_efficientnet_v2() -> nn.Module:
    ef = _tv().efficientnet
    setting = [
        ef.FusedMBConvConfig(1, 3, 1, 8, 8, 1),
        ef.FusedMBConvConfig(4, 3, 2, 8, 16, 1),
        ef.MBConvConfig(4, 3, 2, 16, 24, 1),
    ]
    return ef.EfficientNet(setting, dropout=0.2, last_channel=32, num_classes=10)


def fam_regnet() -> nn.Module:
    rg = _tv().regnet
    params = rg.BlockParams.from_init_params(depth=3, w_0=8, w_a=8.0, w_m=2.0, group_width=4, se_ratio=0.25)
    return rg.RegNet(params, stem_width=8, num_classes=10)


def fam_convnext() -> nn.Module:
    cn = _tv().convnext
    return cn.ConvNeXt([cn.CNBlockConfig(8, 16, 1), cn.CNBlockConfig(16, 24, 1), cn.CNBlockConfig(24, None, 1)],
                       num_classes=10)  # fmt: skip


def fam_googlenet() -> nn.Module:
    """torchvision GoogLeNet with its own Inception/BasicConv2d blocks at small widths; 4b-4e dropped."""
    gn = importlib.import_module("torchvision.models.googlenet")  # models.googlenet is the function
    model = gn.GoogLeNet(num_classes=10, aux_logits=False, init_weights=False)
    model.conv1 = gn.BasicConv2d(3, 8, kernel_size=7, stride=2, padding=3)
    model.conv2 = gn.BasicConv2d(8, 8, kernel_size=1)
    model.conv3 = gn.BasicConv2d(8, 12, kernel_size=3, padding=1)
    model.inception3a = gn.Inception(12, 4, 4, 6, 2, 2, 2)
    model.inception3b = gn.Inception(14, 4, 4, 6, 2, 4, 2)
    model.inception4a = gn.Inception(16, 6, 4, 6, 2, 2, 2)
    for name in ("inception4b", "inception4c", "inception4d", "inception4e"):
        setattr(model, name, nn.Identity())
    model.inception5a = gn.Inception(16, 4, 4, 8, 2, 2, 2)
    model.inception5b = gn.Inception(16, 6, 4, 8, 2, 4, 2)
    model.fc = nn.Linear(20, 10)
    return model


class _BasicConv(nn.Sequential):
    """Inception v3's conv-BN-ReLU."""

    def __init__(self, cin: int, cout: int, **kwargs: object) -> None:
        super().__init__(nn.Conv2d(cin, cout, bias=False, **kwargs), nn.BatchNorm2d(cout, eps=0.001), nn.ReLU())


class InceptionV3Mini(nn.Module):
    """Inception v3's distinctive blocks: 5x5 branch, 1x7/7x1 factorised convs, 1x3/3x1 split
    concat, avg-pool branches, max-pool grid reduction; then pool, dropout, flatten, fc."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(_BasicConv(3, 8, kernel_size=3, stride=2), _BasicConv(8, 12, kernel_size=3))
        self.a_1x1 = _BasicConv(12, 4, kernel_size=1)
        self.a_5x5 = nn.Sequential(_BasicConv(12, 4, kernel_size=1), _BasicConv(4, 4, kernel_size=5, padding=2))
        self.a_pool = _BasicConv(12, 4, kernel_size=1)
        self.reduce = _BasicConv(12, 8, kernel_size=3, stride=2)
        self.c_7x7 = nn.Sequential(
            _BasicConv(20, 6, kernel_size=1),
            _BasicConv(6, 6, kernel_size=(1, 7), padding=(0, 3)),
            _BasicConv(6, 8, kernel_size=(7, 1), padding=(3, 0)),
        )
        self.c_1x1 = _BasicConv(20, 8, kernel_size=1)
        self.e_stem = _BasicConv(16, 6, kernel_size=1)
        self.e_1x3 = _BasicConv(6, 6, kernel_size=(1, 3), padding=(0, 1))
        self.e_3x1 = _BasicConv(6, 6, kernel_size=(3, 1), padding=(1, 0))
        self.e_pool = _BasicConv(16, 4, kernel_size=1)
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        pooled = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
        x = torch.cat([self.a_1x1(x), self.a_5x5(x), self.a_pool(pooled)], 1)
        x = torch.cat([self.reduce(x), F.max_pool2d(x, kernel_size=3, stride=2)], 1)
        x = torch.cat([self.c_7x7(x), self.c_1x1(x)], 1)
        stem = self.e_stem(x)
        pooled = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
        x = torch.cat([self.e_1x3(stem), self.e_3x1(stem), self.e_pool(pooled)], 1)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        return self.fc(torch.flatten(self.dropout(x), 1))


class _SeparableConv(nn.Sequential):
    """Xception's separable conv: depthwise 3x3, then pointwise 1x1, no bias."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1, bias=False))


class _XceptionBlock(nn.Module):
    """relu-sepconv-bn twice, max-pool 3/2, plus a strided 1x1 conv-bn shortcut."""

    def __init__(self, cin: int, cout: int, start_with_relu: bool = True) -> None:
        super().__init__()
        self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))
        layers: list[nn.Module] = [nn.ReLU()] if start_with_relu else []
        layers += [_SeparableConv(cin, cout), nn.BatchNorm2d(cout), nn.ReLU(), _SeparableConv(cout, cout)]
        layers += [nn.BatchNorm2d(cout), nn.MaxPool2d(3, 2, padding=1)]
        self.rep = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rep(x) + self.skip(x)


class XceptionMini(nn.Module):
    """Xception's entry flow (strided stem, residual separable blocks), a middle-flow identity
    block, and the exit's separable conv, global pool and fc."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 12, 3, bias=False), nn.BatchNorm2d(12), nn.ReLU(),
        )  # fmt: skip
        self.entry1 = _XceptionBlock(12, 16, start_with_relu=False)
        self.entry2 = _XceptionBlock(16, 24)
        middle = [m for _ in range(2) for m in (nn.ReLU(), _SeparableConv(24, 24), nn.BatchNorm2d(24))]
        self.middle = nn.Sequential(*middle)
        self.exit = nn.Sequential(_SeparableConv(24, 32), nn.BatchNorm2d(32), nn.ReLU())
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.entry2(self.entry1(self.stem(x)))
        x = self.exit(self.middle(x) + x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def fam_dla() -> nn.Module:
    """timm DLA: hierarchical trees (a level-2 tree in stage 4) with aggregation roots."""
    dla = _timm().dla
    return dla.DLA(levels=(1, 1, 1, 1, 2, 1), channels=(4, 4, 8, 8, 8, 12), block=dla.DlaBasic, num_classes=10)


def fam_dpn() -> nn.Module:
    """timm DPN (its forward, DualPathBlock and BnAct) with narrow blocks: DPN's stage widths
    are fixed multiples of 64 whatever k_r says, so the blocks are rebuilt (proj, then down x3)."""
    dpn = importlib.import_module("timm.models.dpn")
    model = dpn.DPN(small=True, num_init_features=8, k_r=8, groups=4, k_sec=(1, 1, 1, 1), inc_sec=(4, 4, 4, 4),
                    num_classes=10)  # fmt: skip
    block, features = dpn.DualPathBlock, model.features
    features.conv1_1 = type(features.conv1_1)(3, 8, kernel_size=3, stride=2)
    features.conv2_1 = block(8, 8, 8, 8, 4, 4, "proj")  # out: 8 residual + 3 x 4 dense channels
    features.conv3_1 = block(20, 8, 8, 12, 4, 4, "down")
    features.conv4_1 = block(24, 8, 8, 16, 4, 4, "down")
    features.conv5_1 = block(28, 8, 8, 16, 4, 4, "down")
    features.conv5_bn_ac = type(features.conv5_bn_ac)(28)
    model.classifier = nn.Conv2d(28, 10, 1)
    return model


def fam_cspdarknet() -> nn.Module:
    cspnet = _timm().cspnet
    cfg = cspnet.model_cfgs["cspdarknet53"]
    stages = {f.name: getattr(cfg.stages, f.name) for f in dataclasses.fields(cfg.stages)}
    stages = {k: v[:3] if isinstance(v, tuple) else v for k, v in stages.items()}
    stages.update(depth=(1, 1, 1), out_chs=(12, 16, 24))
    cfg = dataclasses.replace(cfg, stem=dataclasses.replace(cfg.stem, out_chs=8), stages=cspnet.CspStagesCfg(**stages))
    return cspnet.CspNet(cfg, num_classes=10)


class _HrBranch(nn.Sequential):
    def __init__(self, channels: int) -> None:
        super().__init__(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
        )  # fmt: skip


class HRNetMini(nn.Module):
    """HRNet's exchange unit: a high- and a low-resolution branch in parallel, fused both ways
    (low to high by 1x1 conv-BN and nearest ``nn.Upsample(scale_factor=2)``, as timm's fuse
    layers; high to low by a strided 3x3 conv-BN), then the classification head's bilinear
    upsampling of the low branch, concat, conv, pool and fc."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.to_low = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.high, self.low = _HrBranch(8), _HrBranch(16)
        self.low_to_high = nn.Sequential(
            nn.Conv2d(16, 8, 1, bias=False), nn.BatchNorm2d(8), nn.Upsample(scale_factor=2)
        )
        self.high_to_low = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16))
        self.head = nn.Sequential(nn.Conv2d(24, 24, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU())
        self.fc = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        high = self.stem(x)
        low = self.to_low(high)
        high, low = self.high(high), self.low(low)
        high, low = F.relu(high + self.low_to_high(low)), F.relu(low + self.high_to_low(high))
        up = F.interpolate(low, size=high.shape[-2:], mode="bilinear", align_corners=False)
        x = self.head(torch.cat([high, up], 1))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def fam_nf_resnet() -> nn.Module:
    """NF-ResNet: ScaledStdConv2d standardises its weights inside the graph; no BatchNorm."""
    nfnet = _timm().nfnet
    cfg = nfnet.NfCfg(depths=(1, 1, 1, 1), channels=(8, 12, 16, 24), stem_type="7x7_pool", stem_chs=8,
                      bottle_ratio=0.25, act_layer="relu")  # fmt: skip
    return nfnet.NormFreeNet(cfg, num_classes=10)


def fam_repvgg() -> nn.Module:
    byob = _timm().byobnet
    blocks = tuple(byob.ByoBlockCfg(type="rep", d=1, c=c, s=2) for c in (8, 12, 16, 24))
    cfg = dataclasses.replace(byob.model_cfgs["repvgg_a0"], blocks=blocks, stem_chs=8)
    return byob.ByobNet(cfg, num_classes=10)


def fam_ghostnet() -> nn.Module:
    gh = _timm().ghostnet
    cfgs = [[[3, 8, 8, 0, 1]], [[3, 24, 12, 0, 2]], [[5, 24, 16, 0.25, 2]], [[5, 32, 16, 0.25, 2]]]
    model = gh.GhostNet(cfgs, num_classes=10, width=1.0)
    # GhostNet's head conv is 1280 wide whatever the stages are; narrow it.
    model.conv_head = nn.Conv2d(model.conv_head.in_channels, 32, 1)
    model.classifier = nn.Linear(32, 10)
    return model


def fam_rexnet() -> nn.Module:
    """timm ReXNet at width 0.5, depth 0.2; its 1x1 head conv (1280 x width) narrowed to 32."""
    model = _timm().rexnet.RexNet(initial_chs=8, final_chs=24, width_mult=0.5, depth_mult=0.2, num_classes=10)
    head = model.features[-1]
    head.conv = nn.Conv2d(head.conv.in_channels, 32, 1, bias=False)
    head.bn = type(head.bn)(32, act_layer="silu")
    model.head.fc = nn.Linear(32, 10)
    return model


def fam_mobilevit() -> nn.Module:
    byob, mvit = _timm().byobnet, _timm().mobilevit
    cfg = byob.ByoModelCfg(
        blocks=(
            mvit._inverted_residual_block(d=1, c=8, s=1, br=2.0),
            mvit._inverted_residual_block(d=1, c=12, s=2, br=2.0),
            # an inverted residual (stride 2), then the MobileViT block: unfold, transformer, fold
            mvit._mobilevit_block(d=1, c=16, s=2, transformer_dim=16, transformer_depth=1, patch_size=2, br=2.0),
        ),
        stem_chs=8, stem_type="3x3", stem_pool="", downsample="", act_layer="silu", num_features=32,
    )  # fmt: skip
    return byob.ByobNet(cfg, num_classes=10)


def fam_vit() -> nn.Module:
    vit = _timm().vision_transformer
    return vit.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0, num_classes=10
    )


# name -> (constructor, input size)
FAMILY_FIXTURES: dict[str, tuple[Callable[[], nn.Module], int]] = {
    "alexnet": (fam_alexnet, 48),
    "vgg_bn": (fam_vgg_bn, 32),
    "resnet": (fam_resnet, 32),
    "resnext": (fam_resnext, 32),
    "resnet_d": (fam_resnet_d, 32),
    "res2net": (fam_res2net, 32),
    "densenet": (fam_densenet, 32),
    "squeezenet": (fam_squeezenet, 32),
    "shufflenet_v2": (fam_shufflenet, 32),
    "mobilenet_v2": (fam_mobilenet_v2, 32),
    "mobilenet_v3": (fam_mobilenet_v3, 32),
    "mnasnet": (fam_mnasnet, 32),
    "efficientnet": (fam_efficientnet, 32),
    "efficientnet_v2": (fam_efficientnet_v2, 32),
    "regnet": (fam_regnet, 32),
    "convnext": (fam_convnext, 32),
    "googlenet": (fam_googlenet, 32),
    "inception_v3": (lambda: InceptionV3Mini(), 32),
    "xception": (lambda: XceptionMini(), 32),
    "dla": (fam_dla, 32),
    "dpn": (fam_dpn, 32),
    "cspdarknet": (fam_cspdarknet, 32),
    "hrnet": (lambda: HRNetMini(), 32),
    "nf_resnet": (fam_nf_resnet, 32),
    "repvgg": (fam_repvgg, 32),
    "ghostnet": (fam_ghostnet, 32),
    "rexnet": (fam_rexnet, 32),
    "mobilevit": (fam_mobilevit, 32),
    "vit": (fam_vit, 32),
}


def export_family(model: nn.Module, x: torch.Tensor, exporter: str, path: Path) -> None:
    """dynamo: the default (static shapes), stored without external data; torchscript: opset 17, dynamic batch."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            program = torch.onnx.export(
                model, (x,), dynamo=True, input_names=["input"], output_names=["logits"], verbose=False
            )
            assert program is not None
            proto = program.model_proto
            for node in proto.graph.node:  # source stack traces: a third of a small file, no semantics
                del node.metadata_props[:]
                node.doc_string = ""
            onnx.save(proto, str(path))
        else:
            torch.onnx.export(
                model, (x,), str(path), dynamo=False, opset_version=17, input_names=["input"],
                output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )  # fmt: skip


def saliency_reference(model: nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """Autograd of the top logit in float32, and torch's own float32-vs-float64 gap on it."""
    grads = {}
    top = None
    for dtype in (torch.float32, torch.float64):
        net = copy.deepcopy(model).to(dtype)
        inp = torch.from_numpy(x).to(dtype).requires_grad_(True)
        logits = net(inp)
        top = int(logits[0].argmax()) if top is None else top
        logits[0, top].backward()
        grads[dtype] = inp.grad.numpy()
    gap = np.max(np.abs(grads[torch.float32].astype(np.float64) - grads[torch.float64]))
    return {
        "x": x.astype(np.float16),
        "top": np.int64(top),
        "gradient": grads[torch.float32].astype(np.float32),
        "gap": np.float64(gap),
    }


def make_family(name: str, index: int) -> list[tuple[str, dict[str, object]]]:
    """Both exports of one family, validated against torch, and the saliency reference beside them."""
    construct, size = FAMILY_FIXTURES[name]
    torch.manual_seed(FAMILY_SEED + index)
    model = randomise_norms(construct(), FAMILY_SEED + 100 + index, size)
    # Input values exact in float16, stored so, to keep the reference files small.
    x = np.random.default_rng(FAMILY_SEED + index).standard_normal((1, 3, size, size)).astype(np.float16)
    x = x.astype(np.float32)
    reports = []
    for exporter in ("dynamo", "torchscript"):
        path = OUT_DIR / f"family_{name}_{exporter}.onnx"
        export_family(model, torch.from_numpy(x), exporter, path)
        size_bytes = path.stat().st_size
        assert size_bytes <= FAMILY_MAX_BYTES, f"{path.name} is {size_bytes} bytes (limit {FAMILY_MAX_BYTES})"
        reports.append((path.name, validate(path, torch_reference(model), batch=1, seed=200 + index)))
    np.savez_compressed(OUT_DIR / f"family_{name}.npz", **saliency_reference(model, x))
    return reports


# --------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------

TORCH_FIXTURES: dict[str, Callable[[Path], nn.Module]] = {
    "vgg_like_torchscript.onnx": make_vgg_torchscript,
    "vgg_like_dynamo.onnx": make_vgg_dynamo,
    "resnet_like.onnx": make_resnet,
    "squeezenet_like.onnx": make_squeezenet,
    "mobilenet_like.onnx": make_mobilenet,
}
# LRN/Sum/Dropout graphs (opset 7/9) are checked against onnxruntime only.
HELPER_FIXTURES: dict[str, tuple[Callable[[Path], None], Reference | None]] = {
    "tf2onnx_nhwc.onnx": (make_tf2onnx_nhwc, ref_tf2onnx_nhwc),
    "opset9_zoo.onnx": (make_opset9_zoo, None),
    "opset7_alexnet_like.onnx": (make_opset7_alexnet, None),
    "edge_cases.onnx": (make_edge_cases, ref_edge_cases),
}


def main() -> None:
    parser = argparse.ArgumentParser(description="Regenerate the test fixtures.")
    parser.add_argument(
        "--families",
        nargs="*",
        metavar="NAME",
        help=f"only the family fixtures (all, or these: {', '.join(FAMILY_FIXTURES)})",
    )
    args = parser.parse_args()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    reports: dict[str, dict[str, object]] = {}
    if args.families is not None:
        unknown = set(args.families) - set(FAMILY_FIXTURES)
        if unknown:
            parser.error(f"unknown families: {', '.join(sorted(unknown))}")
        names = args.families or list(FAMILY_FIXTURES)
        for name in names:
            for file, rep in make_family(name, list(FAMILY_FIXTURES).index(name)):
                print(f"== {file}: {rep['size']} bytes, ops {rep['ops']}, max err {rep['max_err']}", flush=True)
        return
    for i, name in enumerate(FAMILY_FIXTURES):
        reports.update(make_family(name, i))
    torch.manual_seed(SEED)
    for i, (name, make_torch) in enumerate(TORCH_FIXTURES.items()):
        path = OUT_DIR / name
        model = make_torch(path)
        reports[name] = validate(path, torch_reference(model), seed=i)
    for i, (name, (make_helper, reference)) in enumerate(HELPER_FIXTURES.items()):
        path = OUT_DIR / name
        make_helper(path)
        reports[name] = validate(path, reference, seed=100 + i)
    from operator_fixtures import make_operator_fixtures  # the exports using the newer inverse rules

    reports.update(make_operator_fixtures())
    for name, rep in reports.items():
        print(f"== {name}")
        for key, val in rep.items():
            print(f"   {key}: {val}")


if __name__ == "__main__":
    main()
