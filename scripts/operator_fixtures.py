#!/usr/bin/env python
"""Real exports that use the newer inverse rules, with their torch autograd saliency.

Four small networks whose blocks send onnxviz through operators it gained rules for
(``onnxviz/inverse/rules/``), each exported by both torch exporters like the family fixtures
(``make_fixtures.py``: dynamo with static shapes, TorchScript at ``TORCHSCRIPT_OPSET``):

* ``op_grn``: a ConvNeXt-V2 block, whose Global Response Normalisation is an L2 norm over space
  (ReduceL2, or Sqrt of ReduceSum of squares) divided by its channel mean;
* ``op_unet``: a two-level U-Net whose decoder upsamples with ConvTranspose and concatenates the skip;
* ``op_embedding``: an L2-normalised embedding (``F.normalize``) and a cosine classifier;
* ``op_stn``: a spatial transformer: a localisation net regresses θ, AffineGrid/GridSample warp
  the image by it (so the gradient flows through the grid as well as the pixels).

Beside each pair, ``<name>.npz`` holds the float16 input, the top logit, torch's float32 saliency
of it and torch's own float32-vs-float64 gap (``make_fixtures.saliency_reference``), read by
``tests/test_operator_exports.py``. Usage::

    python scripts/operator_fixtures.py        # or as part of scripts/make_fixtures.py
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_fixtures as base

SIZE = 32
CLASSES = 10
SEED = base.FAMILY_SEED + 300
TORCHSCRIPT_OPSET = 20  # AffineGrid's first opset: TorchScript exports affine_grid as it from here
MAX_BYTES = 120 * 1024


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2's GRN over channels-last maps: x·(γ·N(x) + 1) + β with N = ‖x‖₂ over space
    divided by its mean over channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, channels))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spread = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        normalised = spread / (spread.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * normalised) + self.beta + x


class GrnNet(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 4, stride=4)
        self.depthwise = nn.Conv2d(width, width, 7, padding=3, groups=width)
        self.norm = nn.LayerNorm(width)
        self.expand = nn.Linear(width, 4 * width)
        self.grn = GlobalResponseNorm(4 * width)
        self.project = nn.Linear(4 * width, width)
        self.head = nn.Linear(width, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.depthwise(x).permute(0, 2, 3, 1)
        y = self.project(self.grn(F.gelu(self.expand(self.norm(y)))))
        x = x + y.permute(0, 3, 1, 2)
        return self.head(x.mean(dim=(2, 3)))


class UNet(nn.Module):
    def __init__(self, width: int = 6) -> None:
        super().__init__()
        self.down1 = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU())
        self.down2 = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU())
        self.bottom = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU())
        self.up2 = nn.ConvTranspose2d(2 * width, 2 * width, 2, stride=2)
        self.dec2 = nn.Sequential(nn.Conv2d(4 * width, width, 3, padding=1), nn.ReLU())
        self.up1 = nn.ConvTranspose2d(width, width, 3, stride=2, padding=1, output_padding=1)
        self.dec1 = nn.Sequential(nn.Conv2d(2 * width, width, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(width, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.down1(x)
        d2 = self.down2(d1)
        u2 = self.dec2(torch.cat([self.up2(self.bottom(d2)), d2], dim=1))
        u1 = self.dec1(torch.cat([self.up1(u2), d1], dim=1))
        return self.head(u1.mean(dim=(2, 3)))


class EmbeddingNet(nn.Module):
    def __init__(self, width: int = 8, dim: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        )
        self.embed = nn.Linear(2 * width, dim)
        self.prototypes = nn.Parameter(torch.randn(CLASSES, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embedding = F.normalize(self.embed(F.relu(self.features(x)).mean(dim=(2, 3))), p=2, dim=1)
        return 10.0 * embedding @ F.normalize(self.prototypes, p=2, dim=1).t()


class SpatialTransformer(nn.Module):
    def __init__(self, width: int = 6) -> None:
        super().__init__()
        self.localise = nn.Sequential(nn.Conv2d(3, width, 5, stride=4, padding=2), nn.ReLU())
        self.theta = nn.Linear(width, 6)
        self.classify = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(width, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.theta(self.localise(x).mean(dim=(2, 3))).view(-1, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return self.head(self.classify(warped).mean(dim=(2, 3)))


def _stn() -> nn.Module:
    """θ near the identity (a small rotation and zoom), as a trained localiser starts."""
    model = SpatialTransformer()
    with torch.no_grad():
        model.theta.weight.mul_(0.1)
        model.theta.bias.copy_(torch.tensor([0.9, 0.1, 0.05, -0.1, 0.9, -0.05]))
    return model


def _grn() -> nn.Module:
    model = GrnNet()
    with torch.no_grad():  # GRN starts as the identity (γ = β = 0): give it weight
        model.grn.gamma.normal_(0.0, 0.5)
        model.grn.beta.normal_(0.0, 0.1)
    return model


OPERATOR_FIXTURES = {"op_grn": _grn, "op_unet": UNet, "op_embedding": EmbeddingNet, "op_stn": _stn}


def export(model: nn.Module, x: torch.Tensor, exporter: str, path: Path) -> None:
    """As ``make_fixtures.export_family``, with TorchScript at ``TORCHSCRIPT_OPSET``."""
    if exporter == "dynamo":
        base.export_family(model, x, exporter, path)
        return
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), str(path), dynamo=False, opset_version=TORCHSCRIPT_OPSET, input_names=["input"],
            output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )  # fmt: skip


def make_operator_fixtures() -> dict[str, dict[str, object]]:
    """Every operator fixture, validated against torch; returns the validation reports."""
    reports = {}
    for index, (name, construct) in enumerate(OPERATOR_FIXTURES.items()):
        torch.manual_seed(SEED + index)
        model = construct().eval()
        x = np.random.default_rng(SEED + index).standard_normal((1, 3, SIZE, SIZE)).astype(np.float16)
        x = x.astype(np.float32)
        for exporter in ("dynamo", "torchscript"):
            path = base.OUT_DIR / f"{name}_{exporter}.onnx"
            export(model, torch.from_numpy(x), exporter, path)
            assert path.stat().st_size <= MAX_BYTES, f"{path.name} is {path.stat().st_size} bytes"
            reports[path.name] = base.validate(path, base.torch_reference(model), batch=1, seed=300 + index)
            reports[path.name]["ops"] = sorted({n.op_type for n in onnx.load(str(path)).graph.node})
        np.savez_compressed(base.OUT_DIR / f"{name}.npz", **base.saliency_reference(model, x))
    return reports


if __name__ == "__main__":
    for file, report in make_operator_fixtures().items():
        print(f"== {file}: {report}")
