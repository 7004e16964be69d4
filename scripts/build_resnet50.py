"""Build a ResNet-50 (or, with ``--depth 18``, a ResNet-18) with seeded random weights as ONNX.

torchvision's ResNet-50 (v1.5: the stride on the 3x3 conv of a bottleneck; blocks [3, 4, 6, 3];
BatchNorm; 1000 logits; ResNet-18: basic blocks [2, 2, 2, 2]) written here in plain torch, because
torchvision cannot be installed beside the torch this project pins. The module names are
torchvision's (``layer3.5.conv2``), so the TorchScript exporter names nodes and tensors as it
would for torchvision's model (``/layer4/layer4.0/conv1/Conv``).

Random weights, reproducible from ``--seed``: convolutions He-normal (fan out) as torchvision
initialises them, BatchNorm scales and shifts drawn around 1 and 0. With only that, every
BatchNorm would hold running mean 0 and variance 1 and fold into its convolution as a no-op
scale; so the running statistics are first measured on a few batches of random images in train
mode (a cumulative average, ``momentum=None``), which also keeps the activations of the eval-mode
network at a sane scale all the way to the logits. Then export (opset 17, dynamic batch) and a
check against torch on one input. The torch ``state_dict`` is saved beside the ONNX file
(``.pt``), loadable into torchvision's ``resnet50()``/``resnet18()`` by the explain benchmark.

Usage::

    python scripts/build_resnet50.py                     # models/resnet50_random.onnx
    python scripts/build_resnet50.py --size 128 -o /tmp/resnet50_128.onnx
    python scripts/build_resnet50.py --depth 18          # models/resnet18_random.onnx
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parent.parent
OPSET = 17
BLOCKS = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3)}
WIDTHS = (64, 128, 256, 512)
EXPANSION = 4
CLASSES = 1000
CALIBRATION_BATCHES = 4
CALIBRATION_BATCH_SIZE = 8
MAX_RELATIVE_ERROR = 1e-4


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand, each with BatchNorm; the shortcut is a
    strided 1x1 conv + BatchNorm where the shape changes (torchvision's ``downsample``)."""

    def __init__(self, inplanes: int, width: int, stride: int) -> None:
        super().__init__()
        planes = width * EXPANSION
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class BasicBlock(nn.Module):
    """ResNet-18's block: two 3x3 convs (the first carrying the stride) with BatchNorm, and the
    same ``downsample`` shortcut as the bottleneck's."""

    def __init__(self, inplanes: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != width:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """Stem (7x7/2 conv, BatchNorm, ReLU, 3x3/2 max pool), four stages, global average pool, fc;
    bottleneck blocks at depth 50, basic blocks at depth 18."""

    def __init__(self, depth: int = 50) -> None:
        super().__init__()
        block_type, expansion = (Bottleneck, EXPANSION) if depth == 50 else (BasicBlock, 1)
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        for index, (count, width) in enumerate(zip(BLOCKS[depth], WIDTHS, strict=True), start=1):
            stride = 1 if index == 1 else 2
            blocks = []
            for block in range(count):
                blocks.append(block_type(inplanes, width, stride if block == 0 else 1))
                inplanes = width * expansion
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def random_resnet50(seed: int, size: int, depth: int = 50) -> ResNet50:
    """The network with seeded weights and BatchNorm statistics measured on random images, in
    eval mode."""
    torch.manual_seed(seed)
    model = ResNet50(depth)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.normal_(module.bias, 0.0, 0.1)
            module.momentum = None  # a cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(CALIBRATION_BATCHES):
            model(torch.randn(CALIBRATION_BATCH_SIZE, 3, size, size))
    return model.eval()


def export(model: ResNet50, size: int, path: Path) -> None:
    """TorchScript exporter (as the project's other builders), input ``input``, output ``logits``,
    batch axis dynamic."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.randn(1, 3, size, size),),
            str(path),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
            opset_version=OPSET,
            dynamo=False,
        )
    onnx.checker.check_model(str(path), full_check=True)


def validate(model: ResNet50, size: int, path: Path) -> None:
    """onnxruntime against torch on one random input (batch 2, so the dynamic batch is used too):
    catches what the checker cannot, such as a BatchNorm exported in train mode."""
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": x})
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    error = float(np.abs(logits - expected).max() / max(np.abs(expected).max(), 1e-12))
    if logits.shape != (2, CLASSES) or error > MAX_RELATIVE_ERROR:
        raise RuntimeError(f"onnxruntime gives {logits.shape} at max relative error {error:.3g} from torch")
    spread = float(logits.std())
    print(f"onnxruntime ok: logits {logits.shape}, std {spread:.3g}, top-1 {logits.argmax(1)}, vs torch {error:.2g}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="weights and calibration data (default 0)")
    parser.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    parser.add_argument("--depth", type=int, choices=sorted(BLOCKS), default=50, help="18 or 50 (default 50)")
    parser.add_argument("-o", "--output", type=Path, help="default models/resnet{depth}_random.onnx")
    args = parser.parse_args(argv)
    if args.size < 32:
        parser.error("--size must be at least 32")
    args.output = args.output or REPO_ROOT / "models" / f"resnet{args.depth}_random.onnx"
    model = random_resnet50(args.seed, args.size, args.depth)
    export(model, args.size, args.output)
    torch.save(model.state_dict(), args.output.with_suffix(".pt"))
    nodes = len(onnx.load(str(args.output), load_external_data=False).graph.node)
    print(
        f"wrote {args.output} ({args.output.stat().st_size / 1e6:.1f} MB, input (N,3,{args.size},{args.size}), "
        f"{nodes} nodes)"
    )
    validate(model, args.size, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
