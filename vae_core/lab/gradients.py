"""Two Monte Carlo estimators of the gradient of R(phi) = mean_b E_{q_phi(z|x_b)}[f_b(z)],
f_b(z) = log p(x_b|z), with respect to encoder parameters phi; L samples of z per example.

    reparameterization:  g = 1/L sum_l grad_phi f(mu_phi + sigma_phi * eps_l),          eps_l ~ N(0, I)
    score function:      g = 1/L sum_l (f(z_l) - c_l) grad_phi log q_phi(z_l|x),        z_l ~ q_phi(z|x)
        c_l = 0 (plain REINFORCE, Williams 1992), or the leave-one-out mean of f over the
        other L-1 samples (needs L >= 2; unbiased because c_l does not depend on z_l).

phi only enters through the encoder output h_b = (mu_b, logvar_b), so every estimator is
g = 1/B sum_b J_b^T v_b with J_b = dh_b/dphi and a per-example vector v_b (2k,):
    reparam:  v = (df/dz, df/dz * eps * sigma / 2)              (z = mu + sigma * eps)
    score:    v = (f - c) * (eps / sigma, (eps^2 - 1) / 2)       (d log q / d(mu, logvar))
The per-sample v are cheap (one batched backward through the decoder for all samples); one
vector-Jacobian product per repeat maps them to the encoder parameters.

Variance is measured directly: R independent repeats, each with L_max draws per example; the first
L draws of a repeat give its L-sample estimate, and the per-parameter variance over the repeats,
averaged over the parameters (trace(Cov) / P), is the curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vjp, vmap

ESTIMATORS = ("reparam", "score", "score-loo")
SUBSETS = ("last", "all")


class _Encode(nn.Module):
    """model.encode as a module, so functional_call can swap encoder parameters (model untouched)."""

    def __init__(self, model):
        super().__init__()
        self.vae = model

    def forward(self, x):
        return self.vae.encode(x)


def encoder_params(model, subset: str = "last") -> dict[str, torch.Tensor]:
    """Detached copies of the encoder parameters to differentiate: the last Linear layer, or all.
    Keys are names inside _Encode (e.g. 'vae.encoder.2.weight')."""
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    named = list(model.encoder.named_parameters())
    if subset == "last":
        last = [n for n, m in model.encoder.named_modules() if isinstance(m, nn.Linear)][-1]
        named = [(n, p) for n, p in named if n.startswith(f"{last}.")]
    return {f"vae.encoder.{n}": p.detach().clone() for n, p in named}


def loo_baseline(f: torch.Tensor, dim: int) -> torch.Tensor:
    """c_l = mean of f over the other samples along dim (size >= 2), same shape as f."""
    return (f.sum(dim, keepdim=True) - f) / (f.shape[dim] - 1)


def per_sample_v(
    model,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    eps: torch.Tensor,
    estimator: str,
    max_decodes: int = 8192,
):
    """Per-sample (v_mu, v_logvar), each (R, L, B, k), and f (R, L, B) for eps (R, L, B, k).
    Score estimators get v = d log q / d(mu, logvar) without the factor (f - c): the caller applies
    it, since the baseline c depends on L. Decodes at most max_decodes samples at a time."""
    sigma = torch.exp(0.5 * logvar)
    if estimator != "reparam":
        with torch.no_grad():
            f = torch.cat(
                [model.log_px_given_z(model.decode(mu + sigma * e), x) for e in eps.split(_chunk(eps, max_decodes))]
            )
        return (eps / sigma, (eps.pow(2) - 1) / 2), f
    dz, f = [], []
    for e in eps.split(_chunk(eps, max_decodes)):
        with torch.enable_grad():
            z = (mu + sigma * e).requires_grad_()
            fz = model.log_px_given_z(model.decode(z), x)  # (r, L, B)
            # samples are independent, so one backward of the sum gives every df/dz
            dz.append(torch.autograd.grad(fz.sum(), z)[0])
        f.append(fz.detach())
    dz = torch.cat(dz)
    return (dz, dz * eps * sigma / 2), torch.cat(f)


def _chunk(eps: torch.Tensor, max_decodes: int) -> int:
    """Repeats per chunk so that chunk * L * B <= max_decodes (at least 1)."""
    return max(1, max_decodes // (eps.shape[1] * eps.shape[2]))


@torch.no_grad()
def gradient_samples(
    model, x: torch.Tensor, params: dict[str, torch.Tensor], estimator: str, l_grid, repeats: int, generator=None
):
    """Yields (L, (R, P) gradient estimates of grad_phi mean_b E_q[log p(x_b|z)]) for each L of
    l_grid, from R independent repeats of max(l_grid) draws per example (nested prefixes)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    enc = _Encode(model)
    (mu, logvar), to_params = vjp(lambda p: functional_call(enc, p, (x,)), params)  # each (B, k)
    l_max = max(l_grid)
    eps = torch.randn((repeats, l_max, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
    (v_mu, v_lv), f = per_sample_v(model, x, mu, logvar, eps, estimator)
    for n in l_grid:
        if estimator == "reparam":
            w = torch.ones_like(f[:, :n])
        else:
            fn = f[:, :n]  # (R, L, B)
            w = fn - loo_baseline(fn, 1) if estimator == "score-loo" else fn
        # cotangents (R, B, k) for mu and logvar: 1/(L B) sum_l w_l v_l per example
        cot = tuple((w[..., None] * v[:, :n]).mean(1) / len(x) for v in (v_mu, v_lv))
        (g,) = vmap(to_params)(cot)
        yield n, torch.cat([t.flatten(1) for t in g.values()], 1)


@dataclass(frozen=True)
class VarianceCurves:
    n_samples: np.ndarray  # (G,) L grid
    variance: dict[str, np.ndarray]  # estimator -> (G,) mean per-parameter variance (nan where undefined)
    mean: dict[str, np.ndarray]  # estimator -> (P,) mean gradient over the repeats at the largest L
    mean_se: dict[str, np.ndarray]  # estimator -> (P,) its standard error
    repeats: int
    n_params: int

    def agreement(self, a: str, b: str) -> dict:
        """How well two estimators' mean gradients agree, per parameter: z = (m_a - m_b) / se.
        For independent estimators, |z| < 2 for about 95% of the parameters."""
        se = np.sqrt(self.mean_se[a] ** 2 + self.mean_se[b] ** 2)
        zs = (self.mean[a] - self.mean[b])[se > 0] / se[se > 0]
        return {
            "frac_within_2se": float(np.mean(np.abs(zs) < 2)),
            "max_abs_z": float(np.abs(zs).max()),
            "mean_z": float(zs.mean()),
            "n": int(len(zs)),
        }


def variance_curves(
    model,
    x: torch.Tensor,
    *,
    subset: str = "last",
    l_grid=(1, 2, 4, 8, 16, 32),
    repeats: int = 32,
    estimators=ESTIMATORS,
    seed: int = 0,
    progress=None,
) -> VarianceCurves:
    """Measure each estimator's variance at every L of l_grid on batch x (B, ...), each estimator
    with its own independent draws. progress(fraction) after each estimator."""
    if repeats < 2:
        raise ValueError(f"need at least 2 repeats to measure a variance, got {repeats}")
    l_grid = sorted(set(int(v) for v in l_grid))
    if l_grid[0] < 1:
        raise ValueError(f"sample counts L must be >= 1, got {l_grid}")
    g = torch.Generator(device=x.device).manual_seed(seed)
    params = encoder_params(model, subset)
    var = {e: np.full(len(l_grid), np.nan) for e in estimators}
    mean, se = {}, {}
    for j, e in enumerate(estimators):
        grid = [n for n in l_grid if not (e == "score-loo" and n < 2)]
        for n, gr in gradient_samples(model, x, params, e, grid, repeats, generator=g):
            gr = gr.double()
            var[e][l_grid.index(n)] = float(gr.var(0).mean())
            if n == l_grid[-1]:
                mean[e], se[e] = gr.mean(0).numpy(), (gr.std(0) / repeats**0.5).numpy()
        if progress is not None:
            progress((j + 1) / len(estimators))
    return VarianceCurves(np.asarray(l_grid), var, mean, se, repeats, sum(p.numel() for p in params.values()))
