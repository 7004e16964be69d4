"""Activation maximisation on a trained VGG16: the README's picture and the quality check.

    python scripts/build_vgg16.py                        # models/vgg16_hed.onnx (trained HED weights)
    python benchmarks/maximize_vgg16.py [--steps 128] [--out docs/maximize_vgg16.png]

Quality: for 8 channels of relu4_3, the images ``maximize`` finds (defaults: fft
parameterisation with colour decorrelation, jitter/zoom/rotation) must drive each channel's mean
activation above that channel's mean activation over natural photos (scikit-image's CC0 photos,
224x224); the issue asks for at least 7 of 8. The activations are measured by a plain
onnxruntime session on the model file, not by onnxviz. Picture: 4 channels of each of relu2_2,
relu3_3, relu4_3 and relu5_3 (the rectified outputs of conv2_2 … conv5_3), one row per layer.
Not run by CI: the trained network is not committed (59 MB).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import skimage.data
from onnx import helper

import onnxviz
from onnxviz.data.preprocess import picture_from_tensor
from onnxviz.render import pictures as render
from onnxviz.render.outputs import write_bytes

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "cat", "immunohistochemistry", "hubble_deep_field")
QUALITY_LAYER, QUALITY_CHANNELS = "relu4_3", [0, 1, 2, 3, 4, 5, 6, 7]
PICTURE_LAYERS = ("relu2_2", "relu3_3", "relu4_3", "relu5_3")
PICTURE_CHANNELS = [0, 5, 10, 15]


def channel_means(model_path: Path, tensor: str, batch: np.ndarray) -> np.ndarray:
    """(images, channels) mean activation of ``tensor``, from a plain onnxruntime session."""
    model = onnx.load(model_path)
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})[0].mean(axis=(2, 3))


def natural_batch(model: onnxviz.Model) -> np.ndarray:
    photos = []
    for name in PHOTOS:
        picture = getattr(skimage.data, name)()
        if picture.ndim == 2:
            picture = np.stack([picture] * 3, axis=-1)
        photos.append(model.prepare(np.ascontiguousarray(picture[..., :3]))[0][0])
    return np.stack(photos)


def quality(model: onnxviz.Model, model_path: Path, steps: int) -> int:
    tensor = model.resolve(QUALITY_LAYER).tensor
    natural = channel_means(model_path, tensor, natural_batch(model))[:, QUALITY_CHANNELS].mean(axis=0)
    started = time.perf_counter()
    result = model.maximize(node=QUALITY_LAYER, channels=QUALITY_CHANNELS, steps=steps)
    seconds = time.perf_counter() - started
    found = channel_means(model_path, tensor, result.images)[np.arange(8), QUALITY_CHANNELS]
    wins = int((found > natural).sum())
    for channel, ours, theirs in zip(QUALITY_CHANNELS, found, natural, strict=True):
        print(f"{QUALITY_LAYER} ch {channel}: maximised {ours:.3f}, natural mean {theirs:.3f}")
    print(f"{wins} of 8 channels beat the natural mean ({steps} steps, {seconds:.0f} s for 8 images)")
    return wins


def picture(model: onnxviz.Model, steps: int, out: Path) -> None:
    rows = []
    for layer in PICTURE_LAYERS:
        result = model.maximize(node=layer, channels=PICTURE_CHANNELS, steps=steps)
        tiles = [
            render.titled_tile(
                picture_from_tensor(image, result.layout, result.preprocessing),
                (224, 224),
                [f"{layer} ch {channel}", f"mean {value:.3g}"],
            )
            for image, channel, value in zip(result.images, result.channels, result.curve[-1], strict=True)
        ]
        rows.append(render.grid(tiles, len(tiles)))
        print(f"{layer}: done")
    body = render.column(rows)
    image = render.with_header(body, "VGG16 (HED weights): images that maximise channels of conv2_2 … conv5_3")
    encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])[1]
    write_bytes(out, encoded.tobytes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "vgg16_hed.onnx")
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "maximize_vgg16.jpg")
    parser.add_argument("--skip-picture", action="store_true")
    args = parser.parse_args(argv)
    if not args.model.exists():
        print(f"{args.model} is missing: python scripts/build_vgg16.py", file=sys.stderr)
        return 2
    model = onnxviz.load(args.model, device="cpu", preset="caffe")
    wins = quality(model, args.model, args.steps)
    if not args.skip_picture:
        picture(model, args.steps, args.out)
        print(f"picture: {args.out}")
    return 0 if wins >= 7 else 1


if __name__ == "__main__":
    raise SystemExit(main())
