"""Loss math as pure functions. Sign convention, stated once:

    recon = E_q[log p(x|z)]   (nats, usually negative)
    kl    = KL(q(z|x) || p(z)) >= 0
    elbo  = recon - kl         <= log p(x)
    loss  = -(recon - beta * kl_used), averaged over the batch (what the optimizer minimises)

and for the importance-weighted bound (Burda et al. 2016), with z_k ~ q(z|x):

    log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)
    L_K     = log (1/K) sum_k w_k  <=  log p(x),   L_1 = ELBO in expectation

Every function returns per-example values (and, for KL, per latent dimension).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .config import ConfigError, TrainConfig
from .likelihoods import LOG_2PI

if TYPE_CHECKING:
    from .model import VAE


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
    recon: torch.Tensor  # (B,) E_q log p(x|z), mean over L samples
    kl: torch.Tensor  # (B,)
    kl_per_dim: torch.Tensor  # (B, k)
    elbo: torch.Tensor  # (B,)
    mu: torch.Tensor  # (B, k)
    logvar: torch.Tensor  # (B, k)
    z: torch.Tensor  # (L, B, k)


def elbo_terms(model: VAE, x: torch.Tensor, mc_samples: int = 1, eps=None) -> ELBOTerms:
    """Named ELBO terms per example; recon estimated with L = mc_samples reparameterized draws
    (of eps (L, B, k) when given)."""
    out = model(x, n_samples=mc_samples, eps=eps)
    recon = model.log_px_given_z(out.out, x).mean(0)  # (L, B) -> (B,)
    kl_d = kl_diag_gaussian(out.mu, out.logvar)
    kl = kl_d.sum(-1)
    return ELBOTerms(recon, kl, kl_d, recon - kl, out.mu, out.logvar, out.z)


def log_mean_exp(log_w: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log (1/n) sum_i exp(log_w_i) along dim, in log space (logsumexp): no overflow or underflow."""
    return torch.logsumexp(log_w, dim) - math.log(log_w.shape[dim])


def log_importance_weights(model: VAE, x: torch.Tensor, k: int, generator=None, return_terms: bool = False, eps=None):
    """(K, B) log weights for x (B, ...); optionally the ELBO terms of the same draws (of eps if given)."""
    mu, logvar = model.encode(x)
    z = model.reparameterize(mu, logvar, k, generator=generator, eps=eps)  # (K, B, d)
    log_px_z = model.log_px_given_z(model.decode(z), x)  # (K, B)
    log_w = log_px_z + log_standard_normal(z) - log_normal_diag(z, mu, logvar)
    if not return_terms:
        return log_w
    kl_d = kl_diag_gaussian(mu, logvar)
    recon = log_px_z.mean(0)
    return log_w, ELBOTerms(recon, kl_d.sum(-1), kl_d, recon - kl_d.sum(-1), mu, logvar, z)


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """L_K per example: (K, B) log weights -> (B,)."""
    return log_mean_exp(log_w, dim=0)


def gaussian_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """k(a, b) = exp(-||a-b||^2 / d), d = latent dim: a Gaussian kernel of bandwidth 2 s^2 = d, which
    keeps k of two prior draws (||a-b||^2 ~ 2d) near e^-2 for any d. (N,d),(M,d) -> (N,M).

    (The InfoVAE reference code, Zhao et al. 2019, divides the squared distance by d^2 instead.)"""
    d = a.shape[-1]
    return torch.exp(-torch.cdist(a, b).pow(2) / d)


def mmd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """MMD^2_u between samples a (N,d) and b (M,d) with gaussian_kernel: the unbiased estimator of
    Gretton et al. 2012 (JMLR, Lemma 6), which leaves out the i = j terms of the within-sample sums
    (the InfoVAE code uses the biased one that keeps them):

        MMD^2_u = sum_{i!=j} k(a_i,a_j) / (N(N-1)) + sum_{i!=j} k(b_i,b_j) / (M(M-1)) - 2 mean_ij k(a_i,b_j)
    """
    n, m = a.shape[0], b.shape[0]
    kaa, kbb, kab = gaussian_kernel(a, a), gaussian_kernel(b, b), gaussian_kernel(a, b)
    saa = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1))
    sbb = (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    return saa + sbb - 2 * kab.mean()


# What each objective reads from TrainConfig besides its own options, and the value that means
# "off": a config that sets one its objective does not read is refused (check_objective_options).
_OFF = {"beta": 1.0, "warmup_epochs": 0.0, "free_bits": 0.0, "mc_samples": 1}
_READS = {"elbo": set(_OFF), "iwae": set(), "mmd": {"mc_samples"}, "ae": set()}


def check_objective_options(cfg: TrainConfig) -> None:
    """ConfigError when cfg sets beta, warm-up, free bits or mc_samples that its objective would
    ignore: iwae (which weighs K = iw_samples draws instead), mmd (no per-example KL) and ae (no KL)
    read none of them, except mmd's L = mc_samples. Not part of TrainConfig's own validation, so that
    checkpoints saved before this rule still load."""
    ignored = [
        f"{name}={getattr(cfg, name):g}"
        for name, off in _OFF.items()
        if name not in _READS[cfg.objective] and getattr(cfg, name) != off
    ]
    if ignored:
        defaults = ", ".join(f"{name}={_OFF[name]:g}" for name in _OFF if name not in _READS[cfg.objective])
        raise ConfigError(
            f"objective {cfg.objective!r} does not use {', '.join(ignored)}: leave "
            f"{'it' if len(ignored) == 1 else 'them'} at the default ({defaults})"
        )


def training_loss(
    model: VAE,
    x: torch.Tensor,
    *,
    objective: str,
    beta: float,
    free_bits: float,
    mc_samples: int,
    iw_samples: int,
    mmd_weight: float,
    eps=None,
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
        log_w, t = log_importance_weights(model, x, iw_samples, return_terms=True, eps=eps)
        return -iwae_bound(log_w).mean(), t
    t = elbo_terms(model, x, mc_samples, eps=eps)
    if objective == "mmd":
        # InfoVAE with alpha=1: -recon + lambda * MMD(q(z) || p(z)), no per-example KL
        z = t.z.reshape(-1, t.z.shape[-1])
        prior = torch.randn_like(z)
        return -t.recon.mean() + mmd_weight * mmd(z, prior), t
    kl_used = free_bits_kl(t.kl_per_dim, free_bits)
    return -(t.recon.mean() - beta * kl_used), t
