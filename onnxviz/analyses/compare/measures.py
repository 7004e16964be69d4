"""What ``compare`` measures and found: the distances, per image and per layer results, and the
verdict against the tolerances with its reasons."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from onnxviz.analyses.compare.pairing import LayerPair, Tolerance
from onnxviz.core.result import Result
from onnxviz.render import pictures as render


@dataclass
class LayerResult:
    pair: LayerPair
    relative_error: np.ndarray  # (images,)
    cosine: np.ndarray  # (images,)
    channels: np.ndarray | None = None  # (images, K): A's strongest channels, projected in both
    channel_cosines: np.ndarray | None = None  # (images, K)
    projection_error: str = ""  # why B could not be projected where A could
    note: str = ""
    failed: dict[str, str] = field(default_factory=dict)  # measure → what was measured against what

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def projection_cosine(self) -> np.ndarray | None:
        """(images,): the smallest cosine over the K projected channels."""
        return None if self.channel_cosines is None else self.channel_cosines.min(axis=1)


@dataclass
class ImageResult:
    image: str
    top_a: int
    top_b: int
    margin_a: float  # A's top-1 minus top-2 probability
    max_dp: float
    occlusion_correlation: float | None = None
    occlusion_max_difference: float | None = None
    occlusion_range_a: float | None = None  # max − min of A's map
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def agree(self) -> bool:
        return self.top_a == self.top_b

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class Comparison(Result):
    """What ``onnxviz compare`` found; ``ok`` is the exit status a CI job needs."""

    model_a: str
    model_b: str
    tolerance: Tolerance
    rule: str
    top: int
    images: list[ImageResult]
    layers: list[LayerResult]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.images) and all(la.ok for la in self.layers)

    @property
    def first_diverging_layer(self) -> str | None:
        return next((la.pair.name for la in self.layers if not la.ok), None)

    @property
    def failures(self) -> list[str]:
        return [f"{i.image}: {why}" for i in self.images for why in i.failed.values()] + [
            f"{la.pair.name}: {why}" for la in self.layers for why in la.failed.values()
        ]

    def verdict(self) -> str:
        agree = sum(i.agree for i in self.images)
        head = (
            f"{agree}/{len(self.images)} images agree on the top-1, "
            f"max |Δp| {max(i.max_dp for i in self.images):.3g}, {len(self.layers)} layers compared"
        )
        where = self.first_diverging_layer  # None when ok
        first = f"first diverging layer {where}; " if where else ""
        state = "PASS" if self.ok else "FAIL"
        return f"{state} ({self.tolerance.precision} tolerance ×{self.tolerance.scale:g}): {first}{head}."

    def messages(self) -> list[str]:
        """What the layer table does not show: notes, images beyond tolerance, why B did not project."""
        return (
            self.notes
            + [f"{i.image}: {why}" for i in self.images for why in i.failed.values()]
            + [
                f"{la.pair.name}: B cannot be projected here: {la.projection_error}"
                for la in self.layers
                if la.projection_error
            ]
        )

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """(layer, worst relative error, worst cosine, worst projection cosine, verdict) per layer."""
        rows = []
        for la in self.layers:
            projection = _cosine_text(la.projection_cosine.min()) if la.projection_cosine is not None else "—"
            projection = "B fails" if la.projection_error else projection
            verdict = "ok" if la.ok else "beyond: " + ", ".join(la.failed)
            rows.append(
                (la.pair.name, f"{la.relative_error.max():.3g}", _cosine_text(la.cosine.min()), projection, verdict)
            )
        return rows

    def figure(self) -> np.ndarray:
        """The per-layer table and the messages, as the terminal shows them."""
        lines = [f"{'layer':<12} {'rel. error':<11} {'cosine':<12} {'projection':<12} verdict"]
        lines += [
            f"{name:<12} {error:<11} {cosine:<12} {projection:<12} {verdict}"
            for name, error, cosine, projection, verdict in self.rows()
        ]
        return render.text_block(lines + self.messages(), self.verdict())

    def summary(self) -> dict:
        return {
            "model_a": self.model_a,
            "model_b": self.model_b,
            "ok": self.ok,
            "verdict": self.verdict(),
            "first_diverging_layer": self.first_diverging_layer,
            "failures": self.failures,
            "tolerance": self.tolerance.summary(),
            "rule": self.rule,
            "top": self.top,
            "images": [
                {
                    "image": i.image,
                    "top1_a": i.top_a,
                    "top1_b": i.top_b,
                    "agree": i.agree,
                    "margin_a": i.margin_a,
                    "max_abs_dp": i.max_dp,
                    "occlusion_correlation": i.occlusion_correlation,
                    "occlusion_max_abs_difference": i.occlusion_max_difference,
                    "occlusion_range_a": i.occlusion_range_a,
                    "ok": i.ok,
                }
                for i in self.images
            ],
            "layers": [_layer_summary(la) for la in self.layers],
            "notes": self.notes,
        }


def _cosine_text(value: float) -> str:
    """A cosine near 1 as 1 − distance, so 1 − 1e-7 and 1 − 1e-4 do not both read 1.000000."""
    distance = 1.0 - float(value)
    if distance == 0:
        return "1"
    return f"1 − {distance:.2g}" if 0 < distance < 1e-3 else f"{value:.4f}"


def _layer_summary(la: LayerResult) -> dict:
    pair = la.pair
    return {
        "layer": pair.name,
        "tensor_a": pair.tensor_a,
        "tensor_b": pair.tensor_b,
        "shape": list(pair.shape),
        "layout": "nhwc_a" if pair.nhwc_a else "nhwc_b" if pair.nhwc_b else "same",
        "relative_error": la.relative_error.tolist(),
        "cosine": la.cosine.tolist(),
        "projection_cosine": _listed(la.projection_cosine),
        "channels": _listed(la.channels),
        "channel_cosines": _listed(la.channel_cosines),
        "ok": la.ok,
        "failed": list(la.failed.values()),
        "note": la.note,
    }


def _listed(values: np.ndarray | None) -> list | None:
    return None if values is None else values.tolist()


# -- distances -------------------------------------------------------------------------------------


def relative_errors(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """‖b − a‖ / ‖a‖ per row; 0 where both rows are zero, inf where only a's is."""
    difference = np.linalg.norm(b - a, axis=1)
    reference = np.linalg.norm(a, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            reference > 0, difference / np.where(reference > 0, reference, 1), np.where(difference > 0, np.inf, 0.0)
        )


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine per row as 1 − ‖â − b̂‖²/2: exactly 1 for equal rows; 1 for two zero rows, 0 for one."""
    norm_a = np.linalg.norm(a, axis=1, keepdims=True)
    norm_b = np.linalg.norm(b, axis=1, keepdims=True)
    unit_a = a / np.where(norm_a > 0, norm_a, 1)
    unit_b = b / np.where(norm_b > 0, norm_b, 1)
    value = 1.0 - 0.5 * np.square(np.linalg.norm(unit_a - unit_b, axis=1))
    both_zero = (norm_a[:, 0] == 0) & (norm_b[:, 0] == 0)
    one_zero = (norm_a[:, 0] == 0) != (norm_b[:, 0] == 0)
    return np.where(both_zero, 1.0, np.where(one_zero, 0.0, value))


# -- verdict ----------------------------------------------------------------------------------------


def judge(images: list[ImageResult], layers: list[LayerResult], limits: Tolerance) -> None:
    """Fill in every result's list of measures beyond tolerance."""
    for image in images:
        if not image.agree and _beyond(image.margin_a, 2 * limits.probability):
            image.failed["top-1"] = (
                f"top-1 {image.top_a} became {image.top_b} (A's margin {image.margin_a:.3g} > 2×{limits.probability:g})"
            )
        if _beyond(image.max_dp, limits.probability):
            image.failed["max |Δp|"] = f"max|Δp| {image.max_dp:.3g} > {limits.probability:g}"
        if image.occlusion_correlation is not None:
            # A map that varies less than the probability tolerance (a saturated class: occlusion
            # changes nothing) has a meaningless correlation; it is judged by max |Δscore| instead.
            if not _beyond(image.occlusion_range_a or 0.0, limits.probability):
                if _beyond(image.occlusion_max_difference or 0.0, limits.probability):
                    image.failed["occlusion"] = (
                        f"occlusion max|Δscore| {image.occlusion_max_difference:.3g} > {limits.probability:g} "
                        "(A's map is flat)"
                    )
            elif _beyond(1.0 - image.occlusion_correlation, limits.occlusion):
                image.failed["occlusion"] = (
                    f"occlusion correlation {image.occlusion_correlation:.4f} < {1 - limits.occlusion:.4f}"
                )
    for la in layers:
        worst_error = float(la.relative_error.max())
        worst_cosine = float(la.cosine.min())
        if _beyond(worst_error, limits.relative_error):
            la.failed["rel. error"] = f"relative error {worst_error:.3g} > {limits.relative_error:g}"
        if _beyond(1.0 - worst_cosine, limits.cosine):
            la.failed["cosine"] = f"cosine {worst_cosine:.6f} < {1 - limits.cosine:.6f}"
        if la.projection_error:
            la.failed["projection"] = f"B cannot be projected here: {la.projection_error}"
        if la.projection_cosine is not None:
            worst_projection = float(la.projection_cosine.min())
            if _beyond(1.0 - worst_projection, limits.projection):
                la.failed["projection"] = f"projection cosine {worst_projection:.4f} < {1 - limits.projection:.4f}"


def _beyond(distance: float, limit: float) -> bool:
    """Beyond tolerance; a NaN (B overflowed, say in fp16) is beyond any."""
    return not distance <= limit
