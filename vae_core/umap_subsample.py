"""UMAP of a large test set in under a minute: fit on a seeded subsample, place the rest by kNN.

UMAP's cost grows with N (nearest-neighbour descent, then 200-500 epochs over every edge), and a
fresh process also pays numba's compilation. Above FIT_POINTS points we fit UMAP on FIT_POINTS of
them (a seeded random subset) and place every other point exactly as the map places a new z: the
kNN-weighted mean of its neighbours' positions (KNNProjection, UMAP's transform initialisation).
How faithful that is, against a UMAP fit on all points, is measured in bench/map_scale.py
(kNN preservation and trustworthiness), with the numbers in bench/RESULTS.md.

Numpy only, except fit_umap (umap-learn). A progress callback `progress(fraction, message)` is
called as the stages advance (the UMAP job prints it for the app to show).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .projection import MIN_DIST, N_NEIGHBORS, SAME_POINT, fit_umap, smooth_knn_sigma

FIT_POINTS = 10_000  # points UMAP is fit on; the rest are placed by kNN
FIT_EPOCHS = 200     # UMAP's own default above 10,000 points: the subsample stands for all of them
CHUNK = 2048         # query rows per distance block: (CHUNK, N) float32 stays a few tens of MB

Progress = Callable[[float, str], None]


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
        q = z[s:s + chunk]
        q32 = q.astype(np.float32)
        d2 = rr[None] - 2 * q32 @ ref32.T + (q32 * q32).sum(1, keepdims=True)    # (B, N)
        cand = np.argpartition(d2, m - 1, axis=1)[:, :m] if m < len(ref) else np.tile(np.arange(len(ref)), (len(q), 1))
        exact = np.sqrt(((q[:, None, :] - ref64[cand]) ** 2).sum(-1))               # (B, m)
        order = np.argsort(exact, axis=1, kind="stable")[:, :n]
        out_i[s:s + chunk] = np.take_along_axis(cand, order, 1)
        out_d[s:s + chunk] = np.take_along_axis(exact, order, 1)
    return out_i, out_d


def place(means: np.ndarray, embedding: np.ndarray, z: np.ndarray, n_neighbors: int = N_NEIGHBORS,
          progress: Progress | None = None, chunk: int = CHUNK) -> np.ndarray:
    """(M, k) -> (M, 2): KNNProjection(means, embedding).transform(z), in blocks of `chunk` rows
    (KNNProjection builds the whole (M, N) distance matrix at once). w_j = exp(-d_j / sigma) over the
    n nearest means, sigma from smooth_knn_sigma; d < SAME_POINT takes that mean's own position."""
    n = min(n_neighbors, len(means))
    emb = np.asarray(embedding, np.float64)
    out = np.empty((len(z), 2))
    for s in range(0, len(z), chunk):
        idx, d = nearest(means, z[s:s + chunk], n, chunk)
        sigma = smooth_knn_sigma(d, float(n))
        w = np.where(d > 0, np.exp(-d / sigma[:, None]), 1.0)
        block = (w[..., None] * emb[idx]).sum(1) / w.sum(1, keepdims=True)
        exact = d[:, 0] < SAME_POINT
        block[exact] = emb[idx[exact, 0]]
        out[s:s + chunk] = block
        if progress is not None:
            progress(min(1.0, (s + chunk) / len(z)), f"placed {min(len(z), s + chunk):,} of {len(z):,} points")
    return out


def fit_subsample(n: int, n_fit: int = FIT_POINTS, seed: int = 0) -> np.ndarray:
    """Sorted indices of the n_fit points UMAP is fit on (all of them when n <= n_fit)."""
    if n <= n_fit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, n_fit, replace=False))


def fit_umap_large(means: np.ndarray, seed: int = 0, n_fit: int = FIT_POINTS, n_neighbors: int = N_NEIGHBORS,
                   min_dist: float = MIN_DIST, progress: Progress | None = None) -> np.ndarray:
    """(N, k) -> (N, 2) float32: plain fit_umap when N <= n_fit; else UMAP on a seeded subsample of
    n_fit points and kNN placement of the others on it. progress(fraction in [0, 1], message)."""
    report = progress or (lambda f, m: None)
    sub = fit_subsample(len(means), n_fit, seed)
    report(0.0, f"fitting UMAP on {len(sub):,} of {len(means):,} points")
    emb_sub = fit_umap(means[sub], seed, n_neighbors, min_dist,
                       epoch=lambda i, total: report(0.85 * i / total, f"UMAP epoch {i} of {total} "
                                                     f"({len(sub):,} of {len(means):,} points)"),
                       n_epochs=FIT_EPOCHS if len(sub) < len(means) else None)
    if len(sub) == len(means):
        report(1.0, "UMAP done")
        return emb_sub
    rest = np.setdiff1d(np.arange(len(means)), sub, assume_unique=True)
    emb = np.empty((len(means), 2), np.float32)
    emb[sub] = emb_sub
    emb[rest] = place(means[sub], emb_sub, means[rest], n_neighbors,
                      progress=lambda f, m: report(0.85 + 0.15 * f, m))
    report(1.0, "UMAP done")
    return emb
