"""Build the references that ``onnxviz attribute`` is tested against: captum's attributions of two
small seeded torch CNNs, exported to ONNX, so the tests run without torch or captum.

Two models: a VGG-like (Conv, ReLU, MaxPool, Linear: the deconvnet's switches) and a ResNet-like
(Conv, BatchNormalization, ReLU, residual Add, global average pool). Each is written to
``tests/fixtures/models/attr_<name>.onnx`` (TorchScript exporter, opset 17, batch dynamic), and
for two real pictures (skimage's chelsea and astronaut at 64×64, ImageNet-normalised) and one
class target, captum's Saliency (abs=False), InputXGradient, IntegratedGradients (method
``gausslegendre``, zero baseline, with its convergence delta), GuidedBackprop and Deconvolution,
and the NoiseTunnel family (smoothgrad, smoothgrad-sq, vargrad) as the mean, the mean of squares
and the variance of captum's Saliency over exactly the noisy inputs ``onnxviz attribute`` draws
(one ``numpy.random.default_rng(seed)`` per call, image by image), and guided-gradcam as captum's
GuidedBackprop times pytorch-grad-cam's GradCAM output at cam's default layer (the contract's
``cam --raw`` map; captum's own GuidedGradCam upsamples an unnormalised map by nearest neighbour
instead), are stored in
``tests/fixtures/attribute_references.npz`` under ``<model>/<method>`` (float16 in units of
``<model>/<method>/scale``) with the inputs under
``inputs`` and the settings under ``target``, ``steps``, ``samples``, ``noise`` and ``seed``.

Usage (torch, captum and grad-cam are dev-only)::

    pip install captum grad-cam
    python scripts/reference_attributions.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from captum.attr import Deconvolution, GuidedBackprop, InputXGradient, IntegratedGradients, Saliency
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from skimage import data
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "fixtures" / "models"
REFERENCES = ROOT / "tests" / "fixtures" / "attribute_references.npz"
SIZE = 64
CLASSES = 10
TARGET = 3
STEPS = 16
SAMPLES = 8
NOISE = 0.15
SEED = 0
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


class VggLike(nn.Module):
    """Two Conv+ReLU+MaxPool stages and a classifier: every ReLU its own module (captum hooks them)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class Block(nn.Module):
    """Conv-BN-ReLU-Conv-BN plus the shortcut (a strided 1x1 projection where the shape changes), ReLU."""

    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and channels_in == channels_out
            else nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride, bias=False), nn.BatchNorm2d(channels_out)
            )
        )
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(y + self.shortcut(x))


class ResNetLike(nn.Module):
    """A strided stem with BN, two residual blocks, global average pooling, a linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layer1 = Block(16, 16, 1)
        self.layer2 = Block(16, 32, 2)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer2(self.layer1(self.stem(x))))


def calibrated(model: nn.Module, seed: int) -> nn.Module:
    """Seeded weights; BN statistics from random batches and random affine terms, so BN is no identity."""
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.uniform_(module.bias, -0.1, 0.1)
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.2, 0.2)
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(8, 3, SIZE, SIZE))
    return model.eval()


def pictures() -> np.ndarray:
    """chelsea and astronaut at SIZE×SIZE, ImageNet-normalised, NCHW float32 (2, 3, SIZE, SIZE)."""
    images = [
        cv2.resize(picture, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        for picture in (data.chelsea(), data.astronaut())
    ]
    normalised = [(image.astype(np.float32) / 255 - MEAN) / STD for image in images]
    return np.stack([image.transpose(2, 0, 1) for image in normalised]).astype(np.float32)


def noisy_inputs(inputs: np.ndarray) -> list[np.ndarray]:
    """The contract's noise: one generator per call, per image in order x + σ·z, σ = noise × (max − min)."""
    rng = np.random.default_rng(SEED)
    noisy = []
    for x in inputs:
        sigma = np.float32(NOISE * (float(x.max()) - float(x.min())))
        z = rng.standard_normal((SAMPLES, *x.shape), dtype=np.float32)
        noisy.append((x[None] + sigma * z).astype(np.float32))
    return noisy


def gradcam_heatmaps(model: nn.Module, layer: nn.Module, inputs: np.ndarray) -> np.ndarray:
    """pytorch-grad-cam's GradCAM output (N, H, W) for class TARGET at ``layer``."""
    with GradCAM(model=model, target_layers=[layer]) as cam:
        return cam(input_tensor=torch.from_numpy(inputs), targets=[ClassifierOutputTarget(TARGET)] * len(inputs))


def attributions(model: nn.Module, layer: nn.Module, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """captum's attributions of class TARGET for every image (and IG's convergence delta);
    guided-gradcam's Grad-CAM read at ``layer``, onnxviz cam's default layer of the model."""
    x = torch.from_numpy(inputs)
    saliency = Saliency(model)
    ig, delta = IntegratedGradients(model).attribute(
        x, target=TARGET, n_steps=STEPS, method="gausslegendre", return_convergence_delta=True
    )
    noise_gradients = np.stack(
        [
            saliency.attribute(torch.from_numpy(noisy), target=TARGET, abs=False).numpy()
            for noisy in noisy_inputs(inputs)
        ]
    ).astype(np.float64)
    found = {
        "saliency": saliency.attribute(x, target=TARGET, abs=False),
        "inputxgrad": InputXGradient(model).attribute(x, target=TARGET),
        "ig": ig,
        "ig_delta": delta,
        "guided": GuidedBackprop(model).attribute(x, target=TARGET),
        "deconvnet": Deconvolution(model).attribute(x, target=TARGET),
    }
    arrays = {name: value.detach().numpy().astype(np.float32) for name, value in found.items()}
    arrays["smoothgrad"] = noise_gradients.mean(axis=1).astype(np.float32)
    arrays["smoothgrad-sq"] = (noise_gradients**2).mean(axis=1).astype(np.float32)
    arrays["vargrad"] = noise_gradients.var(axis=1).astype(np.float32)
    arrays["guided-gradcam"] = arrays["guided"] * gradcam_heatmaps(model, layer, inputs)[:, None]
    return arrays


def compact(key: str, value: np.ndarray) -> dict[str, np.ndarray]:
    """``value`` as float16 in units of its largest magnitude (``key``) and that unit (``key/scale``):
    each element kept to 5e-4 of the maximum, a third of the float32 file, and no value so small
    that float16 flushes it (squared gradients are ~1e-5)."""
    scale = np.float32(np.abs(value).max() or 1.0)
    return {key: (value / scale).astype(np.float16), f"{key}/scale": np.array(scale)}


def export(model: nn.Module, path: Path) -> None:
    torch.onnx.export(
        model, (torch.zeros(1, 3, SIZE, SIZE),), str(path), dynamo=False, opset_version=17, input_names=["input"],
        output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
    )  # fmt: skip


def main() -> None:
    inputs = pictures()
    stored: dict[str, np.ndarray] = {
        "inputs": inputs,
        "target": np.array(TARGET),
        "steps": np.array(STEPS),
        "samples": np.array(SAMPLES),
        "noise": np.array(NOISE),
        "seed": np.array(SEED),
    }
    vgg, resnet = calibrated(VggLike(), 1), calibrated(ResNetLike(), 2)
    # cam's default layers: the last 4-D tensor with more than one position (pool3, relu5).
    for name, model, layer in (("vgg", vgg, vgg.features[8]), ("resnet", resnet, resnet.layer2)):
        export(model, MODELS / f"attr_{name}.onnx")
        for method, value in attributions(model, layer, inputs).items():
            key = f"{name}/{method}"
            stored.update({key: value} if method == "ig_delta" else compact(key, value))
    np.savez_compressed(REFERENCES, **stored)
    for path in (*sorted(MODELS.glob("attr_*.onnx")), REFERENCES):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
