"""Walking the latent space: samples, traversals, interpolation, the 2-D manifold, per-point ELBO.

Shapes: a single latent vector z is (k,); batches are (..., k). Decoding returns E[x|z] via
model.decode_mean. Decoding and the ELBO breakdown run under no_grad; nothing modifies the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .constants import ACTIVE_VAR_THRESHOLD, KL_COLLAPSED_NATS
from .estimators import active_units as _active_units
from .estimators import importance_terms
from .losses import kl_diag_gaussian

if TYPE_CHECKING:
    from .model import VAE


@torch.no_grad()
def encode(model: VAE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q(z|x)'s parameters (mu, logvar), each (..., k), for x (..., *input_shape)."""
    return model.encode(torch.as_tensor(x, dtype=torch.float32))


def encode_mean(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """E_q[z|x] = mu, (..., k): the point the map and the sliders show for x."""
    return encode(model, x)[0]


@torch.no_grad()
def reconstruct(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """E[x|z = mu(x)], the deterministic reconstruction shown beside an image."""
    return model.decode_mean(encode_mean(model, x))


@torch.no_grad()
def decode(model: VAE, z: torch.Tensor) -> torch.Tensor:
    """E[x|z], (..., k) -> (..., *input_shape)."""
    return model.decode_mean(torch.as_tensor(z, dtype=torch.float32))


def prior_sample(latent_dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """z ~ p(z) = N(0, I), (k,)."""
    return torch.randn(latent_dim, generator=generator)


def posterior_sample(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z ~ q(z|x) = N(mu, diag exp(logvar)), (k,)."""
    return mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator)


@torch.no_grad()
def posterior_samples(model: VAE, x: torch.Tensor, s: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """S draws z ~ q(z|x) = N(mu, diag sigma^2) for one x (*input_shape): (S, k). The
    reparameterization of Kingma & Welling 2014 (eq. 10), z = mu + sigma * eps, eps ~ N(0, I),
    sigma = exp(logvar / 2); a seeded generator gives the same cloud on every call."""
    mu, logvar = encode(model, torch.as_tensor(x, dtype=torch.float32).unsqueeze(0))  # (1, k) each
    eps = torch.randn((s, mu.shape[-1]), generator=generator)  # (S, k)
    return mu + torch.exp(0.5 * logvar) * eps


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(1 - t) z0 + t z1 for each t: (k,), (k,), (T,) -> (T, k)."""
    t = torch.as_tensor(t, dtype=z0.dtype)[:, None]
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for generative models), (T, k):
        slerp = sin((1-t) w)/sin w * z0 + sin(t w)/sin w * z1,  cos w = <z0, z1> / (|z0| |z1|)
    Falls back to lerp when z0, z1 are (anti)parallel or zero (sin w ~ 0)."""
    t = torch.as_tensor(t, dtype=z0.dtype)[:, None]
    n0, n1 = z0.norm(), z1.norm()
    if n0 == 0 or n1 == 0:
        return lerp(z0, z1, t[:, 0])
    cos = torch.clamp((z0 @ z1) / (n0 * n1), -1.0, 1.0)
    omega = torch.acos(cos)
    s = torch.sin(omega)
    if s.abs() < 1e-6:
        return lerp(z0, z1, t[:, 0])
    return torch.sin((1 - t) * omega) / s * z0 + torch.sin(t * omega) / s * z1


def traversal_grid(z0: torch.Tensor, dims: list[int], values: torch.Tensor) -> torch.Tensor:
    """Row r varies dim dims[r] over `values`, all other dims stay at z0: (len(dims), V, k)."""
    grid = z0.expand(len(dims), len(values), z0.shape[-1]).clone()
    for r, d in enumerate(dims):
        grid[r, :, d] = values
    return grid


def manifold_grid(n: int, quantile_range: tuple[float, float] = (0.05, 0.95)) -> torch.Tensor:
    """Kingma & Welling 2014, fig. 4: a 2-D latent grid at Gaussian quantiles, z = Phi^-1(u),
    u evenly spaced in quantile_range. (n, n, 2); row index runs top (high z2) to bottom."""
    u = torch.linspace(*quantile_range, n, dtype=torch.float64)
    v = torch.distributions.Normal(0.0, 1.0).icdf(u).float()
    z1, z2 = torch.meshgrid(v, v.flip(0), indexing="xy")
    return torch.stack([z1, z2], -1)


def collapsed_dims(
    kl_per_dim, mean_variance=None, kl_threshold: float = KL_COLLAPSED_NATS, var_threshold: float = ACTIVE_VAR_THRESHOLD
) -> list[bool]:
    """A dim is collapsed when its average KL < kl_threshold nats, or (given Var_x[mu_d]) it is
    inactive in the sense of Burda et al. 2016 (Var_x E_q[z_d] <= var_threshold)."""
    kl = torch.as_tensor(kl_per_dim, dtype=torch.float64)
    out = kl < kl_threshold
    if mean_variance is not None:
        out = out | (torch.as_tensor(mean_variance, dtype=torch.float64) <= var_threshold)
    return [bool(v) for v in out]


def mean_variance(mu: torch.Tensor) -> torch.Tensor:
    """Var_x of the encoder means per dim, (N, k) -> (k,) (the active-units statistic)."""
    return _active_units(torch.as_tensor(mu))[1]


@dataclass(frozen=True)
class ELBOBreakdown:
    """One example; nats. elbo = recon - kl; gap = log_px - elbo estimates KL(q(z|x) || p(z|x))."""

    recon: float  # E_q log p(x|z), Monte Carlo over the same K draws
    kl: float  # KL(q(z|x) || p(z)), closed form
    kl_per_dim: list
    elbo: float
    log_px: float  # importance-sampled log p(x), K draws (Burda et al. 2016)
    gap: float
    k: int
    mu: torch.Tensor  # (k,)
    logvar: torch.Tensor  # (k,)
    reconstruction: torch.Tensor  # E[x | z = mu], (*input_shape)


@torch.no_grad()
def elbo_breakdown(model: VAE, x: torch.Tensor, k: int = 1000, seed: int = 0) -> ELBOBreakdown:
    """x (*input_shape): one example as the likelihood sees it (binarized if the model was)."""
    g = torch.Generator().manual_seed(seed)
    xb = x.unsqueeze(0)
    log_px, recon = importance_terms(model, xb, k, generator=g)  # the same K draws for both
    mu, logvar = model.encode(xb)
    kl_d = kl_diag_gaussian(mu, logvar)[0]
    kl = float(kl_d.sum())
    elbo = float(recon[0]) - kl
    return ELBOBreakdown(
        float(recon[0]),
        kl,
        [float(v) for v in kl_d],
        elbo,
        float(log_px[0]),
        float(log_px[0]) - elbo,
        k,
        mu[0],
        logvar[0],
        model.decode_mean(mu)[0],
    )
