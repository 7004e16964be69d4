#!/usr/bin/env python
"""Build the cam fixtures and their references from pytorch-grad-cam's own classes.

``tests/analyses/test_cam.py`` checks that ``onnxviz cam`` gives the arrays pytorch-grad-cam gives
for the same model, layer, target and input. This script builds small seeded torch models, exports
each to ``tests/fixtures/models/cam_*.onnx`` and stores in ``tests/fixtures/cam_references.npz``,
per model, the inputs (skimage's chelsea and astronaut resized to 32 × 32, ImageNet-normalised),
the layer's ONNX node name and, per method, pytorch-grad-cam's output (``--raw``) and its map at
the layer's resolution, ReLU(M) (``--raw-layer``). The models:

- ``cam_vgg``: a VGG-like stack with MaxPool (TorchScript exporter), also a two-layer gradcam and
  a cam of a named class (the first image's runner-up);
- ``cam_resnet``: a ResNet-like with BatchNorm and residual blocks (TorchScript exporter), also
  ablationcam and scorecam at a layer inside a block, which the block's skip connection goes
  around (``resnet_inside``);
- ``cam_mobilenet``: a MobileNetV3-like with HardSwish and squeeze-excitation (dynamo exporter),
  whose reference layer is the default layer rule's choice, so the test leaves ``--layer`` out;
  its layer is mostly negative, so scorecam's positive weights rectify every map away and it is
  left out; ablationcam is taken for class ``MOBILENET_ABLATION_CLASS``, whose map is not;
- ``cam_nhwc``: a net whose cam layer is laid out NHWC (pytorch-grad-cam reads it through a
  ``reshape_transform`` to NCHW, as onnxviz reads an NHWC layer).

eigencam is pytorch-grad-cam's EigenCAM with ``get_2d_projection_with_sign_correction``, as the
contract defines it. ablationcam is its AblationCAM given, through its ``ablation_layer`` argument,
an ablation layer that writes 0 (pytorch-grad-cam's own writes min − 1e7 where the layer has no
zero, and the mobilenet's HardSwish layer is negative in places); the layer's channel axis is
named, so the NHWC net's channels are ablated, not its rows. scorecam is its ScoreCAM.

torch, torchvision, grad-cam and scikit-image are dev tools, not onnxviz's dependencies
(torchvision does not import beside every torch): run it from a separate venv::

    python -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch torchvision grad-cam onnx onnxruntime onnxscript scikit-image
    /tmp/refvenv/bin/python scripts/reference_cams.py
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import torch
from pytorch_grad_cam import AblationCAM, EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM, XGradCAM
from pytorch_grad_cam.ablation_layer import AblationLayer
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction
from skimage import data
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "fixtures" / "models"
REFERENCES = ROOT / "tests" / "fixtures" / "cam_references.npz"
SIZE = 32
CLASSES = 10
MAX_BYTES = 300 * 1024
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
MOBILENET_ABLATION_CLASS = 6


class SignCorrectedEigenCAM(EigenCAM):
    """EigenCAM as the contract defines it: the projection's sign fixed (|min| > |max|: negated)."""

    def get_cam_image(self, input_tensor, target_layer, target_category, activations, grads, eigen_smooth):
        return get_2d_projection_with_sign_correction(activations)


class ZeroAblationLayer(AblationLayer):
    """Sets the ablated channel to 0 on any layer, as the contract does; ``channel_axis`` 3 for an
    NHWC layer."""

    def __init__(self, channel_axis: int = 1) -> None:
        super().__init__()
        self.channel_axis = channel_axis

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        output = self.activations
        for i in range(output.size(0)):
            output[i].select(self.channel_axis - 1, int(self.indices[i])).zero_()
        return output


METHODS = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "hirescam": HiResCAM,
    "eigencam": SignCorrectedEigenCAM,
    "scorecam": ScoreCAM,
    "ablationcam": AblationCAM,
}


def block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU())


class VggLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            block(3, 8), block(8, 8), nn.MaxPool2d(2), block(8, 16), nn.MaxPool2d(2), block(16, 32), block(32, 32)
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return self.act(y + self.skip(x))


class ResNetLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = Basic(8, 16, 2)
        self.layer2 = Basic(16, 24, 1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer2(self.layer1(self.stem(x))))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, channels // 4, 1)
        self.expand = nn.Conv2d(channels // 4, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * nn.functional.hardsigmoid(self.expand(torch.relu(self.reduce(s))))


class MobileNetLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.Hardswish())
        self.depthwise = nn.Sequential(nn.Conv2d(8, 8, 3, 2, 1, groups=8), nn.BatchNorm2d(8), nn.Hardswish())
        self.se = SqueezeExcite(8)
        self.project = nn.Sequential(nn.Conv2d(8, 24, 1), nn.BatchNorm2d(24), nn.Hardswish())
        self.head = nn.Linear(24, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A mean, not Flatten: the dynamo exporter writes a dynamic-batch Flatten as a Gather of computed indices.
        return self.head(self.project(self.se(self.depthwise(self.stem(x)))).mean((2, 3)))


class NhwcLike(nn.Module):
    """Its last block runs channels-last, as a tf2onnx graph's layers do."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(block(3, 8), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1))
        self.act = nn.ReLU()
        self.head = nn.Linear(16, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels_last = self.act(self.features(x).permute(0, 2, 3, 1))
        return self.head(channels_last.mean((1, 2)))


def randomise_batchnorm(model: nn.Module, generator: torch.Generator) -> None:
    """Running statistics and affine parameters away from identity, so BatchNorm is not a no-op."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            count = module.num_features
            module.running_mean.copy_(torch.randn(count, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(count, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(count, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(count, generator=generator) * 0.1)


def unbiased_classifier(model: nn.Module) -> nn.Module:
    """The classifier's bias set to 0: a random net's top-1 logit then comes from the features (it
    is the largest of zero-mean sums, so positive), and its maps are not all rectified away."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.bias.data.zero_()
    return model


def images() -> np.ndarray:
    """chelsea and astronaut, 32 × 32, ImageNet-normalised, NCHW float32."""
    pictures = [data.chelsea(), data.astronaut()]
    resized = [cv2.resize(p, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for p in pictures]
    return np.stack([((r / 255.0 - MEAN) / STD).transpose(2, 0, 1) for r in resized]).astype(np.float32)


def export(model: nn.Module, name: str, x: np.ndarray, dynamo: bool) -> Path:
    """``model`` as ``cam_<name>.onnx`` with a dynamic batch, checked against torch on ``x``."""
    path = MODELS / f"cam_{name}.onnx"
    if dynamo:  # torch.export specialises a dimension of size 1: the example is the batch of two
        example = (torch.from_numpy(x),)
        torch.onnx.export(
            model,
            example,
            path,
            dynamo=True,
            external_data=False,
            input_names=["input"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
    else:
        example = (torch.from_numpy(x[:1]),)
        axes = {"input": {0: "batch"}, "logits": {0: "batch"}}
        torch.onnx.export(
            model, example, path, dynamo=False, input_names=["input"], output_names=["logits"], dynamic_axes=axes
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        np.testing.assert_allclose(onnx_out, model(torch.from_numpy(x)).numpy(), atol=1e-4)
    assert path.stat().st_size < MAX_BYTES, f"{path} is {path.stat().st_size} bytes"
    return path


def references(
    model: nn.Module,
    layers: list[nn.Module],
    x: np.ndarray,
    classes: list[int],
    reshape: Callable[[torch.Tensor], torch.Tensor] | None = None,
    methods: tuple[str, ...] = tuple(METHODS),
) -> dict[str, np.ndarray]:
    """Per method pytorch-grad-cam's output (``raw``) and, for one layer, ReLU(M) at its resolution
    (``layer``), for the given class of each image."""
    found = {}
    for method in methods:
        targets = [ClassifierOutputTarget(k) for k in classes]
        extra = {}
        if method == "ablationcam":
            extra["ablation_layer"] = ZeroAblationLayer(1 if reshape is None else 3)
        with METHODS[method](model=model, target_layers=layers, reshape_transform=reshape, **extra) as cam:
            found[f"{method}/raw"] = cam(input_tensor=torch.from_numpy(x), targets=targets)
            recorded = cam.activations_and_grads
            a = recorded.activations[0].numpy()
            g = recorded.gradients[0].numpy() if recorded.gradients else None
            if len(layers) == 1:
                m = cam.get_cam_image(torch.from_numpy(x), layers[0], targets, a, g, False)
                found[f"{method}/layer"] = np.maximum(m, 0).astype(np.float32)
    return found


def node_named(path: Path, prefix: str, op_type: str) -> str:
    """The ONNX node the TorchScript exporter named after module ``prefix`` (``/features/features.6/...``)."""
    import onnx

    nodes = [n.name for n in onnx.load(str(path)).graph.node if n.name.startswith(prefix) and n.op_type == op_type]
    assert len(nodes) == 1, (prefix, nodes)
    return nodes[0]


def top1(model: nn.Module, x: np.ndarray) -> list[int]:
    with torch.no_grad():
        return model(torch.from_numpy(x)).argmax(1).tolist()


def runner_up(model: nn.Module, x: np.ndarray) -> int:
    """The first image's second most probable class: a named target that is not its top-1."""
    with torch.no_grad():
        return int(model(torch.from_numpy(x[:1])).argsort(1, descending=True)[0, 1])


def main() -> None:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    x = images()
    stored: dict[str, np.ndarray] = {"inputs": x}

    vgg = unbiased_classifier(VggLike()).eval()
    path = export(vgg, "vgg", x, dynamo=False)
    last, before = vgg.features[6], vgg.features[5]
    stored["vgg/layer"] = np.array(node_named(path, "/features/features.6/", "Relu"))
    stored["vgg/second_layer"] = np.array(node_named(path, "/features/features.5/", "Relu"))
    stored["vgg/top1"] = np.array(top1(vgg, x))
    stored |= {f"vgg/{k}": v for k, v in references(vgg, [last], x, top1(vgg, x)).items()}
    two = references(vgg, [last, before], x, top1(vgg, x), methods=("gradcam",))
    stored["vgg/two_layers/gradcam/raw"] = two["gradcam/raw"]
    stored["vgg/named_class"] = np.array(runner_up(vgg, x))
    named = references(vgg, [last], x, [runner_up(vgg, x)] * len(x), methods=("gradcam",))
    stored["vgg/named/gradcam/raw"] = named["gradcam/raw"]

    resnet = unbiased_classifier(ResNetLike())
    randomise_batchnorm(resnet, generator)
    resnet.eval()
    path = export(resnet, "resnet", x, dynamo=False)
    stored["resnet/layer"] = np.array(node_named(path, "/layer2/act/", "Relu"))
    stored |= {f"resnet/{k}": v for k, v in references(resnet, [resnet.layer2], x, top1(resnet, x)).items()}
    # Inside layer2, which its skip connection goes around: conv1's output (bn1 is folded into it).
    stored["resnet_inside/layer"] = np.array(node_named(path, "/layer2/conv1/", "Conv"))
    inside = references(resnet, [resnet.layer2.bn1], x, top1(resnet, x), methods=("ablationcam", "scorecam"))
    stored |= {f"resnet_inside/{k}": v for k, v in inside.items()}

    mobilenet = unbiased_classifier(MobileNetLike())
    randomise_batchnorm(mobilenet, generator)
    mobilenet.eval()
    export(mobilenet, "mobilenet", x, dynamo=True)
    top = top1(mobilenet, x)
    found = references(mobilenet, [mobilenet.project], x, top, methods=tuple(METHODS)[:-2])
    classes = [MOBILENET_ABLATION_CLASS] * len(x)
    found |= references(mobilenet, [mobilenet.project], x, classes, methods=("ablationcam",))
    stored |= {f"mobilenet/{k}": v for k, v in found.items()}
    stored["mobilenet/ablationcam/class"] = np.array(MOBILENET_ABLATION_CLASS)

    nhwc = unbiased_classifier(NhwcLike()).eval()
    path = export(nhwc, "nhwc", x, dynamo=False)
    stored["nhwc/layer"] = np.array(node_named(path, "/act/", "Relu"))
    found = references(nhwc, [nhwc.act], x, top1(nhwc, x), reshape=lambda t: t.permute(0, 3, 1, 2))
    stored |= {f"nhwc/{k}": v for k, v in found.items()}

    flat = [k for k, v in stored.items() if k.endswith("/raw") and not (v.max(axis=(1, 2)) > 0.5).any()]
    assert not flat, f"references whose maps are all zero test little: {flat}"
    np.savez_compressed(REFERENCES, **stored)
    print(f"wrote {REFERENCES} ({REFERENCES.stat().st_size} bytes) and {len(list(MODELS.glob('cam_*.onnx')))} models")


if __name__ == "__main__":
    main()
