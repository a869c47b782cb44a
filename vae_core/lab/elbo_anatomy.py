"""The ELBO of one x taken apart, with the importance-weighted bounds that close its gap.

log w     = log p(x|z) + log p(z) - log q(z|x),  z ~ q(z|x)
ELBO      = E_q[log w] = E_q[log p(x|z)] - KL(q(z|x) || p(z))  <=  log E_q[w] = log p(x)   (Jensen)
log p(x)  = ELBO + KL(q(z|x) || p(z|x))
L_K       = E[log (1/K) sum_k w_k],   ELBO = L_1 <= L_K <= L_{K+1} -> log p(x)   (Burda et al. 2016)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..losses import kl_diag_gaussian
from .importance import draw, log_grid, log_mean_exp, log_mean_exp_se, running_log_mean_exp


@dataclass(frozen=True)
class Anatomy:
    log_px: float  # log p(x), importance-sampled with k_ref draws from q
    log_px_se: float  # its delta-method standard error
    k_ref: int
    recon: float  # E_q log p(x|z), Monte Carlo over the k_ref draws
    recon_se: float
    kl_prior: float  # KL(q(z|x) || p(z)), closed form
    elbo_logw: float  # E_q[log w], the same k_ref draws: the ELBO read as a mean log weight
    elbo_logw_se: float
    k: np.ndarray  # (G,) K grid
    lk: np.ndarray  # (R, G) L_K per repeat

    @property
    def elbo(self) -> float:
        """recon - KL with the KL in closed form (lower variance than elbo_logw)."""
        return self.recon - self.kl_prior

    @property
    def gap(self) -> float:
        """log p(x) - ELBO = KL(q(z|x) || p(z|x)) >= 0 (up to Monte Carlo error)."""
        return self.log_px - self.elbo

    def lk_mean(self) -> np.ndarray:
        return self.lk.mean(0)

    def lk_se(self) -> np.ndarray:
        """(G,) standard error of the mean of L_K over repeats."""
        r = len(self.lk)
        return self.lk.std(0, ddof=1) / math.sqrt(r) if r > 1 else np.zeros(self.lk.shape[1])


@torch.no_grad()
def anatomy(
    model, x: torch.Tensor, k_max: int = 1000, repeats: int = 8, k_ref: int = 5000, seed: int = 0, progress=None
) -> Anatomy:
    """Everything the ELBO page shows for one example x (1, *input_shape).

    L_K curves: each repeat draws k_max weights; its prefixes give L_K at every K of the grid, so the
    mean over repeats estimates L_K and the spread over repeats gives the error bar.
    progress(fraction) is called as the repeats finish."""
    if k_max < 1 or repeats < 1 or k_ref < 2:
        raise ValueError(f"need k_max >= 1, repeats >= 1, k_ref >= 2; got {k_max}, {repeats}, {k_ref}")
    g = torch.Generator(device=x.device).manual_seed(seed)
    ref = draw(model, x, k_ref, "posterior", generator=g)
    lw = ref.log_w.double()
    ll = ref.log_px_given_z.double()
    mu, logvar = model.encode(x)
    grid = log_grid(k_max)
    curves = []
    for r in range(repeats):
        lw_r = draw(model, x, k_max, "posterior", generator=g).log_w.double()
        curves.append(running_log_mean_exp(lw_r)[grid - 1])
        if progress is not None:
            progress((r + 1) / repeats)
    sqrt_n = math.sqrt(k_ref)
    return Anatomy(
        log_px=float(log_mean_exp(lw)),
        log_px_se=log_mean_exp_se(lw),
        k_ref=k_ref,
        recon=float(ll.mean()),
        recon_se=float(ll.std() / sqrt_n),
        kl_prior=float(kl_diag_gaussian(mu, logvar).sum()),
        elbo_logw=float(lw.mean()),
        elbo_logw_se=float(lw.std() / sqrt_n),
        k=grid,
        lk=torch.stack(curves).numpy(),
    )
