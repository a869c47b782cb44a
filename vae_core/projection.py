"""2-D maps of the latent space: PCA (exact, instant), UMAP (slow, cached on disk), kNN transform.

The map shows the encoder MEANS mu(x) of test examples (never sampled z: a point must not move
between plots). A new z (a slider position, an uploaded image) is placed on the map by:
  - PCA:  y = (z - center) @ components.T, exact and linear;
  - UMAP: the kNN-weighted mean of its neighbours' embeddings, UMAP's own transform
          initialisation (umap_.init_graph_transform with the weights of smooth_knn_dist at
          local_connectivity 0). No UMAP object or pickle is stored: only means + embedding.

The cache is one .npz beside the checkpoint (`x.safetensors` -> `x.proj.npz`, format and checks in
vae_core.projection_cache), written atomically, tied to the checkpoint's bytes by sha256. A cache
that fails to read is ignored with one warning and rebuilt. The UMAP fit runs in a separate process
(vae_core.umap_job; `python -m vae_core.projection CKPT` is the same command), so the app never waits.
Reading a cache and projecting need numpy only: torch is imported by the functions that encode.
"""
from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from .fsutil import atomic_write
from .projection_cache import FORMAT, BadCache, ProjectionCacheWarning, check_arrays, load_arrays

if TYPE_CHECKING:
    import torch

MAX_POINTS = 250_000     # test points kept in the cache (UMAP above umap_subsample.FIT_POINTS is subsampled)
LEGACY_MAX_POINTS = 10_000  # the cap before caches stored n_test: a cache of this many points may be a sample
N_NEIGHBORS = 15         # UMAP n_neighbors, also k of the kNN transform
MIN_DIST = 0.1
_SMOOTH_K_TOLERANCE = 1e-5  # umap_.SMOOTH_K_TOLERANCE
_MIN_K_DIST_SCALE = 1e-3    # umap_.MIN_K_DIST_SCALE
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
        raise ValueError(f"the encoder means contain NaN or inf values: {int(bad.sum()):,} of {len(bad):,} "
                         "points; the checkpoint's weights are probably not finite (a diverged training run)")


def encode_means(model, x: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """Encoder means mu(x), (N, k) float32. ValueError if any is NaN or inf."""
    import torch
    with torch.no_grad():
        means = torch.cat([model.encode(x[i:i + batch_size])[0] for i in range(0, len(x), batch_size)]).numpy()
    check_finite_means(means)
    return means


# --- projections --------------------------------------------------------------------------------

@dataclass(frozen=True)
class PCAProjection:
    center: np.ndarray      # (k,)
    components: np.ndarray  # (2, k) orthonormal rows
    explained: np.ndarray   # (2,) fraction of variance per axis

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
    var = s ** 2
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
    means: np.ndarray      # (N, k) the points the embedding was fit on
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
        d = np.sqrt(np.take_along_axis(d2, idx, 1))                                 # (M, n) ascending
        sigma = smooth_knn_sigma(d, float(n))
        w = np.where(d > 0, np.exp(-d / sigma[:, None]), 1.0)
        out = (w[..., None] * self.embedding[idx]).sum(1) / w.sum(1, keepdims=True)
        exact = d[:, 0] < SAME_POINT
        out[exact] = self.embedding[idx[exact, 0]]
        return out


class _EpochWriter:
    """A file for UMAP's tqdm bar over the epochs: calls epoch(i, total) as it advances."""

    def __init__(self, epoch: Callable[[int, int], None]):
        self.epoch = epoch

    def write(self, s: str) -> None:
        m = re.search(r"(\d+)/(\d+)", s)
        if m:
            self.epoch(int(m[1]), int(m[2]))

    def flush(self) -> None:
        pass


def fit_umap(means: np.ndarray, seed: int = 0, n_neighbors: int = N_NEIGHBORS,
             min_dist: float = MIN_DIST, epoch: Callable[[int, int], None] | None = None,
             n_epochs: int | None = None) -> np.ndarray:
    """(N, k) -> (N, 2) UMAP embedding. Slow on first call in a process (numba JIT).
    epoch(i, total) is called as the layout epochs advance (None: silent). n_epochs: None is
    UMAP's default (500 up to 10,000 points, 200 above)."""
    import umap  # deferred: importing umap alone costs seconds

    from .umap_subsample import nearest
    x = np.asarray(means, np.float32)
    n = min(n_neighbors, len(x) - 1)
    # The exact kNN graph, from numpy: UMAP's own search (pynndescent) is approximate above 4,096
    # points and must be compiled by numba in every fresh process first (bench/map_scale.py times it).
    knn_index, knn_dist = nearest(x, x, n)
    bar = {"disable": False, "file": _EpochWriter(epoch), "mininterval": 0.5} if epoch else None
    reducer = umap.UMAP(n_components=2, n_neighbors=n, min_dist=min_dist, random_state=seed,
                        transform_seed=seed, n_jobs=1, tqdm_kwds=bar, n_epochs=n_epochs,
                        precomputed_knn=(knn_index, knn_dist.astype(np.float32), None))
    with warnings.catch_warnings():  # "random_state forces n_jobs=1": intended, reproducible maps
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]", category=UserWarning)  # no transform()
        return reducer.fit_transform(x).astype(np.float32)


# --- disk cache ---------------------------------------------------------------------------------

def cache_path_for(checkpoint_path: str) -> str:
    base = checkpoint_path[:-len(".safetensors")] if checkpoint_path.endswith(".safetensors") else checkpoint_path
    return base + ".proj.npz"


def file_sha(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class ProjectionCache:
    checkpoint_sha: str
    index: np.ndarray              # (N,) test-set indices, in point_order
    labels: np.ndarray             # (N,) int64, -1 when the dataset has no labels
    means: np.ndarray              # (N, k)
    umap: np.ndarray | None        # (N, 2) or None while not computed
    n_neighbors: int = N_NEIGHBORS
    min_dist: float = MIN_DIST
    n_test: int | None = None      # size of the test set the points were drawn from (None: unknown)

    def umap_projection(self) -> KNNProjection:
        if self.umap is None:
            raise ValueError("this projection cache has no UMAP embedding yet")
        return KNNProjection(self.means, self.umap, self.n_neighbors)


def write_cache(checkpoint_path: str, cache: ProjectionCache) -> str:
    """Atomic (vae_core.fsutil.atomic_write): readers see the old file or the new one. Raises
    StorageError (an OSError) naming the file when it cannot be written (read-only folder, full disk)."""
    arrays = {"format": np.array(FORMAT), "checkpoint_sha": np.array(cache.checkpoint_sha),
              "index": cache.index.astype(np.int64), "labels": cache.labels.astype(np.int64),
              "means": cache.means.astype(np.float32), "n_neighbors": np.array(cache.n_neighbors),
              "min_dist": np.array(cache.min_dist)}
    if cache.umap is not None:
        arrays["umap"] = cache.umap.astype(np.float32)
    if cache.n_test is not None:  # optional key: caches written before it read the same way
        arrays["n_test"] = np.array(cache.n_test)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return atomic_write(cache_path_for(checkpoint_path), write)


def _load(checkpoint_path: str) -> tuple[ProjectionCache | None, str | None]:
    """(cache, None) if usable; (None, problem) if the file is bad; (None, None) if there is none or
    it was made for other weights (a retrained checkpoint: replacing it is routine, not a fault)."""
    path = cache_path_for(checkpoint_path)
    try:
        a = load_arrays(path)
        n_test = check_arrays(a, LEGACY_MAX_POINTS)
    except FileNotFoundError:
        return None, None
    except BadCache as e:
        return None, f"{path}: {e}; the map cache is ignored and will be rebuilt"
    try:
        if str(a["checkpoint_sha"]) != file_sha(checkpoint_path):
            return None, None
    except OSError:  # the checkpoint itself is unreadable: its own loader reports that
        return None, None
    if n_test is None or len(a["index"]) < min(n_test, MAX_POINTS):
        return None, None  # a sample written under an older, lower cap: rebuilt with every point
    return ProjectionCache(str(a["checkpoint_sha"]), a["index"], a["labels"], a["means"], a.get("umap"),
                           int(a["n_neighbors"]), float(a["min_dist"]), n_test), None


_reported: set[str] = set()  # problems already warned about in this process


def read_cache(checkpoint_path: str) -> ProjectionCache | None:
    """The cache for this checkpoint, or None if missing, made for other weights, or bad. The one
    reader of `.proj.npz` files: a bad one gets one ProjectionCacheWarning per process, and the next
    build_cache (the UMAP job, training) overwrites it."""
    cache, problem = _load(checkpoint_path)
    if problem is not None and problem not in _reported:
        _reported.add(problem)
        warnings.warn(problem, ProjectionCacheWarning, stacklevel=2)
    return cache


def cache_problem(checkpoint_path: str) -> str | None:
    """Why the cache file beside this checkpoint cannot be used ("<file>: <problem>; ..."), for a
    page to show; None when there is none, it is fine, or it was made for other weights."""
    return _load(checkpoint_path)[1]


def build_cache(checkpoint_path: str, model, x_test: torch.Tensor, y_test: torch.Tensor | None,
                with_umap: bool, seed: int = 0, progress: Callable[[float, str], None] | None = None) -> ProjectionCache:
    """Means of up to MAX_POINTS test examples (+ UMAP if asked: vae_core.umap_subsample.fit_umap_large,
    subsampled above its FIT_POINTS), written beside the checkpoint. progress(fraction, message) follows
    the UMAP fit. Raises ValueError if the means are not finite, StorageError if the file cannot be written."""
    import torch

    from .umap_subsample import fit_umap_large
    index = point_order(len(x_test), MAX_POINTS, seed)
    means = encode_means(model, x_test[torch.from_numpy(index)])
    labels = y_test[torch.from_numpy(index)].numpy() if y_test is not None else np.full(len(index), -1)
    with_umap = with_umap and means.shape[1] > 2 and len(means) > 2
    emb = fit_umap_large(means, seed, progress=progress) if with_umap else None
    cache = ProjectionCache(file_sha(checkpoint_path), index, labels, means, emb, n_test=len(x_test))
    write_cache(checkpoint_path, cache)
    return cache


if __name__ == "__main__":  # the UMAP job's command line, under its old name
    import sys

    from .umap_job import main
    sys.exit(main())
