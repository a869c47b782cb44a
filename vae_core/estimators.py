"""Importance-sampled log p(x) (Burda et al. 2016) and whole-set evaluation.

The bound L_K and its log weights are loss math (vae_core.losses). Here they are computed over whole
sets in passes of bounded memory, and

    log p(x) - ELBO = KL(q(z|x) || p(z|x)),  estimated as L_K - ELBO from the same K draws
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .config import MAX_EVAL_SAMPLES
from .constants import ACTIVE_VAR_THRESHOLD, FLOATS_PER_PASS
from .losses import iwae_bound, kl_diag_gaussian, log_importance_weights
from .modes import in_eval_mode

if TYPE_CHECKING:
    from .model import VAE


def per_pass(model: VAE, n: int, budget_floats: int = FLOATS_PER_PASS) -> int:
    """How many samples per example fit in one pass with n examples, or examples with n samples
    each: samples x examples x D_in decoder outputs stay within budget_floats (at least 1)."""
    return max(1, int(budget_floats // (n * model.cfg.input_dim)))


def importance_terms(
    model: VAE, x: torch.Tensor, k: int, generator=None, budget_floats: int = FLOATS_PER_PASS
) -> tuple[torch.Tensor, torch.Tensor]:
    """L_K (log p(x) estimated from K draws z_k ~ q(z|x)) and E_q log p(x|z) averaged over the same
    K draws, each (B,), for x (B, ...). K is split into passes within budget_floats. Call under no_grad."""
    per = min(k, per_pass(model, len(x), budget_floats))
    log_w, recon_sum = [], 0.0
    for j in range(0, k, per):
        lw, t = log_importance_weights(model, x, min(per, k - j), generator, return_terms=True)
        log_w.append(lw)
        recon_sum = recon_sum + t.recon * lw.shape[0]  # t.recon: mean over this pass's draws
    return iwae_bound(torch.cat(log_w)), recon_sum / k


@torch.no_grad()
def log_px(
    model: VAE,
    x: torch.Tensor,
    k: int = 1000,
    generator=None,
    batch_size: int | None = None,
    budget_floats: int = FLOATS_PER_PASS,
) -> torch.Tensor:
    """Importance-sampled log p(x) per example (B,), batched so K=1000 fits in memory."""
    bs = batch_size or per_pass(model, k, budget_floats)
    return torch.cat(
        [importance_terms(model, x[i : i + bs], k, generator, budget_floats)[0] for i in range(0, len(x), bs)]
    )


def active_units(mu: torch.Tensor, threshold: float = ACTIVE_VAR_THRESHOLD) -> tuple[int, torch.Tensor]:
    """Burda et al. 2016: dim d is active if Cov_x(E_q[z_d]) > threshold. mu (N, k)."""
    var = mu.var(0, unbiased=True) if len(mu) > 1 else torch.zeros(mu.shape[-1])
    return int((var > threshold).sum()), var


def _recon(model: VAE, mu, logvar, xb, l: int, generator, budget_floats: int) -> torch.Tensor:
    """E_q log p(x|z) per example (B,) from L samples, split so L * B * D_in stays in the budget."""
    per = per_pass(model, len(xb), budget_floats)
    if per >= l:  # one pass (the usual case)
        z = model.reparameterize(mu, logvar, l, generator=generator)
        return model.log_px_given_z(model.decode(z), xb).mean(0)
    total = 0.0
    for j in range(0, l, per):
        z = model.reparameterize(mu, logvar, min(per, l - j), generator=generator)
        total = total + model.log_px_given_z(model.decode(z), xb).sum(0)
    return total / l


@torch.no_grad()
@in_eval_mode  # the model's train/eval mode is left as it was: it may be shared (vae_core.modes)
def evaluate(
    model: VAE,
    x: torch.Tensor,
    *,
    iw_samples: int = 0,
    mc_samples: int = 1,
    batch_size: int = 500,
    seed: int = 0,
    budget_floats: int = FLOATS_PER_PASS,
) -> dict:
    """Per-example means in nats over x: elbo, recon, kl, kl_per_dim, active units, log p(x).

    iw_samples = K > 0: log p(x) is importance-sampled from K draws per example and the ELBO's recon
    term averages log p(x|z) over the same K draws (as latent.elbo_breakdown), so the printed gap
    log p(x) - ELBO is a function of those draws alone; mc_samples must then stay 1 (ValueError).
    iw_samples = 0 skips log p(x) and takes recon from L = mc_samples draws. Memory stays bounded
    for any K or L (they are split into passes of budget_floats decoder outputs); both are limited to
    MAX_EVAL_SAMPLES (ValueError).
    """
    if not 1 <= mc_samples <= MAX_EVAL_SAMPLES:
        raise ValueError(f"mc_samples must be in [1, {MAX_EVAL_SAMPLES}], got {mc_samples}")
    if not 0 <= iw_samples <= MAX_EVAL_SAMPLES:
        raise ValueError(f"iw_samples must be in [0, {MAX_EVAL_SAMPLES}] (0 skips log p(x)), got {iw_samples}")
    if iw_samples > 0 and mc_samples != 1:
        raise ValueError(
            f"mc_samples applies only when iw_samples is 0: with iw_samples = {iw_samples} the "
            f"ELBO is taken from the same {iw_samples} draws as log p(x) (got mc_samples = "
            f"{mc_samples})"
        )
    dev = next(model.parameters()).device
    g = torch.Generator(device=dev).manual_seed(seed)
    recon, kl, kld, mus, lpx = [], [], [], [], []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].to(dev)
        mu, logvar = model.encode(xb)
        if iw_samples > 0:
            lp, r = importance_terms(model, xb, iw_samples, g, budget_floats)
            lpx.append(lp)
        else:
            r = _recon(model, mu, logvar, xb, mc_samples, g, budget_floats)
        kd = kl_diag_gaussian(mu, logvar)
        recon.append(r)
        kl.append(kd.sum(-1))
        kld.append(kd)
        mus.append(mu)
    recon, kl, kld, mus = torch.cat(recon), torch.cat(kl), torch.cat(kld), torch.cat(mus)
    au, _ = active_units(mus)
    res = {
        "elbo": float((recon - kl).mean()),
        "recon": float(recon.mean()),
        "kl": float(kl.mean()),
        "kl_per_dim": [float(v) for v in kld.mean(0)],
        "active_units": au,
        "n": len(x),
        "iw_samples": int(iw_samples),
    }
    if iw_samples > 0:
        res["log_likelihood"] = float(torch.cat(lpx).mean())
        res["gap_kl_q_posterior"] = res["log_likelihood"] - res["elbo"]
    return res
