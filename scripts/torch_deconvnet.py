"""Independent PyTorch reference of the Zeiler & Fergus deconvnet, for benchmarks and checks.

It shares no code with onnxviz on purpose: the ONNX graph is rebuilt as a ``torch.nn.Sequential``
and projections come from autograd, with only the ReLU backward replaced (module backward
hooks). Max-pool backward is autograd's, which routes each window's signal to its argmax, i.e.
the "switches" of the deconvnet (torch keeps the *first* maximum of a window on ties, which
matters for windows of zeros under the deconvnet rule). Conv backward is autograd's transposed
convolution with the same weights; the bias never enters a gradient, so it is left out as the
deconvnet prescribes.

Rules for the ReLU backward (grad_out: signal from above, input: the forward ReLU input):

- ``deconvnet``: relu(grad_out)                    (Zeiler & Fergus 2014)
- ``guided``:    relu(grad_out) * (input > 0)      (Springenberg et al. 2015)
- ``saliency``:  grad_out * (input > 0)            (plain gradient, Simonyan et al. 2014)

``python scripts/torch_deconvnet.py`` reproduces /work/shared/reference/hed_vgg16_deconvnet.png
(see that folder's README) into ``benchmarks/out/reference_check.png`` and saves the raw
projections in ``benchmarks/out/reference_arrays.npz``.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

REPO_ROOT = Path(__file__).resolve().parent.parent
Rule = Literal["deconvnet", "guided", "saliency"]
Batching = Literal["vmap", "expand", "loop"]
RULES: tuple[str, ...] = ("deconvnet", "guided", "saliency")

BGR_MEAN = np.array([104.00699, 116.66877, 122.67891], np.float32)
REFERENCE_IMAGES = ("chelsea", "astronaut", "coffee")
REFERENCE_LAYERS = ("relu2_2", "relu3_3", "relu4_3", "relu5_3")


# --------------------------------------------------------------------------- ONNX -> torch


class OnnxSequential(nn.Sequential):
    """``nn.Sequential`` that remembers which ONNX node and tensor each module came from."""

    def __init__(self, modules: OrderedDict[str, nn.Module], tensors: list[str]) -> None:
        super().__init__(modules)
        self.node_names: list[str] = list(modules)
        self.tensor_names: list[str] = tensors

    def index_of(self, layer: str) -> int:
        """Position of the module named ``layer`` (ONNX node name or output tensor name)."""
        for names in (self.node_names, self.tensor_names):
            if layer in names:
                return names.index(layer)
        raise KeyError(f"no layer {layer!r}; have {self.node_names}")

    def upto(self, layer: str) -> nn.Sequential:
        """The prefix of the network that ends with ``layer`` (modules shared, not copied)."""
        return nn.Sequential(OrderedDict(list(self._modules.items())[: self.index_of(layer) + 1]))


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pads(attrs: dict[str, object], node: onnx.NodeProto) -> tuple[int, int, int, int]:
    """ONNX (top, left, bottom, right) pads; only explicit padding is supported."""
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    if auto_pad not in (b"NOTSET", b"VALID"):
        raise NotImplementedError(f"{node.name}: auto_pad={auto_pad!r}")
    pads = list(attrs.get("pads", [0, 0, 0, 0]))  # type: ignore[call-overload]
    if len(pads) != 4:
        raise NotImplementedError(f"{node.name}: only 2-D ops are supported")
    return pads[0], pads[1], pads[2], pads[3]


def _padded(module: nn.Module, pads: tuple[int, int, int, int], value: float) -> nn.Module:
    """Wrap ``module`` in an explicit pad when ONNX pads are asymmetric (torch's are not)."""
    top, left, bottom, right = pads
    return nn.Sequential(nn.ConstantPad2d((left, right, top, bottom), value), module)


def _conv(node: onnx.NodeProto, weights: dict[str, np.ndarray]) -> nn.Module:
    a = _attrs(node)
    w = weights[node.input[1]]
    b = weights[node.input[2]] if len(node.input) > 2 and node.input[2] else None
    pads = _pads(a, node)
    symmetric = pads[:2] == pads[2:]
    conv = nn.Conv2d(
        w.shape[1] * int(a.get("group", 1)),
        w.shape[0],
        tuple(w.shape[2:]),
        stride=tuple(a.get("strides", [1, 1])),
        padding=pads[:2] if symmetric else 0,
        dilation=tuple(a.get("dilations", [1, 1])),
        groups=int(a.get("group", 1)),
        bias=b is not None,
    )
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(w))
        if b is not None:
            conv.bias.copy_(torch.tensor(b))
    return conv if symmetric else _padded(conv, pads, 0.0)


def _maxpool(node: onnx.NodeProto) -> nn.Module:
    a = _attrs(node)
    pads = _pads(a, node)
    symmetric = pads[:2] == pads[2:]
    kernel = tuple(a["kernel_shape"])  # type: ignore[arg-type]
    pool = nn.MaxPool2d(
        kernel,
        stride=tuple(a.get("strides", [1, 1])),
        padding=pads[:2] if symmetric else 0,
        dilation=tuple(a.get("dilations", [1, 1])),
        ceil_mode=bool(a.get("ceil_mode", 0)),
    )
    return pool if symmetric else _padded(pool, pads, float("-inf"))


def _gemm(node: onnx.NodeProto, weights: dict[str, np.ndarray]) -> nn.Module:
    a = _attrs(node)
    if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
        raise NotImplementedError(f"{node.name}: only Gemm(x, W, b) with alpha=beta=1")
    w = weights[node.input[1]]
    w = w if a.get("transB", 0) else w.T
    b = weights[node.input[2]] if len(node.input) > 2 and node.input[2] else None
    lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(w))
        if b is not None:
            lin.bias.copy_(torch.tensor(b.reshape(-1)))
    return lin


def onnx_to_torch(model: onnx.ModelProto | str | Path) -> OnnxSequential:
    """Rebuild a *sequential* ONNX CNN (Conv/Relu/MaxPool/Flatten/Gemm) as torch modules.

    Each node must consume the previous node's output, so a chain is all that is accepted;
    Identity and Dropout are dropped. Module names are the ONNX node names (dots replaced).
    """
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    graph = model.graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in weights]
    if len(inputs) != 1:
        raise ValueError(f"expected one graph input, got {inputs}")
    prev = inputs[0]
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    tensors: list[str] = []
    for i, node in enumerate(graph.node):
        if node.input[0] != prev:
            raise ValueError(f"{node.name}: not a chain ({node.input[0]!r} after {prev!r})")
        if node.op_type == "Conv":
            module: nn.Module = _conv(node, weights)
        elif node.op_type == "Relu":
            module = nn.ReLU()  # never in place: the hooks need the forward input intact
        elif node.op_type == "MaxPool":
            module = _maxpool(node)
        elif node.op_type == "Flatten":
            module = nn.Flatten(int(_attrs(node).get("axis", 1)))  # type: ignore[call-overload]
        elif node.op_type == "Gemm":
            module = _gemm(node, weights)
        elif node.op_type in ("Identity", "Dropout"):
            prev = node.output[0]
            continue
        else:
            raise NotImplementedError(f"{node.name}: op {node.op_type}")
        name = re.sub(r"[^0-9A-Za-z_]", "_", node.name or f"{node.op_type.lower()}{i}")
        modules[name] = module
        tensors.append(node.output[0])
        prev = node.output[0]
    # Only gradients wrt the input are wanted; frozen weights keep autograd from doing more.
    return OnnxSequential(modules, tensors).eval().requires_grad_(False)


# --------------------------------------------------------------------------- projections


GradHook = Callable[[nn.Module, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]], tuple[torch.Tensor]]


def _relu_hook(rule: Rule) -> GradHook:
    """Backward hook on nn.ReLU that returns the rule's grad wrt the ReLU input.

    autograd already computed grad_in = grad_out * (input > 0); the deconvnet rule throws that
    mask away and rectifies the signal instead, guided backprop rectifies what autograd gave.
    """

    def hook(
        _m: nn.Module, grad_in: tuple[torch.Tensor, ...], grad_out: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor]:
        if rule == "deconvnet":
            return (torch.relu(grad_out[0]),)
        return (torch.relu(grad_in[0]),)  # guided

    return hook


@contextmanager
def relu_rule(model: nn.Module, rule: Rule) -> Iterator[None]:
    """Install the rule's ReLU backward hooks for the duration of the block."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    handles = []
    if rule != "saliency":
        handles = [m.register_full_backward_hook(_relu_hook(rule)) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _seeds(y: torch.Tensor, channels: Sequence[int]) -> torch.Tensor:
    """(K, *y.shape[1:]): seed k is the map of channel k (its activations), zero elsewhere."""
    seeds = torch.zeros((len(channels), *y.shape[1:]), dtype=y.dtype)
    for k, c in enumerate(channels):
        seeds[k, c] = y[0, c].detach()
    return seeds


def project(
    model: OnnxSequential,
    x: np.ndarray | torch.Tensor,
    layer_name: str,
    channels: Sequence[int] | int,
    rule: Rule = "deconvnet",
    batching: Batching = "vmap",
) -> np.ndarray:
    """Project each selected channel of ``layer_name`` back to input space.

    x: one preprocessed image, (3, H, W) or (1, 3, H, W). Returns float32 (K, 3, H, W).
    batching: how the K channels share work, all giving the same numbers:
      "vmap"   - one forward of batch 1, one vmapped backward of batch K (is_grads_batched);
      "expand" - the image expanded to batch K, one forward and one backward of batch K;
      "loop"   - K independent forward + backward runs of batch 1.
    """
    chans = [channels] if isinstance(channels, int) else list(channels)
    xt = torch.as_tensor(x, dtype=torch.float32)
    xt = xt.reshape(1, *xt.shape[-3:])
    sub = model.upto(layer_name)
    with relu_rule(sub, rule):
        if batching == "vmap":
            xg = xt.clone().requires_grad_(True)
            y = sub(xg)
            (g,) = torch.autograd.grad(y, xg, _seeds(y, chans).unsqueeze(1), is_grads_batched=True)
            out = g[:, 0]
        elif batching == "expand":
            xg = xt.expand(len(chans), -1, -1, -1).clone().requires_grad_(True)
            y = sub(xg)
            (out,) = torch.autograd.grad(y, xg, _seeds(y[:1], chans))
        elif batching == "loop":
            parts = []
            for c in chans:
                xg = xt.clone().requires_grad_(True)
                y = sub(xg)
                parts.append(torch.autograd.grad(y, xg, _seeds(y, [c]))[0])
            out = torch.cat(parts)
        else:
            raise ValueError(f"unknown batching {batching!r}")
    return out.detach().numpy().astype(np.float32, copy=False)


# --------------------------------------------------------------------------- reference picture


def preprocess(rgb: np.ndarray, size: int = 224) -> np.ndarray:
    """uint8 RGB photo -> (1, 3, size, size) float32 BGR minus the HED/Caffe mean, no scaling."""
    import cv2

    resized = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR)
    bgr = resized[:, :, ::-1].astype(np.float32) - BGR_MEAN
    return np.ascontiguousarray(bgr.transpose(2, 0, 1)[None])


def strongest_channel(act: np.ndarray) -> int:
    """Channel with the largest activation inside (C, h, w), ignoring a border of h/8, w/8.

    The border is excluded because padding effects make edge activations unrepresentative.
    """
    _, h, w = act.shape
    bh, bw = h // 8, w // 8
    inner = act[:, bh : h - bh, bw : w - bw]
    return int(inner.reshape(inner.shape[0], -1).max(axis=1).argmax())


def to_display(p: np.ndarray) -> np.ndarray:
    """(3, H, W) BGR projection -> uint8 RGB (H, W, 3) as p / max|p| * 127 + 128.

    Truncated to uint8 (not rounded), as the shared reference picture was, so the two PNGs
    can be compared pixel for pixel.
    """
    m = float(np.abs(p).max())
    img = p / m * 127.0 + 128.0 if m > 0 else np.full_like(p, 128.0)
    return np.clip(img, 0, 255).astype(np.uint8).transpose(1, 2, 0)[:, :, ::-1]


def reference_picture(model_path: Path, out_dir: Path, rule: Rule = "deconvnet") -> Path:
    """Rebuild the shared reference grid: rows = photos, columns = photo + 4 layers."""
    import cv2
    from skimage import data

    model = onnx_to_torch(model_path)
    rows: list[np.ndarray] = []
    arrays: dict[str, np.ndarray] = {}
    for name in REFERENCE_IMAGES:
        rgb = getattr(data, name)()
        x = preprocess(rgb)
        tiles = [cv2.resize(rgb, (224, 224), interpolation=cv2.INTER_LINEAR)]
        chosen = []
        for layer in REFERENCE_LAYERS:
            with torch.no_grad():
                act = model.upto(layer)(torch.from_numpy(x))[0].numpy()
            c = strongest_channel(act)
            p = project(model, x, layer, [c], rule)[0]
            arrays[f"{name}/{layer}"] = p
            chosen.append(c)
            tiles.append(to_display(p))
            print(f"{name:10s} {layer}: channel {c:3d}, max act {act[c].max():8.2f}, max|p| {np.abs(p).max():.4g}")
        arrays[f"{name}/channels"] = np.array(chosen)
        arrays[f"{name}/input"] = x[0]
        rows.append(np.concatenate(tiles, axis=1))
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / "reference_check.png"
    cv2.imwrite(str(png), np.concatenate(rows, axis=0)[:, :, ::-1])
    np.savez_compressed(
        out_dir / "reference_arrays.npz", layers=np.array(REFERENCE_LAYERS), images=np.array(REFERENCE_IMAGES), **arrays
    )
    return png


def benchmark(model_path: Path, layer: str = "relu5_3", channels: Sequence[int] = (1, 64), repeats: int = 3) -> None:
    """Time one forward and K-channel deconvnet projections on a random 224x224 input.

    Best of ``repeats`` after one warm-up run; projections of more than 8 channels are timed
    once (the warm-up at 1 channel has already paid for allocations and thread start-up).
    """
    model = onnx_to_torch(model_path)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32) * 60

    def best(fn: Callable[[], object], n: int) -> float:
        fn()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    with torch.no_grad():
        t = best(lambda: model(torch.from_numpy(x)), repeats)
    print(f"forward (input to pool5, batch 1): {t:.3f} s")
    for k in channels:
        chans = list(range(k))
        for batching in ("vmap", "expand", "loop") if k > 1 else ("vmap",):

            def run(c: list[int] = chans, b: Batching = batching) -> object:
                return project(model, x, layer, c, "deconvnet", b)

            t = best(run, repeats) if k <= 8 else timed(run)
            print(f"{layer} deconvnet, {k:3d} channel(s), {batching:6s}: {t:.3f} s ({t / k:.3f} s/channel)")


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "vgg16_hed.onnx")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out")
    parser.add_argument("--rule", choices=RULES, default="deconvnet")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument(
        "--benchmark", action="store_true", help="time forward and conv5_3 projections instead of the picture"
    )
    parser.add_argument(
        "--channels", type=int, nargs="+", default=[1, 64], help="channel counts for --benchmark (default 1 64)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.benchmark:
        benchmark(args.model, channels=args.channels)
    else:
        print(f"wrote {reference_picture(args.model, args.out, args.rule)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
