"""2-D maps of the latent space: the maths. PCA (exact, instant), the latent plane (k <= 2), and
UMAP's kNN transform that places a new z on a fitted UMAP embedding.

The map shows the encoder MEANS mu(x) of test examples (never sampled z: a point must not move
between plots). A new z (a slider position, an uploaded image) is placed on the map by:
  - PCA:  y = (z - center) @ components.T, exact and linear;
  - UMAP: the kNN-weighted mean of its neighbours' embeddings, UMAP's own transform
          initialisation (umap_.init_graph_transform with the weights of smooth_knn_dist at
          local_connectivity 0). No UMAP object or pickle is stored: only means + embedding.

The other jobs of the map, one module each:
  vae_core.umap_subsample     fitting UMAP (fit_umap; a subsample + kNN placement above FIT_POINTS)
  vae_core.projection_cache   the `<ckpt>.proj.npz` file beside a checkpoint: format, read, write
  vae_core.projection_build   computing that file (means, UMAP) and the post-training hook
  vae_core.umap_job           UMAP as a background process, with its lock and command line
                              (`python -m vae_core.projection CKPT` runs it too: __main__ below)
Those modules import this one, never the reverse (tests/test_import_graph.py).
Numpy only: torch is imported by the function that encodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from .model import VAE

MAX_POINTS = 250_000  # test points kept in the cache (UMAP above umap_subsample.FIT_POINTS is subsampled)
N_NEIGHBORS = 15  # UMAP n_neighbors, also k of the kNN transform
MIN_DIST = 0.1
_SMOOTH_K_TOLERANCE = 1e-5  # umap_.SMOOTH_K_TOLERANCE
_MIN_K_DIST_SCALE = 1e-3  # umap_.MIN_K_DIST_SCALE
SAME_POINT = 1e-4  # a z within this distance of a mean is that mean (batched vs single encodes differ ~1e-6)


# --- encoder means ------------------------------------------------------------------------------


def point_order(n: int, cap: int = MAX_POINTS, seed: int = 0) -> np.ndarray:
    """Test indices in a seeded random order, at most `cap`. A smaller display cap is a prefix,
    so raising the cap only adds points."""
    return np.random.default_rng(seed).permutation(n)[:cap]


def check_finite_means(means: np.ndarray) -> None:
    """A model with NaN/inf weights encodes to NaN: say so instead of failing later inside an SVD."""
    bad = ~np.isfinite(means).all(axis=-1)
    if bad.any():
        raise ValueError(
            f"the encoder means contain NaN or inf values: {int(bad.sum()):,} of {len(bad):,} "
            "points; the checkpoint's weights are probably not finite (a diverged training run)"
        )


def encode_means(model: VAE, x: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """Encoder means mu(x), (N, k) float32. ValueError if any is NaN or inf."""
    import torch

    with torch.no_grad():
        means = torch.cat([model.encode(x[i : i + batch_size])[0] for i in range(0, len(x), batch_size)]).numpy()
    check_finite_means(means)
    return means


# --- projections --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PCAProjection:
    center: np.ndarray  # (k,)
    components: np.ndarray  # (2, k) orthonormal rows
    explained: np.ndarray  # (2,) fraction of variance per axis

    def transform(self, z: np.ndarray) -> np.ndarray:
        """(M, k) -> (M, 2): exact linear projection."""
        return (np.asarray(z, np.float64) - self.center) @ self.components.T


def fit_pca(means: np.ndarray) -> PCAProjection:
    """Top-2 principal axes of the means via SVD. Signs fixed (largest loading positive) so the map
    does not flip between runs. With k = 1 the second axis is zero. ValueError on NaN or inf."""
    x = np.asarray(means, np.float64)
    check_finite_means(x)
    center = x.mean(0)
    _, s, vt = np.linalg.svd(x - center, full_matrices=False)
    comps = np.zeros((2, x.shape[1]))
    comps[: min(2, len(vt))] = vt[:2]
    for r in comps:
        if np.abs(r).max() > 0 and r[np.abs(r).argmax()] < 0:
            r *= -1
    var = s**2
    explained = np.zeros(2)
    explained[: min(2, len(var))] = (var / max(var.sum(), 1e-300))[:2]
    return PCAProjection(center, comps, explained)


@dataclass(frozen=True)
class LatentPlane:
    """k <= 2: the map is the latent space itself (k = 1 is drawn on the x axis)."""

    latent_dim: int

    def transform(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, np.float64).reshape(-1, self.latent_dim)
        return np.pad(z, ((0, 0), (0, 2 - self.latent_dim)))


def smooth_knn_sigma(dists: np.ndarray, k: float, n_iter: int = 64) -> np.ndarray:
    """Per-row sigma with sum_{j>=1} exp(-d_j / sigma) = log2(k): umap_.smooth_knn_dist with
    local_connectivity = 0 (so rho = 0), as UMAP.transform calls it. dists (M, n) sorted ascending.
    The floor 1e-3 * mean distance is taken per row (UMAP takes the batch mean)."""
    d = np.asarray(dists, np.float64)[:, 1:]
    target = np.log2(k)
    lo, hi, mid = np.zeros(len(d)), np.full(len(d), np.inf), np.ones(len(d))
    for _ in range(n_iter):  # vectorised version of UMAP's bisection
        psum = np.where(d > 0, np.exp(-d / mid[:, None]), 1.0).sum(1)
        done = np.abs(psum - target) < _SMOOTH_K_TOLERANCE
        big = (psum > target) & ~done
        hi = np.where(big, mid, hi)
        lo = np.where(~big & ~done, mid, lo)
        mid = np.where(done, mid, np.where(np.isinf(hi), mid * 2, (lo + hi) / 2))
    return np.maximum(mid, _MIN_K_DIST_SCALE * np.asarray(dists, np.float64).mean(1))


@dataclass(frozen=True)
class KNNProjection:
    """Place new z on a fixed 2-D embedding (UMAP's transform initialisation)."""

    means: np.ndarray  # (N, k) the points the embedding was fit on
    embedding: np.ndarray  # (N, 2)
    n_neighbors: int = N_NEIGHBORS

    def transform(self, z: np.ndarray) -> np.ndarray:
        """(M, k) -> (M, 2). w_j = exp(-d_j / sigma) over the n nearest means; an exact match
        (d = 0, weight 1) takes that point's own coordinates, as in umap_.init_graph_transform
        (here d < SAME_POINT counts as exact, to absorb float rounding)."""
        z = np.asarray(z, np.float64).reshape(-1, self.means.shape[1])
        n = min(self.n_neighbors, len(self.means))
        d2 = ((z[:, None, :] - self.means[None].astype(np.float64)) ** 2).sum(-1)  # (M, N)
        idx = np.argsort(d2, axis=1)[:, :n]
        d = np.sqrt(np.take_along_axis(d2, idx, 1))  # (M, n) ascending
        sigma = smooth_knn_sigma(d, float(n))
        w = np.where(d > 0, np.exp(-d / sigma[:, None]), 1.0)
        out = (w[..., None] * self.embedding[idx]).sum(1) / w.sum(1, keepdims=True)
        exact = d[:, 0] < SAME_POINT
        out[exact] = self.embedding[idx[exact, 0]]
        return out


if __name__ == "__main__":  # `python -m vae_core.projection CKPT`: the UMAP job under its old name
    import sys

    from .umap_job import main

    sys.exit(main())
