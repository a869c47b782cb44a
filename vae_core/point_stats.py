"""Per-point numbers for finding and comparing test points: each map point's ELBO, KL and log p(x)
(cached on disk beside the checkpoint), the least likely points, and nearest neighbours by μ.

Per point, in nats, from one set of K importance samples z_k ~ q(z|x) (vae_core.export_html.point_stats):
    KL     = KL(q(z|x) || p(z)), closed form
    ELBO   = (1/K) sum_k log p(x|z_k) - KL
    log p(x) ~ L_K = log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x)   (Burda et al. 2016)

The cache `<ckpt>.stats.npz` (numpy only, loaded with allow_pickle=False) holds those arrays in the
order of the map's test indices, with K, the seed and the checkpoint's size and mtime: a file that
does not match, or does not read, is ignored and rebuilt.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

import numpy as np

from .fsutil import atomic_write_bytes

if TYPE_CHECKING:
    import torch

    from .model import VAE

STATS = ("elbo", "kl", "log_px")
MAP_IW_SAMPLES = 100  # K per point, as the checkpoint's own test log p(x)


def stats_path_for(ckpt_path: str) -> str:
    return ckpt_path + ".stats.npz"


def _stamp(ckpt_path: str) -> np.ndarray:
    st = os.stat(ckpt_path)
    return np.array([st.st_size, st.st_mtime_ns], np.int64)


def read_point_stats(
    ckpt_path: str, index: np.ndarray, iw_samples: int = MAP_IW_SAMPLES, seed: int = 0
) -> dict[str, np.ndarray] | None:
    """The cached per-point stats for these test indices (N,), or None (no file, another checkpoint
    file, other indices, K or seed, or a file that does not read)."""
    try:
        with np.load(stats_path_for(ckpt_path), allow_pickle=False) as f:
            ok = (
                np.array_equal(f["stamp"], _stamp(ckpt_path))
                and np.array_equal(f["index"], index)
                and int(f["iw_samples"]) == iw_samples
                and int(f["seed"]) == seed
            )
            out = {k: np.asarray(f[k], np.float64) for k in STATS} if ok else None
    except (OSError, ValueError, KeyError, TypeError):  # missing, truncated or foreign: rebuild
        return None
    if out is None or any(v.shape != index.shape for v in out.values()):
        return None
    return out


def map_point_stats(
    ckpt_path: str, model: VAE, x: torch.Tensor, index: np.ndarray, iw_samples: int = MAP_IW_SAMPLES, seed: int = 0
) -> dict[str, np.ndarray]:
    """elbo, kl, log_px (N,) float64 of test points x[index], from the disk cache or computed (seeded,
    in passes of bounded memory) and written there atomically."""
    cached = read_point_stats(ckpt_path, index, iw_samples, seed)
    if cached is not None:
        return cached
    import torch

    from .export_html import point_stats
    from .modes import eval_mode

    with eval_mode(model):
        s = point_stats(model, x[torch.from_numpy(np.asarray(index, np.int64))], iw_samples, seed)
    out = {k: s[k] for k in STATS}
    buf = io.BytesIO()
    np.savez(buf, stamp=_stamp(ckpt_path), index=np.asarray(index, np.int64), iw_samples=iw_samples, seed=seed, **out)
    try:
        atomic_write_bytes(stats_path_for(ckpt_path), buf.getvalue())
    except OSError:  # a read-only folder: the numbers are still right, only not kept
        pass
    return out


def least_likely(log_px: np.ndarray, n: int = 16) -> np.ndarray:
    """Rows of the n lowest log p(x), lowest first (ties: lower row first); NaN rows left out."""
    v = np.asarray(log_px, np.float64)
    rows = np.flatnonzero(np.isfinite(v))
    return rows[np.argsort(v[rows], kind="stable")[:n]]


def nearest_neighbours(means: np.ndarray, row: int, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of means (N, d) nearest to means[row] by Euclidean distance, excluding row itself,
    nearest first (ties: lower row first), and their distances (k,). Fewer if N - 1 < k."""
    m = np.asarray(means, np.float64)
    d = np.sqrt(((m - m[row]) ** 2).sum(1))  # (N,)
    d[row] = np.inf
    k = min(k, len(m) - 1)
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0)
    part = np.argpartition(d, k - 1)[:k]  # the k smallest, unordered (row itself is inf, last)
    part = part[np.lexsort((part, d[part]))]
    return part.astype(np.int64), d[part]
