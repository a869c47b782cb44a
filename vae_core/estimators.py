"""Importance-sampled log p(x) (Burda et al. 2016) and whole-set evaluation.

    log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x),   z_k ~ q(z|x)
    L_K     = log (1/K) sum_k w_k  (logsumexp)  <=  log p(x),   L_1 = ELBO in expectation
    log p(x) - ELBO = KL(q(z|x) || p(z|x)), estimated as L_K - ELBO for large K
"""
from __future__ import annotations

import math

import torch

from .config import MAX_EVAL_SAMPLES
from .losses import ELBOTerms, kl_diag_gaussian, log_normal_diag, log_standard_normal
from .modes import in_eval_mode

BUDGET_FLOATS = 3e7  # decoder outputs (samples x examples x D_in) per pass: ~120 MB of float32


def log_importance_weights(model, x: torch.Tensor, k: int, generator=None, return_terms: bool = False,
                           eps=None):
    """(K, B) log weights for x (B, ...); optionally the ELBO terms of the same draws (of eps if given)."""
    mu, logvar = model.encode(x)
    z = model.reparameterize(mu, logvar, k, generator=generator, eps=eps)  # (K, B, d)
    log_px_z = model.log_px_given_z(model.decode(z), x)            # (K, B)
    log_w = log_px_z + log_standard_normal(z) - log_normal_diag(z, mu, logvar)
    if not return_terms:
        return log_w
    kl_d = kl_diag_gaussian(mu, logvar)
    recon = log_px_z.mean(0)
    return log_w, ELBOTerms(recon, kl_d.sum(-1), kl_d, recon - kl_d.sum(-1), mu, logvar, z)


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """(K, B) -> (B,): log (1/K) sum_k exp(log w_k)."""
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


def _chunk_size(model, k: int, budget_floats: float = BUDGET_FLOATS) -> int:
    """Examples per chunk so that K * B * D_in decoder outputs stay near budget_floats."""
    return max(1, int(budget_floats // (k * model.cfg.input_dim)))


@torch.no_grad()
def log_px(model, x: torch.Tensor, k: int = 1000, generator=None, batch_size: int | None = None) -> torch.Tensor:
    """Importance-sampled log p(x) per example (B,), batched so K=1000 fits in memory."""
    bs = batch_size or _chunk_size(model, k)
    parts = []
    for i in range(0, len(x), bs):
        xb = x[i:i + bs]
        # split K too when a single example is too big for one pass
        kk = max(1, min(k, int(BUDGET_FLOATS // (model.cfg.input_dim * len(xb)))))
        lw = torch.cat([log_importance_weights(model, xb, min(kk, k - j), generator)
                        for j in range(0, k, kk)], 0)
        parts.append(iwae_bound(lw))
    return torch.cat(parts)


def active_units(mu: torch.Tensor, threshold: float = 0.01) -> tuple[int, torch.Tensor]:
    """Burda et al. 2016: dim d is active if Cov_x(E_q[z_d]) > threshold. mu (N, k)."""
    var = mu.var(0, unbiased=True) if len(mu) > 1 else torch.zeros(mu.shape[-1])
    return int((var > threshold).sum()), var


def _recon(model, mu, logvar, xb, l: int, generator) -> torch.Tensor:
    """E_q log p(x|z) per example (B,) from L samples, split so L * B * D_in stays in the budget."""
    per = max(1, int(BUDGET_FLOATS // (len(xb) * model.cfg.input_dim)))
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
def evaluate(model, x: torch.Tensor, *, iw_samples: int = 0, mc_samples: int = 1,
             batch_size: int = 500, seed: int = 0) -> dict:
    """Per-example means in nats over x: elbo, recon, kl, kl_per_dim, active units, log p(x).

    iw_samples = 0 skips the importance-sampled log-likelihood. Memory stays bounded for any K
    or L (they are split into passes); both are limited to MAX_EVAL_SAMPLES (ValueError).
    """
    if not 1 <= mc_samples <= MAX_EVAL_SAMPLES:
        raise ValueError(f"mc_samples must be in [1, {MAX_EVAL_SAMPLES}], got {mc_samples}")
    if not 0 <= iw_samples <= MAX_EVAL_SAMPLES:
        raise ValueError(f"iw_samples must be in [0, {MAX_EVAL_SAMPLES}] (0 skips log p(x)), got {iw_samples}")
    dev = next(model.parameters()).device
    g = torch.Generator(device=dev).manual_seed(seed)
    recon, kl, kld, mus = [], [], [], []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(dev)
        mu, logvar = model.encode(xb)
        recon.append(_recon(model, mu, logvar, xb, mc_samples, g))
        kd = kl_diag_gaussian(mu, logvar)
        kl.append(kd.sum(-1)); kld.append(kd); mus.append(mu)
    recon, kl, kld, mus = torch.cat(recon), torch.cat(kl), torch.cat(kld), torch.cat(mus)
    au, _ = active_units(mus)
    res = {
        "elbo": float((recon - kl).mean()),
        "recon": float(recon.mean()),
        "kl": float(kl.mean()),
        "kl_per_dim": [float(v) for v in kld.mean(0)],
        "active_units": au,
        "n": int(len(x)),
        "iw_samples": int(iw_samples),
    }
    if iw_samples > 0:
        lpx = log_px(model, x.to(dev), iw_samples, generator=g)
        res["log_likelihood"] = float(lpx.mean())
        res["gap_kl_q_posterior"] = res["log_likelihood"] - res["elbo"]
    return res
