"""UMAP of a large test set in under a minute: fit on a seeded subsample, place the rest by kNN.

UMAP's cost grows with N (nearest-neighbour descent, then 200-500 epochs over every edge), and a
fresh process also pays numba's compilation. Above FIT_POINTS points we fit UMAP on FIT_POINTS of
them (a seeded random subset) and place every other point exactly as the map places a new z: the
kNN-weighted mean of its neighbours' positions (KNNProjection, UMAP's transform initialisation).
How faithful that is, against a UMAP fit on all points, is measured in bench/map_scale.py
(kNN preservation and trustworthiness), with the numbers in bench/RESULTS.md.

fit_umap is the one call into umap-learn (imported when called). `progress` (vae_core.progress)
reports the phases "map" (UMAP's layout epochs) and "place" (points placed by kNN); the UMAP job
prints them for the app to show. Numpy only otherwise.
"""

from __future__ import annotations

import dataclasses
import re
import time
import warnings

import numpy as np

from .progress import Progress, ProgressFn
from .projection import MIN_DIST, N_NEIGHBORS, SAME_POINT, smooth_knn_sigma

FIT_POINTS = 10_000  # points UMAP is fit on; the rest are placed by kNN
FIT_EPOCHS = 200  # UMAP's own default above 10,000 points: the subsample stands for all of them
CHUNK = 2048  # query rows per distance block: (CHUNK, N) float32 stays a few tens of MB


def umap_default_epochs(n: int) -> int:
    """The layout epochs umap-learn runs on n points when n_epochs is None."""
    return 500 if n <= 10_000 else 200


def nearest(ref: np.ndarray, z: np.ndarray, n: int, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Indices (M, n) of the n nearest rows of ref (N, k) to each z (M, k) and their distances,
    ascending. Candidates come from |z|^2 - 2 z.ref + |ref|^2 in float32 blocks; the distances
    returned are recomputed exactly (float64) so that a z equal to a row has distance 0."""
    ref64 = np.asarray(ref, np.float64)
    ref32 = ref64.astype(np.float32)
    rr = (ref32 * ref32).sum(1)
    z = np.asarray(z, np.float64)
    m = min(n + 8, len(ref))  # a few spare candidates absorb the float32 rounding of the expansion
    out_i = np.empty((len(z), n), np.int64)
    out_d = np.empty((len(z), n))
    for s in range(0, len(z), chunk):
        q = z[s : s + chunk]
        q32 = q.astype(np.float32)
        d2 = rr[None] - 2 * q32 @ ref32.T + (q32 * q32).sum(1, keepdims=True)  # (B, N)
        cand = np.argpartition(d2, m - 1, axis=1)[:, :m] if m < len(ref) else np.tile(np.arange(len(ref)), (len(q), 1))
        exact = np.sqrt(((q[:, None, :] - ref64[cand]) ** 2).sum(-1))  # (B, m)
        order = np.argsort(exact, axis=1, kind="stable")[:, :n]
        out_i[s : s + chunk] = np.take_along_axis(cand, order, 1)
        out_d[s : s + chunk] = np.take_along_axis(exact, order, 1)
    return out_i, out_d


def place(
    means: np.ndarray,
    embedding: np.ndarray,
    z: np.ndarray,
    n_neighbors: int = N_NEIGHBORS,
    progress: ProgressFn | None = None,
    chunk: int = CHUNK,
) -> np.ndarray:
    """(M, k) -> (M, 2): KNNProjection(means, embedding).transform(z), in blocks of `chunk` rows
    (KNNProjection builds the whole (M, N) distance matrix at once). w_j = exp(-d_j / sigma) over the
    n nearest means, sigma from smooth_knn_sigma; d < SAME_POINT takes that mean's own position."""
    n = min(n_neighbors, len(means))
    emb = np.asarray(embedding, np.float64)
    out = np.empty((len(z), 2))
    t0 = time.perf_counter()
    for s in range(0, len(z), chunk):
        idx, d = nearest(means, z[s : s + chunk], n, chunk)
        sigma = smooth_knn_sigma(d, float(n))
        w = np.where(d > 0, np.exp(-d / sigma[:, None]), 1.0)
        block = (w[..., None] * emb[idx]).sum(1) / w.sum(1, keepdims=True)
        exact = d[:, 0] < SAME_POINT
        block[exact] = emb[idx[exact, 0]]
        out[s : s + chunk] = block
        if progress is not None:
            done = min(len(z), s + chunk)
            progress(
                Progress(
                    "place",
                    done,
                    len(z),
                    f"placed {done:,} of {len(z):,} points on the UMAP map",
                    time.perf_counter() - t0,
                )
            )
    return out


def fit_subsample(n: int, n_fit: int = FIT_POINTS, seed: int = 0) -> np.ndarray:
    """Sorted indices of the n_fit points UMAP is fit on (all of them when n <= n_fit)."""
    if n <= n_fit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, n_fit, replace=False))


class _EpochWriter:
    """A file for UMAP's tqdm bar over the layout epochs: reports Progress("map", i, total) as it advances."""

    def __init__(self, progress: ProgressFn):
        self.progress, self.t0 = progress, time.perf_counter()

    def write(self, s: str) -> None:
        m = re.search(r"(\d+)/(\d+)", s)
        if m:
            i, total = int(m[1]), int(m[2])
            self.progress(Progress("map", i, total, f"UMAP epoch {i} of {total}", time.perf_counter() - self.t0))

    def flush(self) -> None:
        pass


def fit_umap(
    means: np.ndarray,
    seed: int = 0,
    n_neighbors: int = N_NEIGHBORS,
    min_dist: float = MIN_DIST,
    progress: ProgressFn | None = None,
    n_epochs: int | None = None,
) -> np.ndarray:
    """(N, k) -> (N, 2) UMAP embedding. Slow on first call in a process (numba JIT).
    progress(Progress("map", epoch, epochs, ...)) as the layout epochs advance (None: silent).
    n_epochs: None is UMAP's default (umap_default_epochs)."""
    import umap  # deferred: importing umap alone costs seconds

    x = np.asarray(means, np.float32)
    n = min(n_neighbors, len(x) - 1)
    # The exact kNN graph, from numpy: UMAP's own search (pynndescent) is approximate above 4,096
    # points and must be compiled by numba in every fresh process first (bench/map_scale.py times it).
    knn_index, knn_dist = nearest(x, x, n)
    bar = {"disable": False, "file": _EpochWriter(progress), "mininterval": 0.5} if progress else None
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=n,
        min_dist=min_dist,
        random_state=seed,
        transform_seed=seed,
        n_jobs=1,
        tqdm_kwds=bar,
        n_epochs=n_epochs,
        precomputed_knn=(knn_index, knn_dist.astype(np.float32), None),
    )
    with warnings.catch_warnings():  # "random_state forces n_jobs=1": intended, reproducible maps
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]", category=UserWarning)  # no transform()
        return reducer.fit_transform(x).astype(np.float32)


def fit_umap_large(
    means: np.ndarray,
    seed: int = 0,
    n_fit: int = FIT_POINTS,
    n_neighbors: int = N_NEIGHBORS,
    min_dist: float = MIN_DIST,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """(N, k) -> (N, 2) float32: plain fit_umap when N <= n_fit; else UMAP on a seeded subsample of
    n_fit points and kNN placement of the others on it. progress: phases "map", then "place"."""
    report = progress or (lambda p: None)
    sub = fit_subsample(len(means), n_fit, seed)
    points = f"{len(sub):,} of {len(means):,} points"
    n_epochs = FIT_EPOCHS if len(sub) < len(means) else None
    report(Progress("map", 0, n_epochs or umap_default_epochs(len(sub)), f"fitting UMAP on {points}"))
    emb_sub = fit_umap(
        means[sub],
        seed,
        n_neighbors,
        min_dist,
        n_epochs=n_epochs,
        progress=lambda p: report(dataclasses.replace(p, message=f"{p.message} ({points})")),
    )
    if len(sub) == len(means):
        return emb_sub
    rest = np.setdiff1d(np.arange(len(means)), sub, assume_unique=True)
    emb = np.empty((len(means), 2), np.float32)
    emb[sub] = emb_sub
    emb[rest] = place(means[sub], emb_sub, means[rest], n_neighbors, progress=progress)
    return emb
