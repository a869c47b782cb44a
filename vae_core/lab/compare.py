"""Autoencoder vs VAE: reconstruction error, prior samples, code Gaussians, interpolations.

A plain autoencoder (objective 'ae') is trained on the reconstruction term alone with z = mu, so its
codes can sit anywhere; nothing ties them to N(0, I). Decoding z ~ N(0, I) then lands where the
decoder never saw a code. Fitting N(m, C) to the AE's codes (m, C: their mean and covariance) is the
fairest prior an AE can get after the fact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..model import VAE


@dataclass(frozen=True)
class ReconError:
    mse: float  # mean over examples of (1/D) sum_i (x_i - E[x_i|z=mu])^2
    log_px_z: float  # mean log p(x|z=mu) in nats/example (the likelihood term at the code mean)


@torch.no_grad()
def reconstruction_error(model: VAE, x: torch.Tensor, batch_size: int = 500) -> ReconError:
    """Both errors with z = mu(x): the AE's own decoding path, the VAE's noise-free one."""
    se, lp = [], []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size]
        mu, _ = model.encode(xb)
        out = model.decode(mu)
        xhat = model.decode_mean(mu)
        se.append((xb - xhat).pow(2).flatten(1).mean(1))
        lp.append(model.log_px_given_z(out, xb))
    return ReconError(float(torch.cat(se).mean()), float(torch.cat(lp).mean()))


def fit_code_gaussian(mu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (k,) and full covariance (k, k) of codes (N, k), with a tiny ridge so it is positive definite."""
    m = mu.mean(0)
    c = torch.cov(mu.T.double()).reshape(mu.shape[1], mu.shape[1])
    c = c + 1e-6 * torch.eye(len(c), dtype=c.dtype) * max(float(c.diagonal().mean()), 1e-12)
    return m, c.to(mu.dtype)


def sample_gaussian(
    mean: torch.Tensor, cov: torch.Tensor, n: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """n draws of N(mean, cov) via the Cholesky factor: z = mean + eps L^T. -> (n, k)."""
    chol = torch.linalg.cholesky(cov.double())
    eps = torch.randn((n, len(mean)), generator=generator, dtype=torch.float64)
    return (mean.double() + eps @ chol.T).to(mean.dtype)


@torch.no_grad()
def nearest_distance(samples: torch.Tensor, reference: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """RMS per-pixel distance of each sample (M, ...) to its nearest reference image (N, ...) -> (M,).

    A decoded prior sample that looks like data has a near neighbour in the test set; garbage does not.
    """
    a, b = samples.flatten(1), reference.flatten(1)
    d = torch.cat([torch.cdist(a[i : i + chunk], b).min(1).values for i in range(0, len(a), chunk)])
    return d / a.shape[1] ** 0.5


@torch.no_grad()
def knn_label_agreement(samples: torch.Tensor, reference: torch.Tensor, labels: torch.Tensor, k: int = 10) -> float:
    """Mean fraction of each sample's k nearest reference images (pixel L2) that share their majority label.

    A cheap realism proxy with no extra model: a clear digit sits among neighbours of one class (real
    MNIST test images score ~0.9); an ambiguous blend sits among mixed classes.
    """
    k = min(k, len(reference))
    idx = torch.cdist(samples.flatten(1), reference.flatten(1)).topk(k, largest=False).indices  # (M, k)
    lab = labels[idx]
    return float((lab == lab.mode(1).values[:, None]).float().mean())
