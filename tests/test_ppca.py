"""A linear VAE trained by `fit` recovers the probabilistic-PCA maximum likelihood.

Tipping & Bishop (1999): for x = W z + m + eps, z ~ N(0, I_q), eps ~ N(0, s^2 I_D), the ML fit is
    m_ML = sample mean,  s^2_ML = mean of the D - q smallest eigenvalues of the sample covariance S,
    W_ML = U_q (Lambda_q - s^2_ML I)^(1/2)   (top-q eigenpairs of S, up to a rotation),
    log p(x) = log N(x; m_ML, W_ML W_ML^T + s^2_ML I).
A linear VAE with a shared learned sigma has the same model family (the decoder bias is m) and its
ELBO optimum is the ML solution (Lucas et al. 2019), so its importance-sampled test log-likelihood
must come out at the analytic one.
"""

from __future__ import annotations

import pytest
import torch
from torch import distributions as td

from vae_core.config import ModelConfig, TrainConfig
from vae_core.dataset import Dataset
from vae_core.estimators import log_px
from vae_core.train import fit

D, Q, SIGMA = 12, 3, 0.5


def _ppca_data(n_train=3000, n_test=1000, seed=0):
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(D, Q, generator=g, dtype=torch.float64))
    w = basis * torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64).sqrt()  # W^T W = diag(3, 2, 1)
    m = torch.randn(D, generator=g, dtype=torch.float64)

    def draw(n):
        z = torch.randn(n, Q, generator=g, dtype=torch.float64)
        return z @ w.T + m + SIGMA * torch.randn(n, D, generator=g, dtype=torch.float64)

    return draw(n_train), draw(n_test)


def _ppca_ml(x):
    """Tipping & Bishop closed-form ML: returns the fitted marginal N(m, W W^T + s^2 I) and s^2."""
    m = x.mean(0)
    s = (x - m).T @ (x - m) / len(x)  # ML (biased) sample covariance
    evals, evecs = torch.linalg.eigh(s)  # ascending
    evals, evecs = evals.flip(0), evecs.flip(1)
    s2 = evals[Q:].mean()
    w = evecs[:, :Q] * (evals[:Q] - s2).sqrt()
    return td.MultivariateNormal(m, w @ w.T + s2 * torch.eye(D, dtype=x.dtype)), float(s2)


@pytest.mark.slow
def test_linear_vae_reaches_the_ppca_maximum_likelihood():
    """Tolerance: |VAE test log p(x) - PPCA-ML test log p(x)| < 0.05 nats/example (D=12, q=3,
    N=3000). Measured 0.003-0.015 nats over 4 data seeds and 3 training seeds (120 epochs, Adam
    1e-2, batch 256, log p(x) with K=1000); 60 epochs still left 0.18. ~8 s alone, ~25 s on 2 busy cores.
    """
    x_train, x_test = _ppca_data()
    ml, s2_ml = _ppca_ml(x_train)
    data = Dataset("ppca", x_train.float(), x_test.float(), None, None, "ppca-test")
    mcfg = ModelConfig(input_shape=(D,), latent_dim=Q, hidden=(), likelihood="gaussian-learned", sigma_mode="shared")
    tcfg = TrainConfig(dataset="ppca", epochs=120, batch_size=256, lr=1e-2, seed=0)
    model = fit(mcfg, tcfg, data, device="cpu", final_iw_samples=0).model

    vae_test = log_px(model, x_test.float(), k=1000, generator=torch.Generator().manual_seed(1)).double().mean()
    ml_test = ml.log_prob(x_test).mean()
    assert abs(float(vae_test - ml_test)) < 0.05, (float(vae_test), float(ml_test))
    # on the training set ML is the maximum: the VAE (a lower bound in expectation) cannot beat it
    vae_train = log_px(model, x_train.float(), k=500, generator=torch.Generator().manual_seed(2)).double().mean()
    assert float(vae_train - ml.log_prob(x_train).mean()) < 0.01
    # and the learned noise is the ML noise
    assert float(model.log_sigma.detach().exp() ** 2) == pytest.approx(s2_ml, rel=0.05)
