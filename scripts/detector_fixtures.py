#!/usr/bin/env python
"""Build the detector and segmenter fixtures and their references.

``tests/analyses/test_detectors.py`` checks that onnxviz explains a YOLO box and a segmentation
mask as torch autograd and pytorch-grad-cam do. This script builds, seeded:

- ``yolov8n_tiny`` and ``yolo11n_tiny``: ultralytics' own ``yolov8.yaml`` and ``yolo11.yaml`` at a
  reduced width (scale n with width 1/16, 3 classes, 4 DFL bins so the box branch stays small),
  their BatchNorm statistics calibrated on photos, exported by ultralytics' own exporter at
  128 × 128: output ``(1, 4 + 3, 336)`` in ultralytics' layout;
- ``yolov5_like``: YOLOv5's export-mode detection head (``(1, N, 5 + nc)``, score = objectness ×
  class score) on a small seeded backbone, TorchScript exporter;
- ``pre_nms_ts``, ``pre_nms_dynamo``: a RetinaNet-style detector whose boxes and class scores are
  two outputs (``scripts/pre_nms_fixtures.py``), for ``--boxes/--scores``;
- ``seg_deeplab``, ``seg_lraspp``, ``seg_fcn``: torchvision's DeepLabV3-MobileNetV3 and LR-ASPP
  builders on a MobileNetV3-small backbone at width 1/4 (dilated, its first nine blocks) with the
  heads' inner width cut to 8, and an FCN head on the same backbone without dilation, BatchNorm
  calibrated on photos, 4 classes at 64 × 64, each exported by both torch exporters (``_ts``:
  TorchScript, ``_dynamo``, its per-node metadata stripped).

References, one file per model, ``tests/fixtures/detectors/MODEL.npz`` (input-sized maps as
float16): the input ``x`` (a photo, float32 NCHW), the layer read by gradcam (the ONNX tensor whose
value equals the torch module's output; a segmenter's ``layer_ts`` and ``layer_dynamo``), and

- detectors: a box (input pixels), the matched prediction (highest IoU, plain torch) and class, the
  saliency of that class score (torch autograd) and pytorch-grad-cam's GradCAM of a target that
  returns that score; ``saliency_element``: the saliency of one raw element of the output;
- segmenters: the mask of class K's argmax pixels, the saliency of Σ logits over it (autograd) and
  pytorch-grad-cam's GradCAM with its own ``SemanticSegmentationTarget(K, mask)``.

ultralytics, torch, torchvision and grad-cam are dev tools, never onnxviz dependencies; run it from
a venv that has them (ultralytics only in such a venv)::

    python -m venv /tmp/yolovenv
    /tmp/yolovenv/bin/pip install torch==2.14.1 torchvision==0.29.1 grad-cam ultralytics onnx onnxruntime \
        onnxscript onnxslim scikit-image
    /tmp/yolovenv/bin/python scripts/detector_fixtures.py            # the fixtures
    /tmp/yolovenv/bin/python scripts/detector_fixtures.py --bench    # models/yolov8n_bench.onnx at 640
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import torch
import torchvision
import yaml
from pytorch_grad_cam import GradCAM, ScoreCAM
from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget
from skimage import data
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "fixtures" / "models"
REFERENCES = ROOT / "tests" / "fixtures" / "detectors"  # one MODEL.npz per model
HALF = ("saliency", "saliency_element", "gradcam", "scorecam")  # input-sized maps, stored as float16 to stay small
MAX_BYTES = 300 * 1024
YOLO_SIZE = 128
SEG_SIZE = 64
SEG_CLASSES = 4
SEED = 2026


def photos(size: int) -> list[np.ndarray]:
    """skimage's CC0 photos as float32 RGB in [0, 1], (3, size, size): calibration and inputs."""
    pictures = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    return [
        cv2.resize(p, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32).transpose(2, 0, 1) / 255
        for p in pictures
    ]


def calibrate(model: nn.Module, size: int, call: Callable[[torch.Tensor], object]) -> None:
    """BatchNorm running statistics from the photos and their flips (cumulative averages), so a
    seeded network's activations keep a sensible scale; then eval mode."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    batch = torch.from_numpy(np.stack(photos(size)))
    model.train()
    with torch.no_grad():
        for images in (batch, batch.flip(3), batch.flip(2)):
            call(images)
    model.eval()


def matching_tensor(path: Path, x: np.ndarray, expected: np.ndarray) -> str:
    """The last ONNX tensor (file order) whose value on ``x`` equals ``expected``: the layer's name
    as each exporter wrote it."""
    model = onnx.load(str(path))
    inferred = onnx.shape_inference.infer_shapes(model)
    known = {v.name for v in model.graph.output}
    for info in inferred.graph.value_info:
        if info.name not in known and info.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
            model.graph.output.append(info)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(None, {session.get_inputs()[0].name: x})
    produced = [out for node in model.graph.node for out in node.output]
    found = [
        n
        for n, v in zip(names, values, strict=True)
        if v.shape == expected.shape and np.abs(v - expected).max() <= 1e-4 * (np.abs(expected).max() + 1e-12)
    ]
    found.sort(key=lambda n: produced.index(n) if n in produced else -1)
    if not found:
        raise SystemExit(f"no tensor of {path.name} equals the torch layer's output")
    return found[-1]


def gradcam(model: nn.Module, layer: nn.Module, x: np.ndarray, target: Callable) -> tuple[np.ndarray, np.ndarray]:
    """pytorch-grad-cam's GradCAM output and its per-layer map (ReLU(M) at the layer)."""
    with GradCAM(model=model, target_layers=[layer]) as cam:
        heat = cam(input_tensor=torch.from_numpy(x), targets=[target])
        activations = cam.activations_and_grads.activations[0].numpy()
        gradients = cam.activations_and_grads.gradients[0].numpy()
    weights = gradients.mean(axis=(2, 3), keepdims=True)
    layer_map = np.maximum((weights * activations).sum(axis=1), 0)
    return heat.astype(np.float32), layer_map.astype(np.float32)


def saliency(model: nn.Module, x: np.ndarray, score: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
    """∂score/∂x by torch autograd."""
    tensor = torch.from_numpy(x).requires_grad_(True)
    score(model(tensor)).backward()
    return tensor.grad.numpy().astype(np.float32)


# ---------------------------------------------------------------- detectors


class YoloOutput(nn.Module):
    """The exported graph's one output, (1, 4 + nc, N), from an ultralytics model in eval mode."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        return y[0] if isinstance(y, (tuple, list)) else y


def yolo(
    config: str, size: int, folder: Path, width: float = 1 / 16, classes: int = 3, reg_max: int = 4, widest: int = 128
):
    """An ultralytics YOLO from its own yaml at a reduced width, BatchNorm calibrated, exported by
    ultralytics' exporter: (the YOLO object, the exported .onnx)."""
    from ultralytics import YOLO

    package = Path(__import__("ultralytics").__file__).parent / "cfg" / "models"
    cfg = yaml.safe_load((package / config).read_text())
    cfg["scales"] = {"n": [cfg["scales"]["n"][0], width, widest]}
    cfg["nc"], cfg["reg_max"] = classes, reg_max
    name = Path(config).stem + "n.yaml"
    (folder / name).write_text(yaml.safe_dump(cfg))
    torch.manual_seed(SEED)
    model = YOLO(str(folder / name))
    net = model.model
    head = net.model[-1]
    calibrate(net, size, net)
    with torch.no_grad():  # class biases so that a few seeded predictions pass the 0.25 threshold
        for branch in head.cv3:
            branch[-1].bias.fill_(-3.0)
    exported = Path(model.export(format="onnx", imgsz=size, simplify=True, verbose=False))
    return model, exported.rename(folder / exported.name)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one x1, y1, x2, y2 box with every row of ``boxes``."""
    x1, y1 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x2, y2 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(box) + area(boxes) - inter)


def ultralytics_predictions(output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(1, 4 + nc, N) → boxes (N, 4) x1, y1, x2, y2 and class scores (N, nc)."""
    cx, cy, w, h = output[0, :4]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1), output[0, 4:].T


def yolov5_predictions(output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(1, N, 5 + nc) → boxes and objectness × class scores."""
    cx, cy, w, h = output[0, :, :4].T
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1), output[0, :, 4:5] * output[0, :, 5:]


def box_references(net: nn.Module, path: Path, layer: nn.Module, yolov5: bool) -> dict[str, np.ndarray]:
    """A box near the strongest prediction, the prediction it matches (plain torch), and the
    saliency (autograd) and GradCAM (pytorch-grad-cam) of that prediction's class score."""
    x = photos(YOLO_SIZE)[0][None]
    with torch.no_grad():
        output = net(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_output = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert np.allclose(output, onnx_output, rtol=1e-4, atol=1e-3), "the export differs from the torch model"
    boxes, scores = (yolov5_predictions if yolov5 else ultralytics_predictions)(output)
    box = (boxes[int(scores.max(axis=1).argmax())] + np.array([-3, 2, 4, -1])).astype(np.float32)  # near one
    matched = int(iou(box, boxes).argmax())
    klass = int(scores[matched].argmax())
    with torch.no_grad():
        activation = {}
        hook = layer.register_forward_hook(lambda m, i, o: activation.setdefault("a", o))
        net(torch.from_numpy(x))
        hook.remove()
    if yolov5:
        score = lambda out: out[..., matched, 4] * out[..., matched, 5 + klass]  # noqa: E731
        element = (0, matched, 1)
    else:
        score = lambda out: out[..., 4 + klass, matched]  # noqa: E731
        element = (0, 1, matched)  # a raw box coordinate (cy) of the matched prediction
    heat, layer_map = gradcam(net, layer, x, score)
    rematch = BoxScoreTarget(boxes[matched], klass, yolov5)
    with ScoreCAM(model=net, target_layers=[layer]) as cam:
        cam.batch_size = 8
        scorecam = cam(input_tensor=torch.from_numpy(x), targets=[rematch]).astype(np.float32)
    return {
        "scorecam": scorecam,
        "x": x,
        "box": box,
        "matched": np.array(matched),
        "class": np.array(klass),
        "layer": np.array(matching_tensor(path, x, activation["a"].numpy())),
        "saliency": saliency(net, x, lambda out: score(out).sum()),
        "gradcam": heat,
        "gradcam_layer": layer_map,
        "element": np.array(element),
        "saliency_element": saliency(net, x, lambda out: out[element]),
    }


class BoxScoreTarget:
    """pytorch-grad-cam's ``FasterRCNNBoxScoreTarget`` for a YOLO output (one image's, no batch
    axis): the prediction with the highest IoU with ``box`` counts when that IoU is ≥ 0.5 and its
    best class is ``klass``, else 0."""

    def __init__(self, box: np.ndarray, klass: int, yolov5: bool) -> None:
        self.box, self.klass, self.yolov5 = torch.as_tensor(box, dtype=torch.float32), klass, yolov5

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        rows = output if self.yolov5 else output.T
        cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)
        scores = rows[:, 4:5] * rows[:, 5:] if self.yolov5 else rows[:, 4:]
        overlap = torchvision.ops.box_iou(self.box[None], boxes)[0]
        best = int(overlap.argmax())
        if overlap[best] >= 0.5 and int(scores[best].argmax()) == self.klass:
            return scores[best, self.klass]
        return output.sum() * 0


def detector_references(name: str, config: str, layer_index: int, folder: Path) -> dict[str, np.ndarray]:
    model, exported = yolo(config, YOLO_SIZE, folder)
    path = MODELS / f"{name}.onnx"
    exported_model = onnx.load(str(exported))
    dated = [p for p in exported_model.metadata_props if p.key == "date"]
    for prop in dated:  # the export's date: the only byte that differs between two builds
        exported_model.metadata_props.remove(prop)
    onnx.save(exported_model, str(path))
    return box_references(YoloOutput(model.model).eval(), path, model.model.model[layer_index], yolov5=False)


class YoloV5Like(nn.Module):
    """YOLOv5's detection head as its own ``export.py`` writes it, on a three-conv backbone: per
    anchor and cell, sigmoid outputs decoded to cx, cy (``(2σ − 0.5 + grid) · stride``) and w, h
    (``(2σ)² · anchor``), objectness and class scores: (1, 3·16·16, 5 + 3) at 128 × 128."""

    def __init__(self, classes: int = 3, stride: int = 8) -> None:
        super().__init__()
        act = nn.SiLU
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1), act(), nn.Conv2d(8, 16, 3, 2, 1), act(), nn.Conv2d(16, 16, 3, 2, 1), act()
        )
        self.outputs, self.stride = 5 + classes, stride
        self.head = nn.Conv2d(16, 3 * self.outputs, 1)
        self.register_buffer("anchors", torch.tensor([[10.0, 13.0], [16.0, 30.0], [33.0, 23.0]]).view(1, 3, 1, 1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.head(self.backbone(x))
        _, _, ny, nx = p.shape
        y = p.view(-1, 3, self.outputs, ny, nx).permute(0, 1, 3, 4, 2).sigmoid()
        gy, gx = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
        grid = torch.stack((gx, gy), 2).view(1, 1, ny, nx, 2).float()
        xy = (y[..., :2] * 2 - 0.5 + grid) * self.stride
        wh = (y[..., 2:4] * 2) ** 2 * self.anchors
        return torch.cat((xy, wh, y[..., 4:]), -1).view(len(x), -1, self.outputs)


def yolov5_references() -> dict[str, np.ndarray]:
    torch.manual_seed(SEED)
    net = YoloV5Like()
    with torch.no_grad():  # He-initialised so the picture, not the biases, decides the outputs
        for conv in (m for m in net.modules() if isinstance(m, nn.Conv2d)):
            nn.init.kaiming_normal_(conv.weight)
            conv.bias.zero_()
        net.head.bias.view(3, -1)[:, 4:] -= 1.0  # objectness and classes below 0.5 for most cells
    net.eval()
    path = MODELS / "yolov5_like.onnx"
    x = photos(YOLO_SIZE)[0][None]
    torch.onnx.export(net, (torch.from_numpy(x),), str(path), input_names=["images"], output_names=["output"],
                      dynamo=False, opset_version=17)  # fmt: skip
    return box_references(net, path, net.backbone[-1], yolov5=True)


# ---------------------------------------------------------------- segmenters


class SegmentationOutput(nn.Module):
    """torchvision's segmentation models return {"out": ...}: the logits (1, C, H, W)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def segmenters() -> dict[str, tuple[nn.Module, Callable[[nn.Module], nn.Module]]]:
    """The three segmenters, width-reduced, and where each one's gradcam reads (its head's input)."""
    from torchvision.models import mobilenet_v3_small
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.segmentation import deeplabv3, lraspp
    from torchvision.models.segmentation.fcn import FCN, FCNHead

    torch.manual_seed(SEED)
    backbone = mobilenet_v3_small(width_mult=0.25, dilated=True, reduced_tail=True)
    backbone.features = backbone.features[:10]  # the first nine blocks: small enough to commit
    deeplab = deeplabv3._deeplabv3_mobilenetv3(backbone, SEG_CLASSES, aux=False)
    inner = 8
    deeplab.classifier = nn.Sequential(
        deeplabv3.ASPP(deeplab.classifier[0].convs[0][0].in_channels, [12, 24, 36], out_channels=inner),
        nn.Conv2d(inner, inner, 3, padding=1, bias=False),
        nn.BatchNorm2d(inner),
        nn.ReLU(),
        nn.Conv2d(inner, SEG_CLASSES, 1),
    )
    backbone = mobilenet_v3_small(width_mult=0.25, dilated=True, reduced_tail=True)
    backbone.features = backbone.features[:10]
    head = lraspp._lraspp_mobilenetv3(backbone, SEG_CLASSES)
    low, high = head.classifier.low_classifier.in_channels, head.classifier.cbr[0].in_channels
    head.classifier = lraspp.LRASPPHead(low, high, SEG_CLASSES, inner)
    small = mobilenet_v3_small(width_mult=0.25, reduced_tail=True).features[:10]
    fcn = FCN(IntermediateLayerGetter(small, {"9": "out"}), FCNHead(small[9].out_channels, SEG_CLASSES))
    return {
        "seg_deeplab": (deeplab, lambda m: list(m.backbone.values())[-1]),
        "seg_lraspp": (head, lambda m: list(m.backbone.values())[-1]),
        "seg_fcn": (fcn, lambda m: list(m.backbone.values())[-1]),
    }


def export(net: nn.Module, x: np.ndarray, path: Path, dynamo: bool, output_names: Sequence[str] = ("out",)) -> None:
    torch.onnx.export(
        net,
        (torch.from_numpy(x),),
        str(path),
        input_names=["input"],
        output_names=list(output_names),
        dynamo=dynamo,
        opset_version=18 if dynamo else 17,
        **({"external_data": False} if dynamo else {}),
    )
    model = onnx.load(str(path))
    for node in model.graph.node:  # the dynamo exporter's per-node stack traces: most of the file's bytes
        del node.metadata_props[:]
        node.doc_string = ""
    onnx.save(model, str(path))


def segmenter_references(name: str, model: nn.Module, layer_of) -> dict[str, np.ndarray]:
    calibrate(model, SEG_SIZE, model)
    net = SegmentationOutput(model).eval()
    x = photos(SEG_SIZE)[1][None]
    with torch.no_grad():
        logits = net(torch.from_numpy(x))[0].numpy()
    predicted = logits.argmax(axis=0)
    counts = np.bincount(predicted.ravel(), minlength=SEG_CLASSES)
    klass = int(counts.argmax())  # the class most pixels take: a mask with something in it
    mask = (predicted == klass).astype(np.float32)
    layer = layer_of(model)
    with torch.no_grad():
        activation = {}
        hook = layer.register_forward_hook(lambda m, i, o: activation.setdefault("a", o))
        net(torch.from_numpy(x))
        hook.remove()
    heat, layer_map = gradcam(net, layer, x, SemanticSegmentationTarget(klass, mask))
    score = lambda out: (out[0, klass] * torch.from_numpy(mask)).sum()  # noqa: E731
    element = (0, klass, SEG_SIZE // 2, SEG_SIZE // 3)
    common = {
        "x": x,
        "class": np.array(klass),
        "mask": mask,
        "saliency": saliency(net, x, score),
        "gradcam": heat,
        "gradcam_layer": layer_map,
        "element": np.array(element),
        "saliency_element": saliency(net, x, lambda out: out[element]),
    }
    for suffix, dynamo in (("ts", False), ("dynamo", True)):
        path = MODELS / f"{name}_{suffix}.onnx"
        export(net, x, path, dynamo)
        out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0][0]
        assert np.allclose(out, logits, atol=1e-4), f"{path.name} differs from the torch model"
        common[f"layer_{suffix}"] = np.array(matching_tensor(path, x, activation["a"].numpy()))
    return common


def bench_model(folder: Path) -> None:
    """A YOLOv8n-sized detector at 640 (full width, 80 classes), seeded, for the benchmark."""
    _, exported = yolo("v8/yolov8.yaml", 640, folder, width=0.25, classes=80, reg_max=16, widest=1024)
    target = ROOT / "models" / "yolov8n_bench.onnx"
    shutil.copy(exported, target)
    print(f"wrote {target} ({target.stat().st_size // 1024} KB)")


def main() -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", action="store_true", help="build models/yolov8n_bench.onnx at 640 (only)")
    parser.add_argument("--pre-nms", action="store_true", help="build the boxes + scores detector (only)")
    args = parser.parse_args()
    import pre_nms_fixtures  # its builder reads this module's helpers

    if args.pre_nms:
        pre_nms_fixtures.main()
        return
    if args.bench:
        with tempfile.TemporaryDirectory() as folder:
            os.chdir(folder)
            bench_model(Path(folder))
        return
    references: dict[str, dict[str, np.ndarray]] = {}
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)  # ultralytics' exporter writes beside the working directory
        for name, config, layer in (("yolov8n_tiny", "v8/yolov8.yaml", 15), ("yolo11n_tiny", "11/yolo11.yaml", 16)):
            references[name] = detector_references(name, config, layer, Path(folder))
        references["yolov5_like"] = yolov5_references()
        for name, (model, layer_of) in segmenters().items():
            references[name] = segmenter_references(name, model, layer_of)
    pre_nms_fixtures.main()
    REFERENCES.mkdir(exist_ok=True)
    for name, found in references.items():
        stored = {key: value.astype(np.float16) if key in HALF else value for key, value in found.items()}
        np.savez_compressed(REFERENCES / f"{name}.npz", **stored)
    written = sorted(MODELS.glob("yolo*.onnx")) + sorted(MODELS.glob("seg_*.onnx")) + sorted(REFERENCES.glob("*.npz"))
    for path in written:
        size = path.stat().st_size
        print(f"{path.name}: {size // 1024} KB")
        assert size <= MAX_BYTES, f"{path.name} is over {MAX_BYTES // 1024} KB"


if __name__ == "__main__":
    main()
