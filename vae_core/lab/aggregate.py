"""The aggregate posterior Q(z) = (1/N) sum_n q(z|x_n) against the prior p(z) = N(0, I).

Q is the finite mixture of the N test posteriors N(mu_n, diag exp(logvar_n)), so log Q(z) is exact:

    log Q(z) = logsumexp_n log N(z; mu_n, sigma_n^2) - log N

KL(Q || p) = E_{z~Q}[log Q(z) - log p(z)] is estimated by Monte Carlo with z ~ Q. "ELBO surgery"
(Hoffman & Johnson 2016) splits the average per-example KL of the ELBO into two parts:

    (1/N) sum_n KL(q(z|x_n) || p)  =  I_q(n; z)  +  KL(Q || p)

where I_q(n; z) = E_n E_{z~q_n}[log q_n(z) - log Q(z)] <= log N is the mutual information between the
data index and the code. A VAE can pay KL to carry information (I) or waste it on a mismatch (KL(Q||p)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..latent import decode, encode
from ..losses import LOG_2PI, kl_diag_gaussian, log_normal_diag, log_standard_normal, mmd
from .alignment import aligned_maps
from .sweeps import ModelStats, summarize


def sample_aggregate(
    mu: torch.Tensor, logvar: torch.Tensor, per_x: int = 1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """z ~ Q: per_x draws from each q(z|x_n), stratified over n. (N, k) -> (per_x * N, k)."""
    eps = torch.randn((per_x, *mu.shape), generator=generator, dtype=mu.dtype)
    return (mu + torch.exp(0.5 * logvar) * eps).reshape(-1, mu.shape[-1])


def log_aggregate_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """log Q(z) for z (M, k) under the mixture of N diagonal Gaussians (N, k); minibatched over z.

    Each chunk builds a (chunk, N) matrix of log N(z_m; mu_n, sigma_n^2) from expanded squares:
    sum_d (z_d - mu_d)^2 / s_d^2 = z^2 . (1/s^2) - 2 z . (mu/s^2) + sum_d mu_d^2/s_d^2.
    """
    prec = torch.exp(-logvar)  # (N, k)
    const = -0.5 * (mu.shape[-1] * LOG_2PI + logvar.sum(-1) + (mu.pow(2) * prec).sum(-1))  # (N,)
    out = []
    for i in range(0, len(z), chunk):
        zc = z[i : i + chunk]  # (m, k)
        quad = zc.pow(2) @ prec.T - 2 * zc @ (mu * prec).T  # (m, N)
        out.append(torch.logsumexp(const - 0.5 * quad, dim=1) - math.log(len(mu)))
    return torch.cat(out)


@dataclass(frozen=True)
class AggregateKL:
    kl_q_p: float  # KL(Q || p), Monte Carlo
    kl_q_p_se: float  # its standard error
    mutual_info: float  # I_q(n; z), Monte Carlo on the same draws
    mean_kl: float  # (1/N) sum_n KL(q_n || p), closed form
    n_samples: int


@torch.no_grad()
def aggregate_kl(
    mu: torch.Tensor, logvar: torch.Tensor, per_x: int = 2, generator: torch.Generator | None = None
) -> AggregateKL:
    """KL(Q || p) and I_q(n; z) from per_x draws per posterior (stratified z ~ Q)."""
    mu, logvar = mu.double(), logvar.double()
    z = sample_aggregate(mu, logvar, per_x, generator)  # (per_x*N, k), row j from q_{j mod N}
    log_q_agg = log_aggregate_density(z, mu, logvar)  # (M,)
    diff = log_q_agg - log_standard_normal(z)
    own_mu, own_lv = mu.repeat(per_x, 1), logvar.repeat(per_x, 1)
    log_q_own = log_normal_diag(z, own_mu, own_lv)  # log q_n(z) of its own component
    mean_kl = float(kl_diag_gaussian(mu, logvar).sum(-1).mean())
    return AggregateKL(
        float(diff.mean()),
        float(diff.std() / math.sqrt(len(diff))),
        float((log_q_own - log_q_agg).mean()),
        mean_kl,
        len(z),
    )


@torch.no_grad()
def marginal_kl(
    mu: torch.Tensor, logvar: torch.Tensor, per_x: int = 1, generator: torch.Generator | None = None, chunk: int = 128
) -> torch.Tensor:
    """KL(Q_d || N(0, 1)) for each latent dim d, Q_d the 1-D marginal mixture of Q. (N, k) -> (k,).

    A per-dimension view of the mismatch, free of the log N ceiling of the joint mixture: in 1-D the N
    components overlap, so this is what the per-dimension histograms show.
    """
    mu, logvar = mu.double(), logvar.double()
    z = sample_aggregate(mu, logvar, per_x, generator)  # (M, k)
    inv_sd = torch.exp(-0.5 * logvar)  # (N, k)
    parts = []
    for i in range(0, len(z), chunk):
        u = (z[i : i + chunk, None, :] - mu) * inv_sd  # (m, N, k)
        log_comp = -0.5 * (LOG_2PI + u.pow(2)) - 0.5 * logvar  # log N(z_d; mu_nd, s_nd^2)
        parts.append(torch.logsumexp(log_comp, dim=1) - math.log(len(mu)))  # (m, k)
    log_qd = torch.cat(parts)
    log_pd = -0.5 * (LOG_2PI + z.pow(2))
    return (log_qd - log_pd).mean(0)


@torch.no_grad()
def mmd_to_prior(z: torch.Tensor, generator: torch.Generator | None = None) -> float:
    """Unbiased MMD^2(Q, p) between codes z (M, k) and as many prior draws, Gaussian kernel of losses.mmd."""
    prior = torch.randn(z.shape, generator=generator, dtype=z.dtype)
    return float(mmd(z, prior))


@torch.no_grad()
def hole_scores(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log Q(z) - log p(z) for prior draws z (M, k): very negative = the prior puts mass where no
    posterior does (a hole); the decoder was never trained there."""
    return log_aggregate_density(z.double(), mu.double(), logvar.double()) - log_standard_normal(z.double())


@dataclass(frozen=True)
class AggregateReport:
    """Lab 5 for one model: N test images, k latent dims, M prior draws, S shown images."""

    zq: np.ndarray  # (N, k) z ~ Q, one draw per test posterior
    agg: AggregateKL  # KL(Q || p), I_q(n; z), mean KL (2 draws per posterior)
    marginal: np.ndarray  # (k,) KL(Q_d || N(0, 1))
    mmd: float  # MMD^2(Q, p), unbiased, zq against N prior draws
    noise_floor: float  # the same estimator between two prior samples of size N
    map_mu: np.ndarray  # (N, 2) PCA map of the test means
    map_prior: np.ndarray  # (M, 2) prior draws projected by the same PCA
    score: np.ndarray  # (M,) log Q(z) - log p(z) of the prior draws
    holes: np.ndarray  # (S, *input_shape) E[x|z] of the S lowest-scoring prior draws
    dense: np.ndarray  # (S, *input_shape) ... of the S highest-scoring ones
    hole_scores: np.ndarray  # (S,) their scores, ascending
    dense_scores: np.ndarray  # (S,)
    stats: ModelStats
    sigma_mean: float  # mean over examples and dims of sigma of q(z|x)


@torch.no_grad()
def aggregate_report(
    model, x: torch.Tensor, *, n_prior: int = 1000, n_show: int = 10, seed: int = 0
) -> AggregateReport:
    """Everything lab 5 shows for `model` on test targets x (N, ...), from one seeded generator."""
    g = torch.Generator().manual_seed(seed)
    mu, logvar = encode(model, x)
    zq = sample_aggregate(mu, logvar, 1, g)  # (N, k)
    agg = aggregate_kl(mu, logvar, per_x=2, generator=g)
    marginal = marginal_kl(mu, logvar, per_x=1, generator=g)
    mmd_q = mmd_to_prior(zq, g)
    noise_floor = float(mmd(torch.randn(zq.shape, generator=g), torch.randn(zq.shape, generator=g)))
    zp = torch.randn(n_prior, mu.shape[1], generator=g)  # (M, k)
    score = hole_scores(zp, mu, logvar).float()
    order = torch.argsort(score)
    pca = aligned_maps({"q": mu}, "q")["q"]  # the PCA map of the test means (nothing to align to)
    return AggregateReport(
        zq=zq.numpy(),
        agg=agg,
        marginal=marginal.numpy(),
        mmd=mmd_q,
        noise_floor=noise_floor,
        map_mu=pca.project(mu),
        map_prior=pca.project(zp),
        score=score.numpy(),
        holes=decode(model, zp[order[:n_show]]).numpy(),
        dense=decode(model, zp[order[-n_show:]]).numpy(),
        hole_scores=score[order[:n_show]].numpy(),
        dense_scores=score[order[-n_show:]].numpy(),
        stats=summarize(model, x, seed=seed),
        sigma_mean=float(torch.exp(0.5 * logvar).mean()),
    )
