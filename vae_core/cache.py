"""The checkpoint cache in checkpoints/: one file per (model config, train config, data) key.

train_or_load() returns the cached model when the key exists, else trains and stores it. An
exclusive file lock per key makes two processes (two browser sessions) asking for the same
config train it once: the second waits, then loads what the first wrote.
Listing the cache and finding the shipped default read safetensors headers only (no torch);
training and loading import torch when called.
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import re
from typing import TYPE_CHECKING

from .checkpoints import Checkpoint, CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from .config import ModelConfig, TrainConfig, config_key

if TYPE_CHECKING:
    from .data import Dataset

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CACHE_DIR = os.environ.get("VAE_CHECKPOINT_DIR", os.path.join(REPO_ROOT, "checkpoints"))

# The shipped default model (reproduce: see README "Shipped checkpoint"). Its file is an ordinary
# cache entry, so training this config again is a cache hit.
DEFAULT_MODEL = ModelConfig(input_shape=(1, 28, 28), latent_dim=16, arch="mlp", hidden=(400,),
                            likelihood="bernoulli")
DEFAULT_TRAIN = TrainConfig(dataset="mnist-5k", epochs=100, batch_size=128, lr=1e-3, seed=0,
                            binarize="dynamic")


def checkpoint_name(model_cfg: ModelConfig, train_cfg: TrainConfig, key: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", os.path.basename(train_cfg.dataset).lower()).strip("-")
    return f"{slug}_{model_cfg.arch}_{train_cfg.objective}_z{model_cfg.latent_dim}_{key}.safetensors"


def cache_path(model_cfg: ModelConfig, train_cfg: TrainConfig, data: Dataset,
               cache_dir: str | None = None) -> str:
    key = config_key(model_cfg, train_cfg, data.fingerprint)
    return os.path.join(cache_dir or DEFAULT_CACHE_DIR, checkpoint_name(model_cfg, train_cfg, key))


@contextlib.contextmanager
def _locked(path: str):
    try:
        with open(path + ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    finally:  # also when training raised: no stale .lock files in the cache folder
        with contextlib.suppress(OSError):
            os.unlink(path + ".lock")


def fit(*args, **kwargs):
    """vae_core.train.fit, imported on the first training (it loads torch); tests patch cache.fit."""
    from .train import fit as train_fit
    return train_fit(*args, **kwargs)


def dataset_info(data: Dataset) -> dict:
    return {"name": data.name, "fingerprint": data.fingerprint, "n_train": len(data.x_train),
            "n_test": len(data.x_test), "input_shape": list(data.input_shape)}


def train_or_load(model_cfg: ModelConfig, train_cfg: TrainConfig, data: Dataset, *,
                  cache_dir: str | None = None, progress=None, device: str = "auto",
                  final_iw_samples: int = 100, on_trained=None, trainer=None) -> tuple[Checkpoint, bool]:
    """(checkpoint, was_cached). Trains only when no checkpoint exists for this key.

    trainer(model_cfg, train_cfg, data, progress=, device=, final_iw_samples=) trains on a miss
    (default vae_core.train.fit; torchrun's rank 0 passes one that first wakes the other ranks).

    on_trained(checkpoint) runs inside the lock after a fresh save (e.g. to cache a projection).
    On divergence the last good model is written beside the cache as *.diverged.safetensors
    (never under the cache key) and TrainingDivergedError is re-raised with .path set.
    """
    from .train import TrainingDivergedError
    path = cache_path(model_cfg, train_cfg, data, cache_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        return load_checkpoint(path), True
    with _locked(path):
        if os.path.exists(path):  # another process finished it while we waited
            return load_checkpoint(path), True
        try:
            res = (trainer or fit)(model_cfg, train_cfg, data, progress=progress, device=device,
                                   final_iw_samples=final_iw_samples)
        except TrainingDivergedError as e:
            bad = path.replace(".safetensors", ".diverged.safetensors")
            save_checkpoint(bad, e.model, train_cfg, history=e.history, dataset=dataset_info(data),
                            metrics={"diverged": str(e)})
            e.path = bad
            e.args = (f"{e.args[0]} Last good model kept at {bad}.",)
            raise
        save_checkpoint(path, res.model, train_cfg, history=res.history, dataset=dataset_info(data),
                        metrics=res.metrics)
        ckpt = Checkpoint(res.model, model_cfg, train_cfg, res.history, dataset_info(data),
                          res.metrics, path)
        if on_trained is not None:
            on_trained(ckpt)
        return ckpt, False


def list_checkpoints(cache_dir: str | None = None) -> list[dict]:
    """Every readable checkpoint in the cache: path, configs, test ELBO. Unreadable ones carry 'error'."""
    rows = []
    for p in sorted(glob.glob(os.path.join(cache_dir or DEFAULT_CACHE_DIR, "*.safetensors"))):
        try:
            meta = read_metadata(p)
        except CheckpointError as e:
            rows.append({"path": p, "error": str(e)})
            continue
        rows.append({"path": p, "model_config": meta["model_config"], "train_config": meta["train_config"],
                     "dataset": meta["dataset"], "metrics": meta["metrics"],
                     "test_elbo": meta["metrics"].get("elbo"),
                     "log_likelihood": meta["metrics"].get("log_likelihood")})
    return rows


def default_checkpoint_path(cache_dir: str | None = None) -> str:
    """Cache path of the shipped default (DEFAULT_MODEL, DEFAULT_TRAIN on mnist-5k).

    When it is in the cache, found from the headers alone (no data, no torch): the file whose name
    is the key of the default configs and its own stored data fingerprint. Otherwise the path the
    key of the data on disk gives (this loads mnist-5k, and torch)."""
    folder = cache_dir or DEFAULT_CACHE_DIR
    prefix = checkpoint_name(DEFAULT_MODEL, DEFAULT_TRAIN, "*").split("*")[0]  # the name up to its key
    for p in sorted(glob.glob(os.path.join(glob.escape(folder), glob.escape(prefix) + "*.safetensors"))):
        try:
            fp = read_metadata(p)["dataset"].get("fingerprint")
        except CheckpointError:
            continue
        if isinstance(fp, str) and os.path.basename(p) == checkpoint_name(
                DEFAULT_MODEL, DEFAULT_TRAIN, config_key(DEFAULT_MODEL, DEFAULT_TRAIN, fp)):
            return p
    from .data import load_dataset
    data = load_dataset(DEFAULT_TRAIN.dataset, test_fraction=DEFAULT_TRAIN.test_fraction)
    return cache_path(DEFAULT_MODEL, DEFAULT_TRAIN, data, cache_dir)
