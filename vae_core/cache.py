"""The checkpoint cache in checkpoints/: one file per (model config, train config, data) key.

train_or_load() returns the cached model when the key exists, else trains and stores it. An
exclusive file lock per key (fsutil.file_lock, never unlinked under a waiter) makes two processes
(two browser sessions) asking for the same config train it once: the second waits, then loads
what the first wrote. Leftovers of killed runs (temp files, lock files) are swept by `sweep`.
Listing the cache and finding the shipped default read safetensors headers only (no torch);
training and loading import torch when called.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
from typing import TYPE_CHECKING

from .checkpoints import Checkpoint, CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from .config import ModelConfig, TrainConfig, config_key
from .fsutil import StorageError, file_lock, sweep_stale

if TYPE_CHECKING:
    from collections.abc import Callable

    from .dataset import Dataset
    from .progress import ProgressFn
    from .train import FitResult

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE_DIR_ENV = "VAE_CHECKPOINT_DIR"


def default_cache_dir() -> str:
    """$VAE_CHECKPOINT_DIR, else checkpoints/ beside vae_core. Read at every call, so a test or a
    restarted server sees the current environment (every `cache_dir=None` below means this)."""
    return os.environ.get(CACHE_DIR_ENV) or os.path.join(REPO_ROOT, "checkpoints")


# The shipped default model (reproduce: see README "Shipped checkpoint"). Its file is an ordinary
# cache entry, so training this config again is a cache hit.
DEFAULT_MODEL = ModelConfig(input_shape=(1, 28, 28), latent_dim=16, arch="mlp", hidden=(400,), likelihood="bernoulli")
DEFAULT_TRAIN = TrainConfig(dataset="mnist-5k", epochs=100, batch_size=128, lr=1e-3, seed=0, binarize="dynamic")


def checkpoint_name(model_cfg: ModelConfig, train_cfg: TrainConfig, key: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", os.path.basename(train_cfg.dataset).lower()).strip("-")
    return f"{slug}_{model_cfg.arch}_{train_cfg.objective}_z{model_cfg.latent_dim}_{key}.safetensors"


def cache_path(model_cfg: ModelConfig, train_cfg: TrainConfig, data: Dataset, cache_dir: str | None = None) -> str:
    key = config_key(model_cfg, train_cfg, data.fingerprint)
    return os.path.join(cache_dir or default_cache_dir(), checkpoint_name(model_cfg, train_cfg, key))


@contextlib.contextmanager
def _locked(path: str):
    """Hold the training lock of the checkpoint `path`; StorageError if it cannot be taken."""
    lock = path + ".lock"
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(file_lock(lock))
        except OSError as e:  # e.g. a read-only cache folder
            raise StorageError(e.errno, f"{lock}: cannot take the training lock ({e.strerror or e})") from None
        yield


def sweep(cache_dir: str | None = None) -> list[str]:
    """Remove leftovers of killed runs (stale `.tmp-*` and `*.lock` files nobody holds) from the
    cache folder and its sub-folders (lab/). The removed paths; never raises."""
    folder = cache_dir or default_cache_dir()
    subs = [e.path for e in _scandir(folder) if e.is_dir(follow_symlinks=False)]
    return [p for f in [folder, *subs] for p in sweep_stale(f)]


def _scandir(folder: str) -> list:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError:
        return []


def dataset_info(data: Dataset) -> dict:
    return {
        "name": data.name,
        "fingerprint": data.fingerprint,
        "n_train": len(data.train_pixels),
        "n_test": len(data.test_pixels),
        "input_shape": list(data.input_shape),
    }


def train_or_load(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: Dataset,
    *,
    cache_dir: str | None = None,
    progress: ProgressFn | None = None,
    device: str = "auto",
    final_iw_samples: int = 100,
    on_trained: Callable[[Checkpoint], None] | None = None,
    fit: Callable[..., FitResult] | None = None,
) -> tuple[Checkpoint, bool]:
    """(checkpoint, was_cached). Trains only when no checkpoint exists for this key.

    progress(Progress): fit's reports (vae_core.progress); none on a cache hit.
    on_trained(checkpoint) runs inside the lock after a fresh save (the command line and the Train
    page pass vae_core.projection_build.save_map_cache, so the new model's map opens at once).
    On divergence the last good model is written beside the cache as *.diverged.safetensors
    (never under the cache key) and TrainingDivergedError is re-raised with .path set.
    fit(model_cfg, train_cfg, data, progress=, device=, final_iw_samples=) trains on a miss (default
    vae_core.train.fit; torchrun's rank 0 passes one that first wakes the other ranks; tests pass
    a stand-in).
    """
    from .train import TrainingDivergedError

    if fit is None:
        from .train import fit
    path = cache_path(model_cfg, train_cfg, data, cache_dir)
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise StorageError(e.errno, f"{folder}: cannot create the cache folder ({e.strerror or e})") from None
    sweep_stale(folder)
    if os.path.exists(path):
        return load_checkpoint(path), True
    with _locked(path):
        if os.path.exists(path):  # another process finished it while we waited
            return load_checkpoint(path), True
        try:
            res = fit(model_cfg, train_cfg, data, progress=progress, device=device, final_iw_samples=final_iw_samples)
        except TrainingDivergedError as e:
            bad = path.replace(".safetensors", ".diverged.safetensors")
            save_checkpoint(
                bad, e.model, train_cfg, history=e.history, dataset=dataset_info(data), metrics={"diverged": str(e)}
            )
            e.path = bad
            e.args = (f"{e.args[0]} Last good model kept at {bad}.",)
            raise
        save_checkpoint(
            path, res.model, train_cfg, history=res.history, dataset=dataset_info(data), metrics=res.metrics
        )
        ckpt = Checkpoint(res.model, model_cfg, train_cfg, res.history, dataset_info(data), res.metrics, path)
        if on_trained is not None:
            on_trained(ckpt)
        return ckpt, False


def list_checkpoints(cache_dir: str | None = None) -> list[dict]:
    """Every checkpoint in the cache: path, configs, test ELBO. Unreadable ones carry 'error'
    instead (a reason naming the file); never raises for a bad file."""
    rows = []
    for p in sorted(glob.glob(os.path.join(glob.escape(cache_dir or default_cache_dir()), "*.safetensors"))):
        try:
            meta = read_metadata(p)
        except CheckpointError as e:
            rows.append({"path": p, "error": str(e)})
            continue
        except Exception as e:  # not expected from read_metadata: still one bad row, not a broken list
            rows.append({"path": p, "error": f"{p}: cannot be read ({type(e).__name__}: {e})"})
            continue
        rows.append(
            {
                "path": p,
                "model_config": meta["model_config"],
                "train_config": meta["train_config"],
                "dataset": meta["dataset"],
                "metrics": meta["metrics"],
                "test_elbo": meta["metrics"].get("elbo"),
                "log_likelihood": meta["metrics"].get("log_likelihood"),
            }
        )
    return rows


def default_checkpoint_path(cache_dir: str | None = None) -> str:
    """Cache path of the shipped default (DEFAULT_MODEL, DEFAULT_TRAIN on mnist-5k).

    When it is in the cache, found from the headers alone (no data, no torch): the file whose name
    is the key of the default configs and its own stored data fingerprint. Otherwise the path the
    key of the data on disk gives (this loads mnist-5k, and torch)."""
    folder = cache_dir or default_cache_dir()
    prefix = checkpoint_name(DEFAULT_MODEL, DEFAULT_TRAIN, "*").split("*")[0]  # the name up to its key
    for p in sorted(glob.glob(os.path.join(glob.escape(folder), glob.escape(prefix) + "*.safetensors"))):
        try:
            fp = read_metadata(p)["dataset"].get("fingerprint")
        except CheckpointError:
            continue
        if isinstance(fp, str) and os.path.basename(p) == checkpoint_name(
            DEFAULT_MODEL, DEFAULT_TRAIN, config_key(DEFAULT_MODEL, DEFAULT_TRAIN, fp)
        ):
            return p
    from .data import load_dataset

    data = load_dataset(DEFAULT_TRAIN.dataset, test_fraction=DEFAULT_TRAIN.test_fraction)
    return cache_path(DEFAULT_MODEL, DEFAULT_TRAIN, data, cache_dir)
