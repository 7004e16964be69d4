"""How activation maximisation writes the K images it optimises: ``pixel`` or ``fft`` (lucid's).

Gradient ascent straight on pixels finds high-frequency patterns that drive a unit but look like
noise; lucid (Olah et al. 2017) optimises instead the image's Fourier spectrum scaled by
1/frequency, so every frequency moves at the same speed, through a fixed colour decorrelation
(the square root of ImageNet's colour correlation) and a sigmoid into the valid pixel range.
Both parameterisations map parameters to the model's preprocessed input ``x`` (K, C, H, W), and
``backward`` is the exact adjoint of that map's Jacobian: the input gradient the inverse graph
gives becomes the parameters' gradient.

The model reads ``(pixel · scale − mean) / std`` of 0–255 pixels in its channel order (RGB or
BGR); the parameterisations work in RGB pixels in [0, 1] and map to that space last.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxviz.data.preprocess import Preprocessing

PARAMETERISATIONS = ("fft", "pixel")

# lucid's square root of ImageNet's RGB colour correlation; its columns scaled so the largest
# has norm 1 (``_linear_decorrelate_color``).
COLOUR_CORRELATION_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float64)
COLOUR_DECORRELATION = COLOUR_CORRELATION_SQRT / np.max(np.linalg.norm(COLOUR_CORRELATION_SQRT, axis=0))
INITIAL_SPREAD = 0.01  # the initial parameters' standard deviation (lucid's ``sd``)
SPECTRUM_DIVISOR = 4.0  # lucid divides the spectrum's image by 4 before the colour map


@dataclass(frozen=True)
class InputRange:
    """The affine map from RGB pixels in [0, 1] to the model's input, per model channel."""

    gain: np.ndarray  # (C,) ∂x/∂p
    offset: np.ndarray  # (C,) x at p = 0
    order: tuple[int, ...]  # model channel c reads RGB channel order[c]

    @classmethod
    def of(cls, prep: Preprocessing, channels: int) -> InputRange:
        mean = np.resize(np.asarray(prep.mean, np.float64), channels)
        std = np.resize(np.asarray(prep.std, np.float64), channels)
        order = (2, 1, 0) if prep.order == "bgr" and channels == 3 else tuple(range(channels))
        return cls(gain=255.0 * prep.scale / std, offset=-mean / std, order=order)

    def to_input(self, rgb: np.ndarray) -> np.ndarray:
        return rgb[:, self.order] * self.gain[:, None, None] + self.offset[:, None, None]

    def to_rgb(self, x: np.ndarray) -> np.ndarray:
        """The inverse of ``to_input``."""
        rgb = np.empty_like(x)
        rgb[:, self.order] = (x - self.offset[:, None, None]) / self.gain[:, None, None]
        return rgb

    def to_rgb_gradient(self, grad: np.ndarray) -> np.ndarray:
        """The adjoint of ``to_input`` (a channel permutation and a per-channel gain)."""
        scaled = grad * self.gain[:, None, None]
        rgb = np.empty_like(scaled)
        rgb[:, self.order] = scaled
        return rgb

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of x per channel, shaped (1, C, 1, 1): the pixels 0 and 255."""
        ends = np.stack([self.offset, self.offset + self.gain])
        return ends.min(axis=0)[None, :, None, None], ends.max(axis=0)[None, :, None, None]

    def gray(self) -> np.ndarray:
        """x of a mid-gray pixel per channel, (1, C, 1, 1): what padding and clipping fill with."""
        return (self.offset + 0.5 * self.gain)[None, :, None, None]


class PixelImage:
    """RGB pixels in [0, 1], kept there by clipping after each step; the image is their
    preprocessing. Stepping in pixel units, not in the model's (a caffe model's input spans 255),
    gives one learning rate the same meaning for every model."""

    def __init__(self, shape: tuple[int, ...], pixels: InputRange, rng: np.random.Generator) -> None:
        self.pixels = pixels
        self.params = 0.5 + INITIAL_SPREAD * rng.standard_normal(shape)

    def image(self) -> np.ndarray:
        return self.pixels.to_input(self.params)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return self.pixels.to_rgb_gradient(grad)

    def project(self) -> None:
        np.clip(self.params, 0.0, 1.0, out=self.params)

    def set_image(self, image: np.ndarray) -> None:
        """Replace the image (blur, clipping) by the pixels that make it."""
        self.params = self.pixels.to_rgb(image)


class FourierImage:
    """lucid's ``fft_image`` + ``to_valid_rgb``: spectrum · 1/frequency → irfft2 / 4 → colour
    decorrelation (three channels) → sigmoid → pixels in (0, 1) → the model's input."""

    def __init__(self, shape: tuple[int, ...], pixels: InputRange, rng: np.random.Generator, decorrelate: bool) -> None:
        count, channels, height, width = shape
        self.size = (height, width)
        fy = np.fft.fftfreq(height)[:, None]
        fx = np.fft.rfftfreq(width)[None, :]
        frequencies = np.sqrt(fy * fy + fx * fx)
        self.scale = (1.0 / np.maximum(frequencies, 1.0 / max(height, width))) * np.sqrt(height * width)
        bins = (count, channels, *frequencies.shape)
        self.params = INITIAL_SPREAD * rng.standard_normal((2, *bins))
        self.pixels = pixels
        self.decorrelation = COLOUR_DECORRELATION if decorrelate and channels == 3 else None
        self._sigmoid: np.ndarray | None = None

    def _linear(self) -> np.ndarray:
        spectrum = (self.params[0] + 1j * self.params[1]) * self.scale
        return np.fft.irfft2(spectrum, s=self.size) / SPECTRUM_DIVISOR

    def image(self) -> np.ndarray:
        linear = self._linear()
        if self.decorrelation is not None:
            linear = np.einsum("ij,kjhw->kihw", self.decorrelation, linear)
        self._sigmoid = 1.0 / (1.0 + np.exp(-linear))
        return self.pixels.to_input(self._sigmoid)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        """∂objective/∂params from ∂objective/∂x, for the parameters of the last ``image()``."""
        if self._sigmoid is None:
            raise RuntimeError("FourierImage.backward needs image() first")
        rgb = self.pixels.to_rgb_gradient(grad) * self._sigmoid * (1.0 - self._sigmoid)
        if self.decorrelation is not None:
            rgb = np.einsum("ij,kihw->kjhw", self.decorrelation, rgb)
        spectrum = irfft2_adjoint(rgb / SPECTRUM_DIVISOR, self.size[1]) * self.scale
        return np.stack([spectrum.real, spectrum.imag])

    def project(self) -> None:
        """Nothing to keep in range: the sigmoid does."""


def irfft2_adjoint(grad: np.ndarray, width: int) -> np.ndarray:
    """The adjoint of ``numpy.fft.irfft2(·, s=(H, W))`` over complex bins read as (real, imag) pairs.

    irfft2 is an inverse fft along the rows (adjoint: fft / H) after a half-spectrum inverse
    along the columns, whose bins 1 … W/2 − 1 stand for two conjugate bins (weight 2) and whose
    self-conjugate bins (0, and W/2 for even W) lose their imaginary part.
    """
    height = grad.shape[-2]
    columns = np.fft.rfft(grad, axis=-1) / width
    weight = np.full(columns.shape[-1], 2.0)
    weight[0] = 1.0
    if width % 2 == 0:
        weight[-1] = 1.0
    columns = columns * weight
    columns[..., 0] = columns[..., 0].real
    if width % 2 == 0:
        columns[..., -1] = columns[..., -1].real
    return np.fft.fft(columns, axis=-2) / height
