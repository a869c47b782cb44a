"""What lab 2 (importance sampling) shows: log p_hat(x) and its ESS as N grows, from the prior and
from q(z|x), for one test image, and the same on a 2-D linear-Gaussian toy whose log p(x) is exact."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..latent import encode
from ..losses import kl_diag_gaussian
from .importance import PROPOSALS, EstimatorCurve, estimator_curve
from .linear_gaussian import LinearGaussian


@dataclass(frozen=True)
class ImportanceReport:
    curves: dict[str, EstimatorCurve]  # proposal ("prior", "posterior") -> its curve
    kl_prior: float  # KL(q(z|x) || p(z)), closed form: the prior needs ~e^KL draws
    reference: float  # log of the mean p_hat over every q-based draw (repeats pooled)


@torch.no_grad()
def importance_report(
    model, x: torch.Tensor, *, n_max: int, repeats: int, seed: int = 0, progress=None
) -> ImportanceReport:
    """x (1, *input_shape). Each proposal draws `repeats` independent runs of n_max; progress(fraction)."""
    curves = {}
    for i, prop in enumerate(PROPOSALS):
        report = None if progress is None else (lambda f, i=i: progress((i + f) / len(PROPOSALS)))
        curves[prop] = estimator_curve(model, x, prop, n_max, repeats, seed=seed, progress=report)
    mu, logvar = encode(model, x)
    return ImportanceReport(
        curves, float(kl_diag_gaussian(mu, logvar).sum()), float(curves["posterior"].mean_linear()[-1])
    )


@dataclass(frozen=True)
class ToyReport:
    curves: dict[str, EstimatorCurve]
    exact: float  # log p(x) in closed form: p(x) = N(b, W W^T + s^2 I)


def toy_report(n_max: int, repeats: int) -> ToyReport:
    """p(z) = N(0, I_2), p(x|z) = N(Wz + b, 0.5^2 I_4), q deliberately off (shrunk mean, wider)."""
    lg = LinearGaussian.random(d=4, k=2, s=0.5, seed=0)
    model, x = lg.vae(mean_scale=0.8, logvar_shift=0.7), lg.sample_x(1, seed=3)
    curves = {p: estimator_curve(model, x, p, n_max, repeats, seed=1) for p in PROPOSALS}
    return ToyReport(curves, float(lg.log_px(x)))
