"""What lab 4 (β and KL vanishing) shows for a family of models: live test numbers, aligned maps,
reconstructions and prior samples, all on the same test images and the same prior draws."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..latent import decode, encode_mean
from .alignment import aligned_maps
from .sweeps import ModelStats, summarize


@dataclass(frozen=True)
class SweepReport:
    """M models, N test images, k latent dims, S shown images."""

    stats: tuple[ModelStats, ...]  # M
    maps: np.ndarray  # (M, N, 2) PCA of each model's test means, rotated onto the reference's
    recons: np.ndarray  # (M, S, *input_shape) E[x|z = mu(x)] of the first S test images
    samples: np.ndarray  # (M, S, *input_shape) E[x|z], the same S draws z ~ N(0, I) for every model


@torch.no_grad()
def sweep_report(models: list, x: torch.Tensor, *, reference: int = 0, n_show: int = 10, seed: int = 0) -> SweepReport:
    """Every number and picture of one lab 4 section for `models` on test targets x (N, ...).
    Maps: orthogonal Procrustes onto models[reference] (alignment.aligned_maps), never rescaled."""
    stats = tuple(summarize(m, x, seed=seed) for m in models)
    mus = {i: encode_mean(m, x) for i, m in enumerate(models)}
    maps = aligned_maps(mus, reference)
    z = torch.randn(n_show, models[0].cfg.latent_dim, generator=torch.Generator().manual_seed(seed))
    return SweepReport(
        stats=stats,
        maps=np.stack([maps[i].project(mus[i]) for i in range(len(models))]),
        recons=np.stack([decode(m, mus[i][:n_show]).numpy() for i, m in enumerate(models)]),
        samples=np.stack([decode(m, z).numpy() for m in models]),
    )
