"""vae_core.latent.posterior_samples: draws from q(z|x) = N(mu, diag sigma^2) of the encoder, checked
against the encoder's own (mu, logvar) by the moments of many draws and by a normality test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from vae_core import latent
from vae_core.config import ModelConfig
from vae_core.model import VAE


@pytest.fixture
def model_and_x():
    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 8, 8), latent_dim=4, hidden=(16,))).eval()
    x = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(1))
    return model, x


def test_many_samples_have_the_encoders_mean_and_std(model_and_x):
    model, x = model_and_x
    mu, logvar = model.encode(x[None])
    mu, sigma = mu[0].detach().double(), torch.exp(0.5 * logvar[0]).detach().double()
    z = latent.posterior_samples(model, x, 200_000, torch.Generator().manual_seed(0)).double()
    assert z.shape == (200_000, 4)
    # the standard error of a mean of 2e5 draws is sigma / 447; 5 standard errors is a hang-free margin
    se = sigma / np.sqrt(len(z))
    assert torch.all((z.mean(0) - mu).abs() < 5 * se), (z.mean(0), mu)
    torch.testing.assert_close(z.std(0), sigma, rtol=0.01, atol=0)
    # each coordinate, standardised by the encoder's (mu, sigma), is N(0, 1) (Kolmogorov-Smirnov)
    for d in range(4):
        u = ((z[:, d] - mu[d]) / sigma[d]).numpy()[:20_000]
        assert stats.kstest(u, "norm").pvalue > 1e-3
    # and the coordinates are independent (q is diagonal)
    c = np.corrcoef(z.numpy().T)
    assert np.all(np.abs(c - np.eye(4)) < 0.02)


def test_a_seeded_generator_gives_the_same_cloud_and_another_seed_another(model_and_x):
    model, x = model_and_x
    a = latent.posterior_samples(model, x, 64, torch.Generator().manual_seed(3))
    b = latent.posterior_samples(model, x, 64, torch.Generator().manual_seed(3))
    c = latent.posterior_samples(model, x, 64, torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
