"""What lab 6 (autoencoder vs VAE) shows: both models on the same test images and the same prior draws.

Realism of decoded samples is scored without another model (vae_core.lab.compare): the k-NN label
agreement among the nearest training images and the RMS distance to the nearest one; real test
images are scored the same way as a reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..latent import decode, encode_mean, lerp
from .alignment import aligned_maps
from .compare import fit_code_gaussian, knn_label_agreement, nearest_distance, reconstruction_error, sample_gaussian
from .sweeps import ModelStats, summarize

PRIOR = "N(0, I)"
FITTED = "N(m, C) fitted to codes"


@dataclass(frozen=True)
class SampleScore:
    """S shown images out of M scored ones."""

    images: np.ndarray  # (S, *input_shape)
    knn: float  # k-NN label agreement in [0, 1]; NaN when the data has no labels
    pixel_nn: float  # mean RMS distance to the nearest training image


@dataclass(frozen=True)
class ModelSide:
    """One model of the pair; N test images, k latent dims, M prior draws."""

    codes: np.ndarray  # (N, k) test means mu(x) (the AE's codes)
    map: np.ndarray  # (N, 2) PCA of the codes (the AE's rotated onto the VAE's map)
    prior_map: np.ndarray  # (M, 2) the shared N(0, I) draws by the same transform
    mse: float  # per pixel, E[x|z = mu]
    log_px_z: float  # log p(x|z = mu), nats per example
    stats: ModelStats
    code_std: np.ndarray  # (k,) std of the codes per dim (the prior's is 1)
    samplers: dict[str, SampleScore]  # PRIOR for both; FITTED for the AE too


@dataclass(frozen=True)
class AEReport:
    vae: ModelSide
    ae: ModelSide
    data: SampleScore  # real test images scored the same way (their first S shown)


@torch.no_grad()
def ae_report(
    vae,
    ae,
    x: torch.Tensor,
    x_train: torch.Tensor,
    grey_train: torch.Tensor,
    grey_test: torch.Tensor,
    y_train: torch.Tensor | None,
    *,
    n_samples: int = 300,
    n_show: int = 10,
    knn: int = 10,
    seed: int = 0,
) -> AEReport:
    """x, x_train: targets as the likelihood sees them (N, ...); grey_*: the [0, 1] images that
    decoded means are compared with; y_train: labels of grey_train, or None."""
    g = torch.Generator().manual_seed(seed)
    z0 = torch.randn(n_samples, vae.cfg.latent_dim, generator=g)  # the same N(0, I) draws for both
    codes = {"vae": encode_mean(vae, x), "ae": encode_mean(ae, x)}
    maps = aligned_maps(codes, "vae")

    def score(images: torch.Tensor) -> SampleScore:
        agree = float("nan") if y_train is None else knn_label_agreement(images, grey_train, y_train, k=knn)
        return SampleScore(images[:n_show].numpy(), agree, float(nearest_distance(images, grey_train).mean()))

    def side(name: str, model) -> ModelSide:
        samplers = {PRIOR: z0}
        if name == "ae":
            mean, cov = fit_code_gaussian(encode_mean(model, x_train))
            samplers[FITTED] = sample_gaussian(mean, cov, n_samples, g)
        r = reconstruction_error(model, x)
        c = codes[name]
        return ModelSide(
            c.numpy(),
            maps[name].project(c),
            maps[name].project(z0),
            r.mse,
            r.log_px_z,
            summarize(model, x, seed=seed),
            c.std(0).numpy(),
            {s: score(decode(model, z)) for s, z in samplers.items()},
        )

    return AEReport(side("vae", vae), side("ae", ae), score(grey_test[:n_samples]))


@torch.no_grad()
def interpolation(model, x_a: torch.Tensor, x_b: torch.Tensor, steps: int) -> np.ndarray:
    """E[x|z] along the straight line mu(x_a) -> mu(x_b), endpoints included: (steps, *input_shape)."""
    za, zb = encode_mean(model, x_a[None])[0], encode_mean(model, x_b[None])[0]
    return decode(model, lerp(za, zb, torch.linspace(0, 1, steps))).numpy()
