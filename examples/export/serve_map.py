"""A Grad-CAM map from an explainer that `onnxviz export` wrote, with plain onnxruntime and OpenCV.
python examples/export/serve_map.py explainer.onnx photo.jpg map.png"""

import sys

import cv2
import numpy as np
import onnxruntime as ort

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
image = session.get_inputs()[0]  # (N, 3, H, W), ImageNet preprocessing
picture = cv2.resize(cv2.imread(sys.argv[2])[:, :, ::-1], image.shape[:1:-1], interpolation=cv2.INTER_AREA)
x = (picture.astype(np.float32) / 255 - np.float32([0.485, 0.456, 0.406])) / np.float32([0.229, 0.224, 0.225])
logits, score, heatmap = session.run(None, {image.name: x.transpose(2, 0, 1)[None]})
jet = cv2.applyColorMap(np.uint8(255 * heatmap[0]), cv2.COLORMAP_JET)
cv2.imwrite(sys.argv[3], cv2.addWeighted(np.ascontiguousarray(picture[:, :, ::-1]), 0.5, jet, 0.5, 0))
print(f"class {logits[0].argmax()}, score {score[0]:.4f}: {sys.argv[3]}")
