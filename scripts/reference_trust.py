"""Build the references that ``onnxviz sanity`` and ``onnxviz faithfulness`` are tested against,
so the tests run without torch, captum, pytorch-grad-cam, scipy or scikit-image.

The model is ``tests/fixtures/models/attr_vgg.onnx`` and its torch counterpart, the VGG-like of
``scripts/reference_attributions.py`` with the ONNX file's weights loaded by name; the inputs are
that script's two pictures (chelsea and astronaut at 64 × 64, ImageNet-normalised); the target is
each image's top-1 class on the original model.

sanity: the torch model's parameterised modules from the output down (classifier.3,
classifier.1, features.6, features.3, features.0); module i's weight then bias re-drawn with
``default_rng([seed, i]).normal(mean, std, shape)`` (mean and std of the tensor, ddof 0), one more
module per step. At every step the maps of saliency (torch autograd), guided backpropagation
(captum's GuidedBackprop), ig (captum's IntegratedGradients, Gauss–Legendre) and Grad-CAM
(pytorch-grad-cam's GradCAM at features[8], cam's default layer) are compared with the original's:
``scipy.stats.spearmanr`` of the absolute maps (Σ over channels of |·|; the cam's heatmap) and of
the signed ones (Σ over channels), ``skimage.metrics.structural_similarity`` of the absolute maps
each min-max normalised (data_range 1). Stored under ``sanity/<method>/<measure>``, (images,
steps), NaN where undefined.

faithfulness: for saliency (torch autograd), Grad-CAM (pytorch-grad-cam) and random
(``default_rng(seed).random((H, W))`` per image), the deletion (baseline 0) and insertion (the
image into ``cv2.GaussianBlur(·, (11, 11), 5)`` of it) curves: each step's input made from scratch
with numpy, scored by a plain onnxruntime session as the softmax probability of the target class;
AUC by ``numpy.trapezoid`` over t/steps. Stored under ``faithfulness/<metric>/<method>/curve``
and ``.../auc``.

Usage (dev-only packages)::

    pip install torch captum grad-cam scipy scikit-image onnxruntime
    python scripts/reference_trust.py
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import torch
from captum.attr import GuidedBackprop, IntegratedGradients
from onnx import numpy_helper
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_attributions import VggLike, pictures

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "tests" / "fixtures" / "models" / "attr_vgg.onnx"
REFERENCES = ROOT / "tests" / "fixtures" / "trust_references.npz"
SEED = 3
IG_STEPS = 8
STEPS = 16
SANITY_METHODS = ("saliency", "guided", "ig", "gradcam")
FAITHFULNESS_METHODS = ("saliency", "gradcam", "random")
ORDER = ("classifier.3", "classifier.1", "features.6", "features.3", "features.0")


def loaded_model() -> VggLike:
    """The torch counterpart with the ONNX file's weights (their names are the state dict's)."""
    model = VggLike().eval()
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in onnx.load(MODEL).graph.initializer}
    model.load_state_dict({name: weights[name] for name in model.state_dict()})
    return model


def randomise(model: VggLike, position: int) -> None:
    """The contract's draws for the ``position``-th module of ORDER: weight, then bias."""
    module = model.get_submodule(ORDER[position])
    rng = np.random.default_rng([SEED, position])
    with torch.no_grad():
        for parameter in (module.weight, module.bias):
            values = parameter.detach().numpy().astype(np.float64)
            drawn = rng.normal(values.mean(), values.std(), values.shape).astype(np.float32)
            parameter.copy_(torch.from_numpy(drawn))


def maps(model: VggLike, method: str, inputs: np.ndarray, targets: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(absolute, signed) float64 (N, H, W) maps of ``method`` for each image's target."""
    x = torch.from_numpy(inputs).requires_grad_(True)
    target = torch.tensor(targets)
    if method == "gradcam":
        with GradCAM(model=model, target_layers=[model.features[8]]) as cam:
            heatmaps = cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets]).astype(np.float64)
        return heatmaps, heatmaps
    if method == "saliency":
        model.zero_grad()
        model(x).gather(1, target[:, None]).sum().backward()
        found = x.grad
    elif method == "guided":
        found = GuidedBackprop(model).attribute(x, target=target)
    else:
        found = IntegratedGradients(model).attribute(x, target=target, n_steps=IG_STEPS, method="gausslegendre")
    values = found.detach().numpy().astype(np.float64)
    return np.abs(values).sum(axis=1), values.sum(axis=1)


def unit(plane: np.ndarray) -> np.ndarray | None:
    low, high = plane.min(), plane.max()
    return None if high == low else (plane - low) / (high - low)


def measures(before: np.ndarray, after: np.ndarray, before_signed: np.ndarray, after_signed: np.ndarray):
    """scipy's Spearman (absolute, signed) and scikit-image's SSIM of one image's two maps."""
    a, b = unit(before), unit(after)
    if a is None or b is None:
        return np.nan, np.nan, np.nan
    rho = spearmanr(before.ravel(), after.ravel()).statistic
    signed = spearmanr(before_signed.ravel(), after_signed.ravel()).statistic
    return rho, signed, structural_similarity(a, b, data_range=1.0)


def sanity_references(inputs: np.ndarray, targets: list[int]) -> dict[str, np.ndarray]:
    model = loaded_model()
    original = {m: maps(model, m, inputs, targets) for m in SANITY_METHODS}
    found = {f"sanity/{m}/{k}": np.full((len(inputs), len(ORDER)), np.nan) for m in SANITY_METHODS for k in
             ("spearman", "spearman_signed", "ssim")}  # fmt: skip
    for step in range(len(ORDER)):
        randomise(model, step)
        for method in SANITY_METHODS:
            after, after_signed = maps(model, method, inputs, targets)
            for row in range(len(inputs)):
                values = measures(original[method][0][row], after[row], original[method][1][row], after_signed[row])
                for kind, value in zip(("spearman", "spearman_signed", "ssim"), values, strict=True):
                    found[f"sanity/{method}/{kind}"][row, step] = value
    return found


def perturbed(x: np.ndarray, plane: np.ndarray, metric: str) -> np.ndarray:
    """Every step's input, each made from scratch: (STEPS + 1, C, H, W)."""
    order = np.argsort(-plane.ravel(), kind="stable")
    start, end = (x, np.zeros_like(x)) if metric == "deletion" else (blur(x), x)
    steps = []
    for t in range(STEPS + 1):
        changed = np.zeros(plane.size, bool)
        changed[order[: math.ceil(t * plane.size / STEPS)]] = True
        steps.append(np.where(changed.reshape(plane.shape)[None], end, start))
    return np.stack(steps).astype(np.float32)


def blur(x: np.ndarray) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(channel, (11, 11), 5) for channel in x])


def faithfulness_references(inputs: np.ndarray, targets: list[int]) -> dict[str, np.ndarray]:
    model = loaded_model()
    rng = np.random.default_rng(SEED)
    planes = {
        "saliency": maps(model, "saliency", inputs, targets)[0],
        "gradcam": maps(model, "gradcam", inputs, targets)[0],
        "random": np.stack([rng.random(inputs.shape[2:]) for _ in inputs]),
    }
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    found = {}
    for metric in ("deletion", "insertion"):
        for method, plane in planes.items():
            curves = []
            for x, p, target in zip(inputs, plane, targets, strict=True):
                logits = session.run(None, {"input": perturbed(x, p, metric)})[0].astype(np.float64)
                probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
                curves.append((probabilities / probabilities.sum(axis=1, keepdims=True))[:, target])
            curves = np.array(curves)
            found[f"faithfulness/{metric}/{method}/curve"] = curves
            found[f"faithfulness/{metric}/{method}/auc"] = np.trapezoid(curves, dx=1 / STEPS, axis=1)
    return found


def main() -> None:
    inputs = pictures()
    model = loaded_model()
    with torch.no_grad():
        logits = model(torch.from_numpy(inputs)).numpy()
    onnx_logits = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"]).run(None, {"input": inputs})[0]
    assert np.allclose(logits, onnx_logits, atol=1e-4), "the torch counterpart does not compute the ONNX model"
    targets = [int(t) for t in logits.argmax(axis=1)]
    stored = {
        "inputs": inputs,
        "targets": np.array(targets),
        "seed": np.array(SEED),
        "ig_steps": np.array(IG_STEPS),
        "steps": np.array(STEPS),
        "order": np.array(ORDER),
    }
    stored.update(sanity_references(inputs, targets))
    stored.update(faithfulness_references(inputs, targets))
    np.savez_compressed(REFERENCES, **stored)
    print(f"{REFERENCES.relative_to(ROOT)}: {REFERENCES.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
