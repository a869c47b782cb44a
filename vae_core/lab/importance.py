"""Importance sampling of p(x) = E_{r(z)}[p(x|z) p(z) / r(z)] with two proposals r, for one x.

    prior:      r = p(z),     w = p(x|z)                         (simple Monte Carlo)
    posterior:  r = q(z|x),   w = p(x|z) p(z) / q(z|x)           (Burda et al. 2016)

Both are unbiased for p(x) in linear space; their logs are biased low (Jensen). Everything is kept
in log space: log p_hat_N = logsumexp_n(log w_n) - log N. The effective sample size
ESS = (sum w)^2 / sum w^2 says how many draws actually carry the estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..constants import FLOATS_PER_PASS
from ..losses import log_mean_exp, log_normal_diag, log_standard_normal

if TYPE_CHECKING:
    from ..model import VAE

PROPOSALS = ("prior", "posterior")


@dataclass
class Draws:
    """n draws for one x: the three log densities that make up log w, each (n,)."""

    log_px_given_z: torch.Tensor
    log_pz: torch.Tensor
    log_r: torch.Tensor  # log of the proposal density at z

    @property
    def log_w(self) -> torch.Tensor:
        return self.log_px_given_z + self.log_pz - self.log_r


def draw(
    model: VAE, x: torch.Tensor, n: int, proposal: str = "posterior", generator=None, chunk: int | None = None
) -> Draws:
    """n draws of z from the proposal for one example x (1, *input_shape), in chunks of at most
    FLOATS_PER_PASS decoder outputs. Call under torch.no_grad()."""
    if proposal not in PROPOSALS:
        raise ValueError(f"proposal must be one of {PROPOSALS}, got {proposal!r}")
    if x.shape[0] != 1:
        raise ValueError(f"draw() takes one example with a leading batch dim of 1, got shape {tuple(x.shape)}")
    mu, logvar = model.encode(x)  # (1, k)
    chunk = chunk or max(1, FLOATS_PER_PASS // model.cfg.input_dim)
    parts = []
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        if proposal == "posterior":
            z = model.reparameterize(mu, logvar, m, generator=generator)[:, 0]  # (m, k)
            log_r = log_normal_diag(z, mu, logvar)
        else:
            z = torch.randn((m, mu.shape[-1]), generator=generator, dtype=mu.dtype, device=mu.device)
            log_r = log_standard_normal(z)
        log_lik = model.log_px_given_z(model.decode(z), x)  # (m,)
        parts.append((log_lik, log_standard_normal(z), log_r))
    return Draws(*(torch.cat(p) for p in zip(*parts)))


def running_log_mean_exp(log_w: torch.Tensor) -> torch.Tensor:
    """Estimate after each prefix: out[..., n-1] = log (1/n) sum_{i<=n} w_i, along the last dim."""
    n = torch.arange(1, log_w.shape[-1] + 1, dtype=log_w.dtype, device=log_w.device)
    return torch.logcumsumexp(log_w, -1) - n.log()


def running_ess(log_w: torch.Tensor) -> torch.Tensor:
    """ESS after each prefix, (sum w)^2 / sum w^2, along the last dim; in [1, n]."""
    return torch.exp(2 * torch.logcumsumexp(log_w, -1) - torch.logcumsumexp(2 * log_w, -1))


def log_mean_exp_se(log_w: torch.Tensor) -> float:
    """Delta-method standard error of log p_hat = log mean(w): sd(w) / (sqrt(n) mean(w)).
    Itself noisy when a few weights dominate; the spread over repeats is the honest check."""
    w = torch.exp(log_w - log_w.max())
    return float(w.std() / (math.sqrt(len(w)) * w.mean()))


@dataclass
class EstimatorCurve:
    """log p_hat(x) and ESS at each N of a grid, for several independent repeats."""

    proposal: str
    n: np.ndarray  # (G,) sample sizes
    log_px: np.ndarray  # (R, G) log p_hat_N per repeat
    ess: np.ndarray  # (R, G)

    def spread(self) -> np.ndarray:
        """(G,) standard deviation over repeats of log p_hat_N."""
        return self.log_px.std(0, ddof=1) if len(self.log_px) > 1 else np.zeros(len(self.n))

    def mean_linear(self) -> np.ndarray:
        """(G,) log of the repeat-mean of p_hat_N in linear space: the unbiased combination."""
        return log_mean_exp(torch.as_tensor(self.log_px), dim=0).numpy()


def log_grid(n_max: int, per_decade: int = 4) -> np.ndarray:
    """1 .. n_max, roughly evenly spaced on a log axis, unique ints, n_max included."""
    g = np.unique(np.round(np.logspace(0, math.log10(n_max), 1 + round(per_decade * math.log10(n_max)))))
    return np.unique(np.append(g, n_max)).astype(int)


@torch.no_grad()
def estimator_curve(
    model: VAE, x: torch.Tensor, proposal: str, n_max: int, repeats: int, seed: int = 0, progress=None
) -> EstimatorCurve:
    """R independent runs of N_max draws; each run's prefixes give the estimate at every N of the grid.
    (Prefixes of one run are nested, so curves are smooth in N; repeats are independent.)
    Runs are drawn together in groups of about 1e5 draws; progress(fraction) after each group."""
    if n_max < 1 or repeats < 1:
        raise ValueError(f"need n_max >= 1 and repeats >= 1, got {n_max}, {repeats}")
    g = torch.Generator(device=x.device).manual_seed(seed)
    grid = log_grid(n_max)
    per_group = max(1, 100_000 // n_max)
    est, ess = [], []
    for r in range(0, repeats, per_group):
        m = min(per_group, repeats - r)
        lw = draw(model, x, m * n_max, proposal, generator=g).log_w.double().view(m, n_max)
        est.append(running_log_mean_exp(lw)[:, grid - 1])
        ess.append(running_ess(lw)[:, grid - 1])
        if progress is not None:
            progress((r + m) / repeats)
    return EstimatorCurve(proposal, grid, torch.cat(est).numpy(), torch.cat(ess).numpy())
