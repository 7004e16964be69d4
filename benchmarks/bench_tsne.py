"""t-SNE for ``onnxviz embed``: scikit-learn's ``TSNE`` against openTSNE's, on CNN-code-sized data.

    python benchmarks/bench_tsne.py [--points 5000] [--dims 512] [--rounds 3] [--jobs -1]

The data: ``--points`` codes of ``--dims`` dimensions in 10 clusters (seeded). Each cluster is
a Gaussian on a random 5-dimensional subspace around its own centre plus a little isotropic
noise, so there is local structure inside a cluster for the 5-neighbour trustworthiness to
measure, not only the clusters. As ``embed`` does, the codes are projected to 50 dimensions by
PCA (numpy's SVD) once, and both packages embed the same 50-dimensional array to 2-D with their
default schedules (scikit-learn: 1000 iterations, Barnes-Hut; openTSNE: 250 + 500, its ``auto``
gradient method), perplexity 30, PCA initialisation, ``--jobs`` threads. The runs interleave
(A B A B …) and the table gives medians over the rounds: wall time and
``sklearn.manifold.trustworthiness`` (5 neighbours) of the embedding against the original codes.

Install size: what each package adds to an environment holding onnxviz's dependencies, summed
from the installed distributions' RECORD files (the wheel's files as unpacked), for the package
and every requirement it pulls in that onnxviz does not already depend on.
"""

from __future__ import annotations

import argparse
import statistics
import time
from importlib import metadata

import numpy as np

# What onnxviz already installs, directly or through its dependencies (matplotlib, onnxruntime…).
ALREADY_THERE = {"numpy", "packaging"}
PULLED_IN = {
    "scikit-learn": ["scikit-learn", "scipy", "joblib", "threadpoolctl", "narwhals"],
    "openTSNE": ["openTSNE", "scikit-learn", "scipy", "joblib", "threadpoolctl", "narwhals"],
}


def clustered_codes(points: int, dims: int, clusters: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.arange(points) % clusters
    centres = rng.normal(0.0, 1.0, (clusters, dims))
    bases = rng.normal(0.0, 0.5, (clusters, 5, dims))
    latent = rng.normal(0.0, 1.0, (points, 5))
    noise = rng.normal(0.0, 0.1, (points, dims))
    codes = centres[labels] + np.einsum("nk,nkd->nd", latent, bases[labels]) + noise
    return codes.astype(np.float32)


def pca(codes: np.ndarray, dims: int) -> np.ndarray:
    centred = codes - codes.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:dims].T


def run_sklearn(x: np.ndarray, seed: int, jobs: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    return TSNE(2, perplexity=30.0, init="pca", random_state=seed, n_jobs=jobs).fit_transform(x)


def run_opentsne(x: np.ndarray, seed: int, jobs: int) -> np.ndarray:
    from openTSNE import TSNE

    return np.asarray(TSNE(2, perplexity=30, initialization="pca", random_state=seed, n_jobs=jobs).fit(x))


def installed_mb(names: list[str]) -> float:
    total = 0
    for name in names:
        distribution = metadata.distribution(name)
        total += sum(f.size or 0 for f in distribution.files or [])
    return total / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--dims", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=-1)
    args = parser.parse_args(argv)
    from sklearn.manifold import trustworthiness

    codes = clustered_codes(args.points, args.dims)
    reduced = pca(codes, 50).astype(np.float32)
    runners = {"scikit-learn": run_sklearn, "openTSNE": run_opentsne}
    times: dict[str, list[float]] = {name: [] for name in runners}
    trust: dict[str, list[float]] = {name: [] for name in runners}
    for round_ in range(args.rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            embedding = run(reduced, round_, args.jobs)
            times[name].append(time.perf_counter() - start)
            trust[name].append(trustworthiness(codes, embedding, n_neighbors=5))
            print(f"round {round_ + 1} {name}: {times[name][-1]:.1f} s, trustworthiness {trust[name][-1]:.4f}")
    print(f"\n{args.points} codes x {args.dims} dims -> PCA 50 -> 2-D, {args.rounds} rounds, medians")
    print("| package | version | wall s (median) | trustworthiness (5 nn, median) | adds to the install (MB) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name in runners:
        version = metadata.version(name)
        pulled = installed_mb([p for p in PULLED_IN[name] if p not in ALREADY_THERE])
        print(
            f"| {name} | {version} | {statistics.median(times[name]):.1f} | "
            f"{statistics.median(trust[name]):.4f} | {pulled:.0f} ({', '.join(PULLED_IN[name])}) |"
        )
    ratios = [b / a for a, b in zip(times["scikit-learn"], times["openTSNE"], strict=True)]
    print(f"\nopenTSNE / scikit-learn wall time, median of the per-round ratios: {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
