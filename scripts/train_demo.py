"""Train the small demo CNN bundled with onnxviz and export it to ``models/demo.onnx``.

The demo model exists so that the project can be tried (and tested) without
downloading a large ImageNet network.  Everything is generated offline and
seeded, so re-running this script reproduces the bundled files:

* a procedural dataset of 8 shape/texture classes (64x64 RGB, drawn with OpenCV),
* a 3-block conv->relu->maxpool CNN trained on it on the CPU,
* ``models/demo.onnx`` (opset 17, input ``input`` (N,3,64,64), output ``logits``)
  carrying ``onnxviz.labels`` and ``onnxviz.preset`` metadata,
* sample images in ``models/images/``.

With ``--checkpoints DIR`` it trains a narrower variant instead (the same layers at half the
width, so each file stays small) and saves one ONNX per epoch, ``DIR/epoch1.onnx`` …
``DIR/epochN.onnx``, plus a few held-out images per class in ``DIR/images/``: the input of
``onnxviz evolution`` (Zeiler & Fergus, Fig. 4). The learning rate stays constant there, and it
prints, per conv layer and epoch, how close each feature already is to its final self (the
correlation of its activations on those images), which shows the lower layers settling first.

Usage::

    python scripts/train_demo.py  # 7-8 min wall on a busy, shared 2-core CPU box
    python scripts/train_demo.py --checkpoints models/checkpoints  # the committed checkpoints
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"

IMAGE_SIZE = 64
SAMPLE_SIZE = 128
PHOTO_MAX_SIDE = 256
SUPERSAMPLE = 4  # masks are drawn at 4x and area-downsampled, i.e. anti-aliased
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

Mask = np.ndarray  # float32 (S, S) in [0, 1], 1 = foreground
Renderer = Callable[[np.random.Generator, int], Mask]


# --------------------------------------------------------------------------- drawing


def _rotate(points: np.ndarray, degrees: float, center: np.ndarray) -> np.ndarray:
    """Rotate (K, 2) xy points about ``center`` so shapes get random orientations."""
    t = math.radians(degrees)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return (points - center) @ rot.T + center


def _fill_polys(size: int, polys: list[np.ndarray]) -> Mask:
    """Rasterise polygons (coords in output pixels) at SUPERSAMPLE x, then area-downsample.

    Drawing big and shrinking with INTER_AREA gives smooth edges for every class the same
    way, so edge quality cannot become a shortcut feature for the classifier.
    """
    big = size * SUPERSAMPLE
    canvas = np.zeros((big, big), np.uint8)
    for poly in polys:  # one call per polygon: a single fillPoly would XOR the overlaps
        cv2.fillPoly(canvas, [np.round(poly * SUPERSAMPLE).astype(np.int32)], 255)
    return _downsample(canvas, size)


def _downsample(canvas: np.ndarray, size: int) -> Mask:
    small = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def _center(rng: np.random.Generator, size: int, margin: float) -> np.ndarray:
    """Random centre that keeps a shape of radius ``margin`` (fraction of size) in frame."""
    lo, hi = margin * size, (1.0 - margin) * size
    return rng.uniform(lo, hi, size=2)


def draw_circle(rng: np.random.Generator, size: int) -> Mask:
    r = rng.uniform(0.15, 0.32)
    c = _center(rng, size, r + 0.03)
    big = size * SUPERSAMPLE
    canvas = np.zeros((big, big), np.uint8)
    cx, cy = np.round(c * SUPERSAMPLE).astype(int)
    cv2.circle(canvas, (int(cx), int(cy)), round(r * big), 255, thickness=-1)
    return _downsample(canvas, size)


def draw_square(rng: np.random.Generator, size: int) -> Mask:
    half = rng.uniform(0.13, 0.26)  # half side; bounding radius is half*sqrt(2)
    c = _center(rng, size, half * 1.42 + 0.02)
    h = half * size
    pts = np.array([[-h, -h], [h, -h], [h, h], [-h, h]]) + c
    return _fill_polys(size, [_rotate(pts, rng.uniform(0, 90), c)])


def draw_triangle(rng: np.random.Generator, size: int) -> Mask:
    r = rng.uniform(0.2, 0.36)  # circumradius of an equilateral triangle
    c = _center(rng, size, r + 0.02)
    angles = np.radians([90, 210, 330])
    pts = np.stack([np.cos(angles), -np.sin(angles)], axis=1) * r * size + c
    return _fill_polys(size, [_rotate(pts, rng.uniform(0, 120), c)])


def draw_cross(rng: np.random.Generator, size: int) -> Mask:
    arm = rng.uniform(0.2, 0.34)  # half length of each bar
    thick = rng.uniform(0.05, 0.09)  # half thickness of each bar
    c = _center(rng, size, arm + 0.02)
    a, t = arm * size, thick * size
    bar_h = np.array([[-a, -t], [a, -t], [a, t], [-a, t]]) + c
    bar_v = np.array([[-t, -a], [t, -a], [t, a], [-t, a]]) + c
    angle = rng.uniform(-20, 20)  # stays a "plus", never turns into an "x"
    return _fill_polys(size, [_rotate(bar_h, angle, c), _rotate(bar_v, angle, c)])


def _pattern_coords(rng: np.random.Generator, size: int, max_angle: float) -> np.ndarray:
    """Supersampled pixel-centre coords (2, B, B), slightly rotated, in output pixels."""
    big = size * SUPERSAMPLE
    axis = (np.arange(big, dtype=np.float32) + 0.5) / SUPERSAMPLE
    xs, ys = np.meshgrid(axis, axis)
    t = math.radians(rng.uniform(-max_angle, max_angle))
    c = size / 2
    u = (xs - c) * math.cos(t) + (ys - c) * math.sin(t)
    v = -(xs - c) * math.sin(t) + (ys - c) * math.cos(t)
    return np.stack([u, v])


def _stripes(rng: np.random.Generator, size: int, vertical: bool) -> Mask:
    u, v = _pattern_coords(rng, size, max_angle=12)
    period = rng.uniform(0.1, 0.25) * size
    duty = rng.uniform(0.35, 0.65)
    coord = u if vertical else v
    on = np.mod(coord + rng.uniform(0, period), period) < duty * period
    return _downsample(on.astype(np.uint8) * 255, size)


def draw_horizontal_stripes(rng: np.random.Generator, size: int) -> Mask:
    return _stripes(rng, size, vertical=False)


def draw_vertical_stripes(rng: np.random.Generator, size: int) -> Mask:
    return _stripes(rng, size, vertical=True)


def draw_checkerboard(rng: np.random.Generator, size: int) -> Mask:
    u, v = _pattern_coords(rng, size, max_angle=12)
    cell = rng.uniform(0.08, 0.2) * size
    du, dv = rng.uniform(0, cell, size=2)
    on = (np.floor((u + du) / cell) + np.floor((v + dv) / cell)) % 2 == 0
    return _downsample(on.astype(np.uint8) * 255, size)


def draw_dots(rng: np.random.Generator, size: int) -> Mask:
    """A jittered grid of small discs: many small blobs, unlike the single ``circle``."""
    big = size * SUPERSAMPLE
    canvas = np.zeros((big, big), np.uint8)
    pitch = rng.uniform(0.15, 0.28) * size
    radius = rng.uniform(0.18, 0.3) * pitch
    offset = rng.uniform(0, pitch, size=2)
    jitter = 0.12 * pitch
    for gy in np.arange(offset[1] - pitch, size + pitch, pitch):
        for gx in np.arange(offset[0] - pitch, size + pitch, pitch):
            x, y = np.array([gx, gy]) + rng.uniform(-jitter, jitter, size=2)
            center = (round(x * SUPERSAMPLE), round(y * SUPERSAMPLE))
            cv2.circle(canvas, center, round(radius * SUPERSAMPLE), 255, thickness=-1)
    return _downsample(canvas, size)


CLASSES: dict[str, Renderer] = {
    "circle": draw_circle,
    "square": draw_square,
    "triangle": draw_triangle,
    "cross": draw_cross,
    "horizontal_stripes": draw_horizontal_stripes,
    "vertical_stripes": draw_vertical_stripes,
    "checkerboard": draw_checkerboard,
    "dots": draw_dots,
}
LABELS: list[str] = list(CLASSES)


def _luma(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def random_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Foreground/background RGB pair with enough luminance contrast to be visible."""
    while True:
        fg, bg = rng.integers(0, 256, size=(2, 3)).astype(np.float32)
        if abs(_luma(fg) - _luma(bg)) >= 60:
            return fg, bg


def render(label: int, rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """One RGB uint8 (size, size, 3) image of class ``label``: colourised mask plus noise."""
    mask = CLASSES[LABELS[label]](rng, size)[..., None]
    fg, bg = random_colours(rng)
    img = bg * (1.0 - mask) + fg * mask
    img += rng.normal(0.0, rng.uniform(0.0, 8.0), size=img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def make_dataset(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Balanced set of ``per_class`` images per class, shuffled; (N,64,64,3) uint8, (N,)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(len(LABELS)), per_class))
    images = np.stack([render(int(y), rng) for y in labels])
    return images, labels.astype(np.int64)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """ImageNet-preset preprocessing (RGB, /255, -mean, /std), NHWC uint8 -> NCHW float."""
    x = (images.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


# --------------------------------------------------------------------------- model


class DemoNet(nn.Module):
    """Three conv->relu->maxpool blocks and a 2-layer classifier.

    Named submodules give readable ONNX node names (``/features/conv1/Conv`` ...),
    which is what onnxviz shows when the user picks a layer.
    """

    def __init__(self, n_classes: int, widths: tuple[int, int, int] = (16, 32, 64), hidden: int = 64) -> None:
        super().__init__()
        first, second, third = widths
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(3, first, 3, padding=1)),
                    ("relu1", nn.ReLU()),
                    ("pool1", nn.MaxPool2d(2)),
                    ("conv2", nn.Conv2d(first, second, 3, padding=1)),
                    ("relu2", nn.ReLU()),
                    ("pool2", nn.MaxPool2d(2)),
                    ("conv3", nn.Conv2d(second, third, 3, padding=1)),
                    ("relu3", nn.ReLU()),
                    ("pool3", nn.MaxPool2d(2)),
                ]
            )
        )
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("flatten", nn.Flatten()),
                    ("fc1", nn.Linear(third * 8 * 8, hidden)),
                    ("relu4", nn.ReLU()),
                    ("fc2", nn.Linear(hidden, n_classes)),
                ]
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    batch: int,
    seed: int,
    after_epoch: Callable[[int], None] | None = None,
    one_cycle: bool = True,
) -> None:
    """Adam with a one-cycle LR schedule: converges in a few epochs on this easy task.

    ``after_epoch(epoch)`` (1-based) runs after each epoch: where the checkpoints are saved.
    Without ``one_cycle`` the rate stays at 1e-3, as in a long run seen early: the schedule's final
    annealing would freeze every layer at once and hide which ones settled first."""
    gen = torch.Generator().manual_seed(seed)
    steps = epochs * math.ceil(len(x) / batch)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3 if one_cycle else 1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps) if one_cycle else None
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        t0 = time.perf_counter()
        total, correct, loss_sum = 0, 0, 0.0
        for idx in torch.randperm(len(x), generator=gen).split(batch):
            logits = model(x[idx])
            loss = loss_fn(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
            total += len(idx)
        print(
            f"epoch {epoch + 1}/{epochs}: loss {loss_sum / total:.4f} "
            f"train acc {correct / total:.4f} ({time.perf_counter() - t0:.1f}s)"
        )
        if after_epoch is not None:
            after_epoch(epoch + 1)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 500) -> np.ndarray:
    model.eval()
    return torch.cat([model(chunk) for chunk in x.split(batch)]).numpy()


# --------------------------------------------------------------------------- export


def export_onnx(
    model: nn.Module,
    path: Path,
    doc: str = "onnxviz demo CNN: 8 procedural shape/texture classes, see models/README.md",
) -> onnx.ModelProto:
    """TorchScript export (dynamo=False) keeps the module-path node names and plain ops."""
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
    )
    proto = onnx.load(str(path))
    meta = {"onnxviz.labels": json.dumps(LABELS), "onnxviz.preset": "imagenet"}
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = doc
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return proto


def verify_onnx(path: Path, x: torch.Tensor, torch_logits: np.ndarray) -> np.ndarray:
    """Run the exported file with onnxruntime (CPU) at two batch sizes and compare to torch."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    assert json.loads(meta["onnxviz.labels"]) == LABELS and meta["onnxviz.preset"] == "imagenet"
    ort_logits = np.concatenate([sess.run(["logits"], {"input": chunk.numpy()})[0] for chunk in x.split(333)])
    single = sess.run(["logits"], {"input": x[:1].numpy()})[0]
    max_diff = float(np.abs(ort_logits - torch_logits).max())
    agree = float((ort_logits.argmax(1) == torch_logits.argmax(1)).mean())
    print(f"onnxruntime vs torch: max |logit diff| {max_diff:.2e}, argmax agreement {agree:.4f}")
    assert max_diff < 1e-3 and agree == 1.0
    assert np.allclose(single, ort_logits[:1], atol=1e-4)
    return ort_logits


def print_nodes(proto: onnx.ModelProto) -> None:
    wanted = {"Conv", "Relu", "MaxPool", "Gemm"}
    print("ONNX nodes:")
    for node in proto.graph.node:
        marker = "*" if node.op_type in wanted else " "
        print(f" {marker} {node.op_type:<8} {node.name}")


# --------------------------------------------------------------------------- samples


def _write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok = cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise OSError(f"could not write {path}")
    kib = path.stat().st_size / 1024
    assert kib < 100, f"{path.name} is {kib:.0f} KiB"
    print(f"wrote {path} {rgb.shape[1]}x{rgb.shape[0]} ({kib:.1f} KiB)")


def write_samples(model: nn.Module, images_dir: Path, seed: int) -> None:
    """Generated 128 px class samples plus two CC0 scikit-image photos for the README/demo."""
    from skimage import data  # only needed here; keeps the import cost out of training

    samples = {
        "circle.png": "circle",
        "triangle.png": "triangle",
        "stripes.png": "horizontal_stripes",
        "checkerboard.png": "checkerboard",
    }
    rng = np.random.default_rng(seed)
    rendered: list[tuple[str, str, np.ndarray]] = []
    for name, cls in samples.items():
        img = render(LABELS.index(cls), rng, size=SAMPLE_SIZE)
        _write_png(images_dir / name, img)
        rendered.append((name, cls, img))

    for name, photo in (("chelsea.png", data.chelsea()), ("coffee.png", data.coffee())):
        h, w = photo.shape[:2]
        scale = min(1.0, PHOTO_MAX_SIDE / max(h, w))
        size = (round(w * scale), round(h * scale))
        small = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        _write_png(images_dir / name, small)
        rendered.append((name, "-", small))

    # Sanity check: what the model says about each sample once resized to 64 px.
    for name, cls, img in rendered:
        small = cv2.resize(img, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
        probs = torch.softmax(torch.from_numpy(predict(model, to_tensor(small[None]))), 1)[0]
        top = int(probs.argmax())
        print(f"  {name:<17} true={cls:<19} pred={LABELS[top]} ({float(probs[top]):.3f})")


# --------------------------------------------------------------------------- main


CHECKPOINT_WIDTHS = (8, 16, 32)
CHECKPOINT_HIDDEN = 16
CHECKPOINT_TRAIN_PER_CLASS = 200
CHECKPOINT_EPOCHS = 8
PROBE_PER_CLASS = 4
RECTIFIED = ("relu1", "relu2", "relu3")  # conv1..conv3 as onnxviz names them: the rectified outputs


@torch.no_grad()
def conv_activations(model: DemoNet, x: torch.Tensor) -> dict[str, np.ndarray]:
    """conv1..conv3's rectified maps for ``x``, one (N, C, H, W) array per layer."""
    model.eval()
    maps = {}
    for name, module in model.features.named_children():
        x = module(x)
        if name in RECTIFIED:
            maps[name] = x.numpy().copy()
    return maps


def print_settling(history: list[dict[str, np.ndarray]]) -> None:
    """Per layer and epoch, how much each feature already is its final self: the correlation of a
    channel's activations (every probe image and position) with its activations after the last
    epoch, averaged over channels (dead channels left out). A layer that settles early is near 1
    after the first epochs; in Zeiler & Fergus' Fig. 4 the upper layers get there much later."""
    final = history[-1]
    print("correlation of each channel's activations with the final epoch's, mean over channels:")
    print(f"  {'layer':<8}" + "".join(f"{f'e{e}':>7}" for e in range(1, len(history) + 1)))
    for name in RECTIFIED:
        row = []
        for maps in history:
            pairs = [(maps[name][:, c].ravel(), final[name][:, c].ravel()) for c in range(final[name].shape[1])]
            row.append(np.mean([np.corrcoef(u, v)[0, 1] for u, v in pairs if u.std() > 0 and v.std() > 0]))
        print(f"  conv{name[-1]:<4}" + "".join(f"{v:7.3f}" for v in row))


def write_probe_images(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """The probe images (a few held-out ones per class): the folder ``onnxviz evolution`` scans."""
    counts: dict[int, int] = {}
    for image, label in zip(images, labels, strict=True):
        counts[int(label)] = counts.get(int(label), 0) + 1
        _write_png(folder / f"{LABELS[label]}_{counts[int(label)]}.png", image)


def train_checkpoints(args: argparse.Namespace, folder: Path) -> None:
    """The narrow variant, saved after every epoch, and how early each conv layer's features settled."""
    per_class = args.train_per_class or CHECKPOINT_TRAIN_PER_CLASS
    x_train, y_train = make_dataset(per_class, seed=args.seed + 1)
    model = DemoNet(len(LABELS), CHECKPOINT_WIDTHS, CHECKPOINT_HIDDEN)
    probes, probe_labels = make_dataset(PROBE_PER_CLASS, seed=args.seed + 2_000_003)
    history: list[dict[str, np.ndarray]] = []

    def save(epoch: int) -> None:
        path = folder / f"epoch{epoch}.onnx"
        export_onnx(model, path, doc=f"onnxviz demo CNN (narrow variant) after epoch {epoch}, see models/README.md")
        history.append(conv_activations(model, to_tensor(probes)))
        print(f"wrote {path} ({path.stat().st_size / 1024:.1f} KiB)")

    epochs = args.epochs or CHECKPOINT_EPOCHS
    train(model, to_tensor(x_train), torch.from_numpy(y_train), epochs, args.batch_size, args.seed, save, False)
    x_test, y_test = make_dataset(args.test_per_class, seed=args.seed + 1_000_003)
    accuracy = float((predict(model, to_tensor(x_test)).argmax(1) == y_test).mean())
    print(f"held-out accuracy after epoch {epochs}: {accuracy:.4f} ({len(y_test)} images)")
    print_settling(history)
    write_probe_images(folder / "images", probes, probe_labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=MODELS_DIR, help="default: models/")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--train-per-class",
        type=int,
        default=None,
        help=f"default: 1250 ({CHECKPOINT_TRAIN_PER_CLASS} with --checkpoints)",
    )
    parser.add_argument("--test-per-class", type=int, default=250)
    parser.add_argument("--epochs", type=int, default=None, help=f"default: 6 ({CHECKPOINT_EPOCHS} with --checkpoints)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--checkpoints", type=Path, default=None, help="train the narrow variant and save DIR/epochN.onnx per epoch"
    )
    args = parser.parse_args()

    start = time.perf_counter()
    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_flush_denormal(True)  # tiny weights/grads must not hit slow denormal paths
    if args.checkpoints is not None:
        train_checkpoints(args, args.checkpoints)
        print(f"total time: {time.perf_counter() - start:.1f}s")
        return

    # Different seeds -> the held-out set shares no images with the training set.
    x_train, y_train = make_dataset(args.train_per_class or 1250, seed=args.seed + 1)
    x_test, y_test = make_dataset(args.test_per_class, seed=args.seed + 1_000_003)
    print(f"generated {len(x_train)} train / {len(x_test)} held-out images ({time.perf_counter() - start:.1f}s)")

    model = DemoNet(len(LABELS))
    train(
        model,
        to_tensor(x_train),
        torch.from_numpy(y_train),
        epochs=args.epochs or 6,
        batch=args.batch_size,
        seed=args.seed,
    )

    xt = to_tensor(x_test)
    torch_logits = predict(model, xt)
    pred = torch_logits.argmax(1)
    acc = float((pred == y_test).mean())
    print(f"held-out accuracy: {acc:.4f} ({len(y_test)} images)")
    for i, name in enumerate(LABELS):
        sel = y_test == i
        print(f"  {name:<19} {float((pred[sel] == i).mean()):.3f}")

    onnx_path = args.out_dir / "demo.onnx"
    proto = export_onnx(model, onnx_path)
    verify_onnx(onnx_path, xt, torch_logits)
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1024:.1f} KiB)")
    assert onnx_path.stat().st_size < 2 * 1024 * 1024
    print_nodes(proto)

    write_samples(model, args.out_dir / "images", seed=args.seed + 7)
    print(f"total time: {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
