"""The map cache: one `.proj.npz` beside each checkpoint (`x.safetensors` -> `x.proj.npz`) holding
the encoder means of its test points and, once computed, their UMAP embedding.

A projection cache is disposable: it can always be rebuilt from its checkpoint. It is tied to the
checkpoint's bytes by sha256 and written atomically (vae_core.fsutil.atomic_write), and a file
that fails any check here is not an error to raise but a cache to ignore: read_cache (the only
reader) turns the problem into one ProjectionCacheWarning per process, and the next build
(vae_core.projection_build: the UMAP job, training) overwrites it.

Keys (np.savez, no pickles; N map points, k latent dims):
    format () int = FORMAT        checkpoint_sha () str      n_neighbors () int >= 1
    index (N,) int, distinct, in [0, n_test)                 min_dist () float >= 0
    labels (N,) int >= -1         means (N, k) float, finite
    umap (N, 2) float, finite     optional: not computed yet
    n_test () int >= N            optional: caches written before it have none
Numpy only (no torch): the app's first paint reads this.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from dataclasses import dataclass

import numpy as np

from .fsutil import atomic_write
from .projection import MAX_POINTS, MIN_DIST, N_NEIGHBORS, KNNProjection

FORMAT = 1
LEGACY_MAX_POINTS = 10_000  # the cap before caches stored n_test: a cache of this many points may be a sample
MAX_BYTES = 1 << 30  # uncompressed size of all arrays; far above a real cache (10k x 512 floats = 20 MB)
REQUIRED = ("format", "checkpoint_sha", "index", "labels", "means", "n_neighbors", "min_dist")


class ProjectionCacheWarning(UserWarning):
    """A projection cache file was ignored (damaged or not a cache); it will be rebuilt."""


class BadCache(Exception):
    """Why a cache file cannot be used (the message is shown to the user, after the file name)."""


def load_arrays(path: str, max_bytes: int = MAX_BYTES) -> dict[str, np.ndarray]:
    """Every array of the .npz, in memory. Raises FileNotFoundError if absent, BadCache otherwise."""
    if not os.path.exists(path):  # also when a folder on the way is missing or is a file
        raise FileNotFoundError(path)
    try:
        with zipfile.ZipFile(path) as z:  # sizes from the zip directory, before anything is inflated
            size = sum(info.file_size for info in z.infolist())
        if size > max_bytes:
            raise BadCache(f"its arrays would take {size:,} bytes (limit {max_bytes:,})")
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except BadCache:
        raise
    except Exception as e:  # noqa: BLE001  (a damaged zip raises BadZipFile, zlib.error, EOFError, ValueError, ...)
        t = type(e)
        kind = t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"
        raise BadCache(f"unreadable ({kind}: {e})") from None


_KIND = {"iu": "integer", "f": "float", "U": "string"}  # numpy dtype.kind codes


def _scalar(a: dict, key: str, kind: str) -> np.ndarray:
    v = a[key]
    if v.shape != () or v.dtype.kind not in kind:
        raise BadCache(f"'{key}' must be a single {_KIND[kind]}, got {v.dtype} of shape {v.shape}")
    return v


def _array(a: dict, key: str, kind: str, ndim: int) -> np.ndarray:
    v = a[key]
    if v.ndim != ndim or v.dtype.kind not in kind:
        raise BadCache(f"'{key}' must be a {ndim}-D {_KIND[kind]} array, got {v.dtype} of shape {v.shape}")
    if kind == "f" and not np.isfinite(v).all():
        raise BadCache(f"'{key}' contains NaN or inf values")
    return v


def check_arrays(a: dict[str, np.ndarray], max_points: int) -> int | None:
    """Raise BadCache naming the first key that breaks the format above. Returns n_test; for a
    cache written before that key, below the cap `max_points` the points were the whole test set."""
    missing = [k for k in REQUIRED if k not in a]
    if missing:
        raise BadCache(f"missing {', '.join(repr(k) for k in missing)}")
    if int(_scalar(a, "format", "iu")) != FORMAT:
        raise BadCache(f"format {int(a['format'])}, this version reads format {FORMAT}")
    _scalar(a, "checkpoint_sha", "U")
    if int(_scalar(a, "n_neighbors", "iu")) < 1:
        raise BadCache("'n_neighbors' must be at least 1")
    min_dist = float(_scalar(a, "min_dist", "f"))
    if not (np.isfinite(min_dist) and min_dist >= 0):
        raise BadCache(f"'min_dist' must be a finite number >= 0, got {min_dist}")
    index, labels = _array(a, "index", "iu", 1), _array(a, "labels", "iu", 1)
    means = _array(a, "means", "f", 2)
    n = len(index)
    if n == 0 or means.shape[1] == 0:
        raise BadCache(f"it holds no points ('index' has {n}, 'means' has shape {means.shape})")
    if len(labels) != n or len(means) != n:
        raise BadCache(f"{n} indices but {len(labels)} labels and {len(means)} means")
    if labels.min() < -1:
        raise BadCache(f"'labels' holds {labels.min()} (classes are >= 0, -1 = no label)")
    if "n_test" in a:
        n_test = int(_scalar(a, "n_test", "iu"))
    else:
        n_test = n if n < max_points else None
    if n_test is not None and n_test < n:
        raise BadCache(f"'n_test' is {n_test} but the cache holds {n} test points")
    if index.min() < 0:
        raise BadCache(f"'index' holds {index.min()}: test-set positions are >= 0")
    if n_test is not None and index.max() >= n_test:
        raise BadCache(f"'index' holds {index.max()}, out of range for a test set of {n_test}")
    # sort + diff, not np.unique: its first call imports numpy modules (~50 ms before the first map)
    s = np.sort(index)
    if (s[1:] == s[:-1]).any():
        raise BadCache("'index' lists a test point twice")
    if "umap" in a:
        emb = _array(a, "umap", "f", 2)
        if emb.shape != (n, 2):
            raise BadCache(f"'umap' has shape {emb.shape}, expected ({n}, 2)")
    return n_test


# --- reading and writing -------------------------------------------------------------------------


def cache_path_for(checkpoint_path: str) -> str:
    return checkpoint_path.removesuffix(".safetensors") + ".proj.npz"


def file_sha(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class ProjectionCache:
    checkpoint_sha: str
    index: np.ndarray  # (N,) test-set indices, in point_order
    labels: np.ndarray  # (N,) int64, -1 when the dataset has no labels
    means: np.ndarray  # (N, k)
    umap: np.ndarray | None  # (N, 2) or None while not computed
    n_neighbors: int = N_NEIGHBORS
    min_dist: float = MIN_DIST
    n_test: int | None = None  # size of the test set the points were drawn from (None: unknown)

    def umap_projection(self) -> KNNProjection:
        if self.umap is None:
            raise ValueError("this projection cache has no UMAP embedding yet")
        return KNNProjection(self.means, self.umap, self.n_neighbors)


def write_cache(checkpoint_path: str, cache: ProjectionCache) -> str:
    """Atomic (vae_core.fsutil.atomic_write): readers see the old file or the new one. Raises
    StorageError (an OSError) naming the file when it cannot be written (read-only folder, full disk)."""
    arrays = {
        "format": np.array(FORMAT),
        "checkpoint_sha": np.array(cache.checkpoint_sha),
        "index": cache.index.astype(np.int64),
        "labels": cache.labels.astype(np.int64),
        "means": cache.means.astype(np.float32),
        "n_neighbors": np.array(cache.n_neighbors),
        "min_dist": np.array(cache.min_dist),
    }
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
    return ProjectionCache(
        str(a["checkpoint_sha"]),
        a["index"],
        a["labels"],
        a["means"],
        a.get("umap"),
        int(a["n_neighbors"]),
        float(a["min_dist"]),
        n_test,
    ), None


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
