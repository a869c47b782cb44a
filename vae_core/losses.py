"""Loss math as pure functions. Sign convention, stated once:

    recon = E_q[log p(x|z)]   (nats, usually negative)
    kl    = KL(q(z|x) || p(z)) >= 0
    elbo  = recon - kl         <= log p(x)
    loss  = -(recon - beta * kl_used), averaged over the batch (what the optimizer minimises)

Every function returns per-example values (and, for KL, per latent dimension).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

LOG_2PI = math.log(2 * math.pi)


def kl_diag_gaussian(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag e^logvar) || N(0, I)) per dimension, (B, k).

    Kingma & Welling 2014, appendix B:  -KL = 0.5 * sum_j (1 + log s_j^2 - mu_j^2 - s_j^2)
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def log_normal_diag(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag e^logvar), summed over the last dim."""
    return (-0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar))).sum(-1)


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), summed over the last dim."""
    return (-0.5 * (LOG_2PI + z.pow(2))).sum(-1)


def free_bits_kl(kl_per_dim: torch.Tensor, free_bits: float) -> torch.Tensor:
    """Batch KL with a floor per dimension (Kingma et al. 2016): sum_d max(lambda, mean_b KL_bd).

    Returns a scalar to be used in the loss; below the floor a dimension gets no KL gradient.
    """
    per_dim = kl_per_dim.mean(0)
    return torch.clamp(per_dim, min=free_bits).sum() if free_bits > 0 else per_dim.sum()


def beta_at(beta: float, warmup_epochs: float, epoch_progress: float) -> float:
    """KL weight after `epoch_progress` epochs: linear warm-up 0 -> beta (Bowman et al. 2016)."""
    if warmup_epochs <= 0:
        return beta
    return beta * min(1.0, epoch_progress / warmup_epochs)


@dataclass
class ELBOTerms:
    recon: torch.Tensor        # (B,) E_q log p(x|z), mean over L samples
    kl: torch.Tensor           # (B,)
    kl_per_dim: torch.Tensor   # (B, k)
    elbo: torch.Tensor         # (B,)
    mu: torch.Tensor           # (B, k)
    logvar: torch.Tensor       # (B, k)
    z: torch.Tensor            # (L, B, k)


def elbo_terms(model, x: torch.Tensor, mc_samples: int = 1, eps=None) -> ELBOTerms:
    """Named ELBO terms per example; recon estimated with L = mc_samples reparameterized draws
    (of eps (L, B, k) when given)."""
    out = model(x, n_samples=mc_samples, eps=eps)
    recon = model.log_px_given_z(out.out, x).mean(0)  # (L, B) -> (B,)
    kl_d = kl_diag_gaussian(out.mu, out.logvar)
    kl = kl_d.sum(-1)
    return ELBOTerms(recon, kl, kl_d, recon - kl, out.mu, out.logvar, out.z)


def gaussian_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """k(a, b) = exp(-|a-b|^2 / k) with k = latent dim (Zhao et al., InfoVAE code). (N,k),(M,k) -> (N,M)."""
    d = a.shape[-1]
    return torch.exp(-torch.cdist(a, b).pow(2) / d)


def mmd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Unbiased estimate of MMD^2 between samples a (N,k) and b (M,k) with the Gaussian kernel."""
    n, m = a.shape[0], b.shape[0]
    kaa, kbb, kab = gaussian_kernel(a, a), gaussian_kernel(b, b), gaussian_kernel(a, b)
    saa = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1))
    sbb = (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    return saa + sbb - 2 * kab.mean()


def training_loss(model, x: torch.Tensor, *, objective: str, beta: float, free_bits: float,
                  mc_samples: int, iw_samples: int, mmd_weight: float, eps=None
                  ) -> tuple[torch.Tensor, ELBOTerms]:
    """Scalar loss to minimise for one batch, plus the ELBO terms for logging.

    eps: the batch's standard-normal noise, (iw_samples or mc_samples, B, k); None draws it here."""
    if objective == "ae":
        # plain autoencoder: z = mu, only the reconstruction error is minimised
        mu, logvar = model.encode(x)
        recon = model.log_px_given_z(model.decode(mu), x)
        kl_d = kl_diag_gaussian(mu, logvar).detach()
        t = ELBOTerms(recon, kl_d.sum(-1), kl_d, recon - kl_d.sum(-1), mu, logvar, mu[None])
        return -recon.mean(), t
    if objective == "iwae":
        from .estimators import log_importance_weights
        log_w, t = log_importance_weights(model, x, iw_samples, return_terms=True, eps=eps)
        bound = torch.logsumexp(log_w, 0) - math.log(iw_samples)  # (B,)
        return -bound.mean(), t
    t = elbo_terms(model, x, mc_samples, eps=eps)
    if objective == "mmd":
        # InfoVAE with alpha=1: -recon + lambda * MMD(q(z) || p(z)), no per-example KL
        z = t.z.reshape(-1, t.z.shape[-1])
        prior = torch.randn_like(z)
        return -t.recon.mean() + mmd_weight * mmd(z, prior), t
    kl_used = free_bits_kl(t.kl_per_dim, free_bits)
    return -(t.recon.mean() - beta * kl_used), t
