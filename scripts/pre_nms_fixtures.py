"""A detector whose boxes and class scores are two outputs, and its references.

``tests/analyses/test_pre_nms_detector.py`` checks ``--boxes boxes --scores scores`` against torch.
The model is RetinaNet-style, seeded: a three-conv backbone to a 16 × 16 grid at 128 × 128, a 1 × 1
head giving per cell and anchor (two anchors) four box deltas decoded as torchvision's ``BoxCoder``
does, and sigmoid class scores; outputs ``boxes`` (1, 512, 4) as x1, y1, x2, y2 in input pixels and
``scores`` (1, 512, 3). Exported by both torch exporters (``pre_nms_ts.onnx``,
``pre_nms_dynamo.onnx``); ``tests/fixtures/detectors/pre_nms.npz`` holds the input ``x``, a box near
the strongest prediction, the prediction it matches (highest IoU) and its best class, the saliency
of that class score (torch autograd), pytorch-grad-cam's GradCAM of it at the backbone's last
activation (``gradcam``, ``gradcam_layer``), and that layer's name in each export.

Called by ``scripts/detector_fixtures.py`` (``--pre-nms`` builds this one alone).
"""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import torch
from detector_fixtures import MODELS, YOLO_SIZE, export, gradcam, iou, matching_tensor, photos, saliency
from torch import nn

CLASSES = 3
SEED = 2026


class PreNmsDetector(nn.Module):
    """Boxes and class scores before NMS, as two tensors (torchvision/RetinaNet style)."""

    def __init__(self, classes: int = CLASSES, stride: int = 8) -> None:
        super().__init__()
        act = nn.SiLU
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1), act(), nn.Conv2d(8, 16, 3, 2, 1), act(), nn.Conv2d(16, 16, 3, 2, 1), act()
        )
        self.classes, self.stride = classes, stride
        self.head = nn.Conv2d(16, 2 * (4 + classes), 1)
        self.register_buffer("sizes", torch.tensor([[16.0, 24.0], [32.0, 20.0]]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.head(self.backbone(x))
        _, _, ny, nx = p.shape
        p = p.view(len(x), 2, 4 + self.classes, ny, nx).permute(0, 3, 4, 1, 2).reshape(len(x), -1, 4 + self.classes)
        gy, gx = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
        centres = (torch.stack((gx, gy), -1).float() + 0.5) * self.stride  # (ny, nx, 2)
        anchor_centres = centres[:, :, None, :].expand(ny, nx, 2, 2).reshape(1, -1, 2)
        anchor_sizes = self.sizes[None, None].expand(ny, nx, 2, 2).reshape(1, -1, 2)
        deltas = p[..., :4]
        xy = anchor_centres + deltas[..., :2] * anchor_sizes
        wh = anchor_sizes * torch.exp(deltas[..., 2:4].clamp(max=math.log(1000 / 16)))
        boxes = torch.cat((xy - wh / 2, xy + wh / 2), -1)
        return boxes, p[..., 4:].sigmoid()


class ScoresOnly(nn.Module):
    """The class scores alone: pytorch-grad-cam calls its target on one output tensor."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[1]


def pre_nms_references() -> dict[str, np.ndarray]:
    torch.manual_seed(SEED)
    net = PreNmsDetector()
    with torch.no_grad():  # He-initialised, small deltas, class scores mostly below 0.5
        for conv in (m for m in net.modules() if isinstance(m, nn.Conv2d)):
            nn.init.kaiming_normal_(conv.weight)
            conv.bias.zero_()
        net.head.weight.view(2, 4 + CLASSES, -1)[:, :4] *= 0.1
        net.head.bias.view(2, -1)[:, 4:] -= 1.0
    net.eval()
    x = photos(YOLO_SIZE)[0][None]
    with torch.no_grad():
        boxes, scores = (t[0].numpy() for t in net(torch.from_numpy(x)))
    box = (boxes[int(scores.max(axis=1).argmax())] + np.array([-3, 2, 4, -1])).astype(np.float32)  # near one
    matched = int(iou(box, boxes).argmax())
    klass = int(scores[matched].argmax())
    layer = net.backbone[-1]
    with torch.no_grad():
        activation = {}
        hook = layer.register_forward_hook(lambda m, i, o: activation.setdefault("a", o))
        net(torch.from_numpy(x))
        hook.remove()
    heat, layer_map = gradcam(ScoresOnly(net), layer, x, lambda out: out[..., matched, klass])
    found = {
        "x": x,
        "box": box,
        "matched": np.array(matched),
        "class": np.array(klass),
        "saliency": saliency(ScoresOnly(net), x, lambda out: out[0, matched, klass]),
        "gradcam": heat,
        "gradcam_layer": layer_map,
    }
    for suffix, dynamo in (("ts", False), ("dynamo", True)):
        path = MODELS / f"pre_nms_{suffix}.onnx"
        export(net, x, path, dynamo, output_names=["boxes", "scores"])
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        onnx_boxes, onnx_scores = session.run(["boxes", "scores"], {"input": x})
        assert np.allclose(onnx_boxes[0], boxes, atol=1e-3) and np.allclose(onnx_scores[0], scores, atol=1e-5)
        found[f"layer_{suffix}"] = np.array(matching_tensor(path, x, activation["a"].numpy()))
    return found


def main() -> None:
    found = pre_nms_references()
    from detector_fixtures import HALF, REFERENCES

    REFERENCES.mkdir(exist_ok=True)
    stored = {key: value.astype(np.float16) if key in HALF else value for key, value in found.items()}
    np.savez_compressed(REFERENCES / "pre_nms.npz", **stored)
    for path in [*sorted(MODELS.glob("pre_nms_*.onnx")), REFERENCES / "pre_nms.npz"]:
        print(f"{path.name}: {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
