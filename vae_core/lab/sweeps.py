"""Lab sweeps: small families of models derived from one base config, trained through the cache.

Every run is an ordinary `train_or_load` cache entry (in <checkpoint dir>/lab/), so a sweep that was
trained once, or shipped, opens instantly. The base is the open model's config with fewer epochs and
the objective reset to the plain ELBO; each run changes one thing (beta, warm-up, free bits, objective).

Reproduce the shipped sweeps (mnist-5k, derived from cache.DEFAULT_MODEL/DEFAULT_TRAIN):
    python -m vae_core.lab.sweeps
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ..cache import DEFAULT_MODEL, DEFAULT_TRAIN, cache_path, default_cache_dir, train_or_load
from ..checkpoints import Checkpoint
from ..config import ModelConfig, TrainConfig
from ..constants import ACTIVE_VAR_THRESHOLD
from ..dataset import Dataset
from ..estimators import active_units, evaluate
from ..latent import encode_mean

SWEEP_EPOCHS = 30
BETAS = (0.1, 1.0, 4.0, 10.0)
COLLAPSE_BETA = 10.0  # large beta: most dims' KL is pushed toward 0
WARMUP_EPOCHS = 10.0  # beta ramps 0 -> COLLAPSE_BETA over the first third of training
FREE_BITS = 0.5  # nats per latent dim below which KL costs nothing


@dataclass(frozen=True)
class LabRun:
    name: str  # label shown in the UI, e.g. "β=4"
    model: ModelConfig
    train: TrainConfig


def lab_cache_dir(cache_dir: str | None = None) -> str:
    """Lab models live in a subfolder so the sidebar model picker is not flooded with them."""
    return os.path.join(cache_dir or default_cache_dir(), "lab")


def base_train(train_cfg: TrainConfig, epochs: int = SWEEP_EPOCHS) -> TrainConfig:
    """The open model's training setup with `epochs` and a plain beta=1 ELBO objective."""
    return train_cfg.replace(epochs=epochs, objective="elbo", beta=1.0, warmup_epochs=0.0, free_bits=0.0)


def beta_runs(model_cfg: ModelConfig, train_cfg: TrainConfig, betas=BETAS, epochs: int = SWEEP_EPOCHS) -> list[LabRun]:
    base = base_train(train_cfg, epochs)
    return [LabRun(f"β={b:g}", model_cfg, base.replace(beta=float(b))) for b in betas]


def collapse_runs(
    model_cfg: ModelConfig, train_cfg: TrainConfig, beta: float = COLLAPSE_BETA, epochs: int = SWEEP_EPOCHS
) -> list[LabRun]:
    """Same large beta three ways: plain, with KL warm-up, with free bits."""
    base = base_train(train_cfg, epochs).replace(beta=float(beta))
    return [
        LabRun(f"β={beta:g}", model_cfg, base),
        LabRun(
            f"β={beta:g} + warm-up {WARMUP_EPOCHS:g} ep",
            model_cfg,
            base.replace(warmup_epochs=min(WARMUP_EPOCHS, epochs / 3)),
        ),
        LabRun(f"β={beta:g} + free bits {FREE_BITS:g}", model_cfg, base.replace(free_bits=FREE_BITS)),
    ]


def objective_runs(
    model_cfg: ModelConfig, train_cfg: TrainConfig, epochs: int = SWEEP_EPOCHS, mmd_weight: float | None = None
) -> dict[str, LabRun]:
    """The beta=1 VAE, the MMD-VAE (InfoVAE) and a plain autoencoder, same architecture and data.
    mmd_weight (lambda) changes only the MMD-VAE's config: the VAE and the autoencoder do not use it,
    so they stay the same cache entries whatever lambda is."""
    base = base_train(train_cfg, epochs)
    lam = base.mmd_weight if mmd_weight is None else float(mmd_weight)
    return {
        "vae": LabRun("VAE (KL, β=1)", model_cfg, base),
        "mmd": LabRun(f"MMD-VAE (λ={lam:g})", model_cfg, base.replace(objective="mmd", mmd_weight=lam)),
        "ae": LabRun("Autoencoder", model_cfg, base.replace(objective="ae")),
    }


def mean_loss_run(model_cfg: ModelConfig, train_cfg: TrainConfig, epochs: int = SWEEP_EPOCHS) -> LabRun:
    """What a per-pixel *mean* BCE with a summed KL trains: the summed loss at beta = D (see effective_beta)."""
    b = effective_beta(model_cfg.input_dim, model_cfg.latent_dim, 1.0, "sum")
    return LabRun(f"mean-BCE loss (β_eff={b:g})", model_cfg, base_train(train_cfg, epochs).replace(beta=b))


def run_path(run: LabRun, data: Dataset, cache_dir: str | None = None) -> str:
    return cache_path(run.model, run.train, data, lab_cache_dir(cache_dir))


def is_cached(run: LabRun, data: Dataset, cache_dir: str | None = None) -> bool:
    return os.path.exists(run_path(run, data, cache_dir))


def train_runs(
    runs: list[LabRun], data: Dataset, *, cache_dir: str | None = None, progress=None, device: str = "auto"
) -> list[Checkpoint]:
    """Train (or load) each run in turn. progress(fraction in [0, 1], message) after every report."""
    out = []
    n = len(runs)
    for i, run in enumerate(runs):

        def cb(p, i=i, run=run):
            if progress is not None and p.phase == "train":  # fit's other phases have fractions of their own
                progress((i + p.fraction) / n, f"{run.name}: epoch {p.epoch}/{p.epochs} (model {i + 1} of {n})")

        ckpt, _ = train_or_load(
            run.model, run.train, data, cache_dir=lab_cache_dir(cache_dir), progress=cb, device=device
        )
        out.append(ckpt)
        if progress is not None:
            progress((i + 1) / n, f"{run.name}: done (model {i + 1} of {n})")
    return out


@dataclass(frozen=True)
class ModelStats:
    """A model's live test numbers; nats per example, one z sample per example."""

    elbo: float
    recon: float  # E_q log p(x|z)
    kl: float  # KL(q(z|x) || p(z)), closed form
    kl_per_dim: np.ndarray  # (k,) its average per latent dim
    mu_var: np.ndarray  # (k,) A_d = Var_x(E_q[z_d]), the active-unit statistic
    active_units: int  # dims with A_d > ACTIVE_VAR_THRESHOLD (Burda et al. 2016)


@torch.no_grad()
def summarize(model, x_test: torch.Tensor, seed: int = 0) -> ModelStats:
    """The test ELBO, its terms, KL and A_d per dim, and the active units of `model` on x_test."""
    res = evaluate(model, x_test, iw_samples=0, seed=seed)
    au, var = active_units(encode_mean(model, x_test), ACTIVE_VAR_THRESHOLD)
    return ModelStats(res["elbo"], res["recon"], res["kl"], np.asarray(res["kl_per_dim"]), var.double().numpy(), au)


def effective_beta(input_dim: int, latent_dim: int, beta: float = 1.0, kl_reduction: str = "sum") -> float:
    """The beta that a per-pixel *mean* reconstruction loss implies.

    loss_mean = (1/D) sum_i BCE_i + beta * KL_red,  KL_red = sum_d KL_d ("sum") or (1/k) sum_d KL_d ("mean").
    Multiplying by D (which changes no minimiser) gives sum_i BCE_i + beta_eff * KL with
    beta_eff = beta * D ("sum") or beta * D / k ("mean").
    """
    if kl_reduction not in ("sum", "mean"):
        raise ValueError(f"kl_reduction must be 'sum' or 'mean', got {kl_reduction!r}")
    return beta * input_dim / (latent_dim if kl_reduction == "mean" else 1)


def default_runs(epochs: int = SWEEP_EPOCHS) -> list[LabRun]:
    """Every run the lab pages open on the shipped default model."""
    obj = objective_runs(DEFAULT_MODEL, DEFAULT_TRAIN, epochs)
    runs = (
        beta_runs(DEFAULT_MODEL, DEFAULT_TRAIN, epochs=epochs)
        + collapse_runs(DEFAULT_MODEL, DEFAULT_TRAIN, epochs=epochs)
        + [obj["mmd"], obj["ae"]]
        + [mean_loss_run(DEFAULT_MODEL, DEFAULT_TRAIN, epochs)]
    )
    seen, out = set(), []
    for r in runs:  # beta=1 and beta=10 appear twice
        if r.train not in seen:
            seen.add(r.train)
            out.append(r)
    return out


def main(argv=None) -> None:
    import argparse
    import time

    from ..data import load_dataset

    ap = argparse.ArgumentParser(description="Train (or load) the lab's default sweeps on mnist-5k.")
    ap.add_argument("--epochs", type=int, default=SWEEP_EPOCHS)
    ap.add_argument("--cache-dir", default=None, help="checkpoint folder (lab models go in <it>/lab)")
    args = ap.parse_args(argv)
    data = load_dataset(DEFAULT_TRAIN.dataset, test_fraction=DEFAULT_TRAIN.test_fraction)
    for run in default_runs(args.epochs):
        t0 = time.perf_counter()
        (ckpt,) = train_runs([run], data, cache_dir=args.cache_dir)
        m = ckpt.metrics
        print(
            f"{run.name:28s} {time.perf_counter() - t0:6.1f}s  ELBO {m['elbo']:8.2f}  KL {m['kl']:6.2f}  "
            f"AU {m['active_units']:2d}  {os.path.basename(ckpt.path)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
