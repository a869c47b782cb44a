"""Per-checkpoint latent data shared by the explorer pages (cached, read-only) and the UMAP job.

ModelView holds the encoder means of the test points the map shows, their labels, the PCA
projection and the per-dim KL / collapse flags. UMAP runs in a child process (see
vae_core.umap_job) tracked by a process-wide registry, so two sessions start it once.
map_view_from_cache builds the same ModelView from the projection cache and the checkpoint's
header alone, so the map can be drawn before torch is imported (this module imports it lazily; the
collapse flags, which need vae_core.latent and so torch, are computed when first asked for).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import streamlit as st

from app.common import dataset_for, test_targets
from app.safe import plain
from vae_core import projection as proj
from vae_core import umap_job
from vae_core.checkpoints import Checkpoint, CheckpointError, read_metadata
from vae_core.constants import ACTIVE_VAR_THRESHOLD, KL_COLLAPSED_NATS
from vae_core.progress import Progress
from vae_core.projection_build import build_cache
from vae_core.projection_cache import cache_path_for, cache_problem, read_cache


@dataclass(frozen=True)
class ModelView:
    index: np.ndarray  # (N,) test-set indices of the map points, in projection.point_order
    labels: np.ndarray  # (N,) int, -1 without labels
    means: np.ndarray  # (N, k) encoder means
    pca: proj.PCAProjection
    kl_per_dim: list  # average KL per dim over the test set, nats
    n_test: int

    @property
    def latent_dim(self) -> int:
        return self.means.shape[1]

    @cached_property
    def collapsed(self) -> list[bool]:
        """Per dim: average KL < KL_COLLAPSED_NATS, or inactive (Var_x mu_d <= ACTIVE_VAR_THRESHOLD over
        the map points), by vae_core.latent.collapsed_dims. Imports torch: ask after the map is drawn."""
        import torch

        from vae_core.latent import collapsed_dims, mean_variance

        return collapsed_dims(
            self.kl_per_dim,
            mean_variance(torch.from_numpy(np.asarray(self.means, np.float32))),
            kl_threshold=KL_COLLAPSED_NATS,
            var_threshold=ACTIVE_VAR_THRESHOLD,
        )

    def slider_labels(self) -> list[str]:
        return [
            f"z{d + 1} · KL {kl:.2f}" + (" · collapsed" if c else "")
            for d, (kl, c) in enumerate(zip(self.kl_per_dim, self.collapsed))
        ]

    def row_of(self, test_index: int) -> int | None:
        hits = np.flatnonzero(self.index == test_index)
        return int(hits[0]) if len(hits) else None


@st.cache_resource(max_entries=8, show_spinner="Encoding the test set…")
def _model_view(path: str, mtime: float, _ckpt: Checkpoint) -> ModelView:
    import torch

    from vae_core.estimators import evaluate

    x = test_targets(_ckpt)
    data = dataset_for(_ckpt)
    cached = read_cache(path)
    if cached is not None:
        index, labels, means = cached.index, cached.labels, cached.means
    else:
        index = proj.point_order(len(x))
        means = proj.encode_means(_ckpt.model, x[torch.from_numpy(index)])
        labels = data.y_test[torch.from_numpy(index)].numpy() if data.y_test is not None else np.full(len(index), -1)
    kl = _ckpt.metrics.get("kl_per_dim")
    if not kl or len(kl) != means.shape[1]:
        kl = evaluate(_ckpt.model, x, iw_samples=0)["kl_per_dim"]
    return ModelView(index, labels, means, proj.fit_pca(means), list(kl), len(x))


def rebuild_bad_cache(ckpt: Checkpoint) -> None:
    """A map cache that cannot be read is disposable: say so once, and write a fresh one (means only;
    UMAP is recomputed when asked for). If that cannot be written either, the page encodes anyway."""
    problem = cache_problem(ckpt.path)
    if problem is None:
        return
    st.warning(f"{plain(problem)}.", icon=":material/warning:")
    try:
        build_cache(ckpt.path, ckpt.model, test_targets(ckpt), dataset_for(ckpt).y_test, with_umap=False)
    except (OSError, ValueError) as e:
        st.caption(f"The map cache could not be rebuilt ({plain(e)}); the map is computed for this session.")


def model_view(ckpt: Checkpoint) -> ModelView:
    return _model_view(ckpt.path, os.path.getmtime(ckpt.path), ckpt)


@st.cache_resource(max_entries=8, show_spinner=False)
def _map_view_from_cache(path: str, mtime: float, cache_mtime: float) -> ModelView | None:
    cached = read_cache(path)  # None when stale: made for other weights
    if cached is None:
        return None
    try:
        meta = read_metadata(path)
    except CheckpointError:
        return None
    kl = meta["metrics"].get("kl_per_dim")
    if not kl or len(kl) != cached.means.shape[1]:
        return None
    n_test = cached.n_test if cached.n_test is not None else meta["dataset"].get("n_test")  # old 10k caches
    if n_test is None:
        return None
    return ModelView(cached.index, cached.labels, cached.means, proj.fit_pca(cached.means), list(kl), int(n_test))


def map_view_from_cache(path: str) -> ModelView | None:
    """model_view's ModelView without torch or the model: the points, labels and means from the
    projection cache, the per-dim KL from the checkpoint's metrics. None when the cache is
    missing or stale or the metrics have no kl_per_dim of the right length (then use model_view)."""
    pp = cache_path_for(path)
    try:
        mtimes = os.path.getmtime(path), os.path.getmtime(pp)
    except OSError:
        return None
    return _map_view_from_cache(path, *mtimes)


# --- UMAP in a child process -------------------------------------------------------------------


@st.cache_resource
def _umap_jobs() -> tuple[dict, threading.Lock]:
    """Process-wide: checkpoint path -> UmapJob, or the OSError that kept it from starting."""
    return {}, threading.Lock()


@st.cache_resource(max_entries=16, show_spinner=False)
def _umap_projection(path: str, mtime: float) -> proj.KNNProjection | None:
    cache = read_cache(path)
    return cache.umap_projection() if cache is not None and cache.umap is not None else None


def umap_projection(path: str) -> proj.KNNProjection | None:
    """The cached UMAP map of this checkpoint, or None while it is not on disk."""
    pp = cache_path_for(path)
    if not os.path.exists(pp):
        return None
    return _umap_projection(path, os.path.getmtime(pp))  # keyed on mtime: a rewrite is re-read


def umap_status(path: str) -> tuple[str, str]:
    """('ready'|'running'|'failed'|'idle', message)."""
    if umap_projection(path) is not None:
        return "ready", "UMAP map ready"
    jobs, lock = _umap_jobs()
    with lock:
        job = jobs.get(path)
    if job is None:
        return "idle", "UMAP not computed yet"
    if isinstance(job, OSError):
        return "failed", f"UMAP could not start: {job}"
    code = job.process.poll()
    if code is None:
        return "running", "computing UMAP in a background process"
    if code == 0:
        if umap_projection(path) is not None:
            return "ready", "UMAP map ready"
        return "running", "another process is computing this UMAP map"
    return "failed", f"UMAP failed (exit code {code}). {job.log_tail()}"


def umap_progress(path: str) -> Progress | None:
    """What the running UMAP job last reported (vae_core.progress), or None (not started, no report yet)."""
    jobs, lock = _umap_jobs()
    with lock:
        job = jobs.get(path)
    return umap_job.last_progress(job.log_tail(2000)) if isinstance(job, umap_job.UmapJob) else None


def start_umap(path: str) -> None:
    """Start the child process once per checkpoint (a failed or finished one can be restarted)."""
    jobs, lock = _umap_jobs()
    with lock:
        job = jobs.get(path)
        if isinstance(job, umap_job.UmapJob) and job.process.poll() is None:
            return
        try:
            jobs[path] = umap_job.start_umap_process(path)
        except OSError as e:  # no log file could be made anywhere, or the interpreter cannot start
            jobs[path] = e
