"""The attribution methods as entries of one table: each maps a ``Job`` (the images, their
resolved targets, the options and the cached engine) to the attributions and, for ig, the
convergence delta.

Every gradient method is a set of points per image (the image itself, the path from the baseline,
noisy copies) whose gradients the engine computes in batches; the seed of each point is its own
image's target, fixed on the unperturbed image. The definitions are captum's:

- saliency: ∂score/∂x;  inputxgrad: x ⊙ ∂score/∂x
- ig: (x − x₀) ⊙ Σ_i w_i ∇score(x₀ + α_i(x − x₀)), Gauss–Legendre α_i, w_i mapped to [0, 1];
  delta = Σ attribution − (score(x) − score(x₀))
- smoothgrad / smoothgrad-sq / vargrad: the mean, the mean of squares and the variance (ddof 0) of
  the gradients at x + σ·z_k, σ = noise × (max x − min x)
- deconvnet / guided: the inverse with those rules, seeded at the target
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from onnxviz.analyses.attribute.options import AttributeOptions
from onnxviz.core.loaded import LoadedModel
from onnxviz.core.progress import Progress
from onnxviz.runtime.engines import GradientKey
from onnxviz.runtime.gradient import GRADIENT_RULE, GradientEngine
from onnxviz.targets.base import ResolvedTarget, seeds


@dataclass(frozen=True)
class Job:
    """What a method reads: the prepared images (N, *input), each one's resolved target, the
    options and how many points run at once."""

    model: LoadedModel
    x: np.ndarray
    tensor: str
    resolved: list[ResolvedTarget]
    options: AttributeOptions
    batch_size: int
    baseline: np.ndarray  # ig's x₀ for every image, shaped as ``x``
    values: Callable[[np.ndarray], np.ndarray]  # the target tensor's forward value for a batch
    progress: Progress | None = None  # (points done, points) of the method's sweep

    def engine(self, rule: str = GRADIENT_RULE) -> GradientEngine:
        """The model's cached engine from the input to the target's tensor (one per rule)."""
        return self.model.engines.gradient(GradientKey(self.tensor, (1, *self.x.shape[1:]), rule=rule))

    def gradients(self, points: np.ndarray, owners: np.ndarray, rule: str = GRADIENT_RULE) -> np.ndarray:
        """The signal of each point's own image target at the point (``owners[k]``: the image of
        point k), in batches of ``batch_size`` through one engine."""
        engine = self.engine(rule)
        found = []
        for start in range(0, len(points), self.batch_size):
            chosen = [self.resolved[o] for o in owners[start : start + self.batch_size]]
            batch = points[start : start + self.batch_size]
            _, gradient = engine.value_and_gradient(batch, lambda value, c=chosen: seeds(c, value.shape, value))
            found.append(gradient)
            if self.progress is not None:
                self.progress(start + len(batch), len(points))
        return np.concatenate(found)

    def scores(self, points: np.ndarray, owners: np.ndarray, fixed: bool = False) -> np.ndarray:
        """Each point's score at its own image's target (forward runs only, in batches); ``fixed``:
        the target held as resolved (a detection not matched again), as the gradients take it."""
        found = []
        for start in range(0, len(points), self.batch_size):
            values = self.values(points[start : start + self.batch_size])
            for row, owner in enumerate(owners[start : start + self.batch_size]):
                target = self.resolved[owner]
                scored = target.fixed_scores if fixed else target.scores
                found.append(float(scored(values[row : row + 1])[0]))
        return np.array(found, np.float64)


Attributed = tuple[np.ndarray, list[float] | None]


def saliency(job: Job) -> Attributed:
    return job.gradients(job.x, np.arange(len(job.x))), None


def input_x_gradient(job: Job) -> Attributed:
    return job.x * job.gradients(job.x, np.arange(len(job.x))), None


def rule_signal(rule: str) -> Callable[[Job], Attributed]:
    """Deconvnet or guided backpropagation: the same paired inverse with another rule."""

    def signal(job: Job) -> Attributed:
        return job.gradients(job.x, np.arange(len(job.x)), rule), None

    signal.__doc__ = f"The {rule} signal of the target, seeded at the target as the gradient is."
    return signal


def integrated_gradients(job: Job) -> Attributed:
    """ig from ``job.baseline``, with each image's convergence delta."""
    steps, x, x0 = job.options.steps, job.x, job.baseline
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    alphas, weights = (nodes + 1) / 2, weights / 2  # captum's mapping of [-1, 1] to [0, 1]
    along = alphas.astype(np.float32).reshape(1, steps, *[1] * (x.ndim - 1))
    path = (x0[:, None] + along * (x - x0)[:, None]).reshape(-1, *x.shape[1:])
    gradients = job.gradients(path, np.repeat(np.arange(len(x)), steps)).reshape(len(x), steps, *x.shape[1:])
    summed = np.tensordot(weights, gradients.astype(np.float64), axes=([0], [1]))
    attribution = ((x - x0) * summed).astype(np.float32)
    rows = np.arange(len(x))
    gain = job.scores(x, rows, fixed=True) - job.scores(x0, rows, fixed=True)
    delta = attribution.reshape(len(x), -1).astype(np.float64).sum(axis=1) - gain
    return attribution, [float(d) for d in delta]


def noisy_gradients(job: Job) -> np.ndarray:
    """float64 (N, samples, *input): the gradients at the contract's noisy copies, drawn by one
    generator per call, image by image: x + σ·z, σ = noise × (max x − min x)."""
    rng = np.random.default_rng(job.options.seed)
    samples, shape = job.options.samples, job.x.shape[1:]
    points = []
    for x in job.x:
        sigma = np.float32(job.options.noise * (float(x.max()) - float(x.min())))
        points.append(x[None] + sigma * rng.standard_normal((samples, *shape), dtype=np.float32))
    owners = np.repeat(np.arange(len(job.x)), samples)
    gradients = job.gradients(np.concatenate(points).astype(np.float32), owners)
    return gradients.reshape(len(job.x), samples, *shape).astype(np.float64)


def smoothgrad(job: Job) -> Attributed:
    return noisy_gradients(job).mean(axis=1).astype(np.float32), None


def smoothgrad_squared(job: Job) -> Attributed:
    return (noisy_gradients(job) ** 2).mean(axis=1).astype(np.float32), None


def vargrad(job: Job) -> Attributed:
    return noisy_gradients(job).var(axis=1).astype(np.float32), None


GRADIENT_METHODS: dict[str, Callable[[Job], Attributed]] = {
    "saliency": saliency,
    "inputxgrad": input_x_gradient,
    "ig": integrated_gradients,
    "smoothgrad": smoothgrad,
    "smoothgrad-sq": smoothgrad_squared,
    "vargrad": vargrad,
    "deconvnet": rule_signal("deconvnet"),
    "guided": rule_signal("guided"),
}
