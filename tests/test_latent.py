"""vae_core.latent against independent references: geometry of lerp/slerp, Gaussian quantiles,
the per-point ELBO against torch.distributions and a hand-written importance sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from vae_core import latent
from vae_core.config import ModelConfig
from vae_core.model import VAE


@pytest.fixture
def model():
    torch.manual_seed(0)
    return VAE(ModelConfig(input_shape=(1, 8, 8), latent_dim=3, hidden=(16,))).eval()


def test_lerp_endpoints_and_midpoint():
    z0, z1 = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([3.0, 0.0, -0.5])
    out = latent.lerp(z0, z1, torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(out, torch.stack([z0, (z0 + z1) / 2, z1]))


def test_slerp_stays_on_the_great_circle_with_constant_angular_speed():
    z0, z1 = torch.tensor([2.0, 0.0, 0.0]), torch.tensor([0.0, 2.0, 0.0])
    t = torch.linspace(0, 1, 7)
    out = latent.slerp(z0, z1, t)
    torch.testing.assert_close(out[0], z0)
    torch.testing.assert_close(out[-1], z1)
    torch.testing.assert_close(out.norm(dim=1), torch.full((7,), 2.0))  # equal norms stay on the sphere
    ang = torch.atan2(out[:, 1], out[:, 0])
    torch.testing.assert_close(ang, t * math.pi / 2, atol=1e-6, rtol=0)  # angle grows linearly in t
    # against the textbook formula with omega from arccos
    a, b = torch.tensor([1.0, 2.0, -1.0]), torch.tensor([-0.5, 1.0, 2.0])
    om = math.acos(float(a @ b / (a.norm() * b.norm())))
    ref = math.sin(0.7 * om) / math.sin(om) * a + math.sin(0.3 * om) / math.sin(om) * b
    torch.testing.assert_close(latent.slerp(a, b, torch.tensor([0.3]))[0], ref)


def test_slerp_falls_back_to_lerp_when_parallel_or_zero():
    z0 = torch.tensor([1.0, 1.0])
    torch.testing.assert_close(
        latent.slerp(z0, 2 * z0, torch.tensor([0.5])), latent.lerp(z0, 2 * z0, torch.tensor([0.5]))
    )
    torch.testing.assert_close(latent.slerp(torch.zeros(2), z0, torch.tensor([0.5])), torch.tensor([[0.5, 0.5]]))


def test_traversal_grid_moves_one_dim_per_row():
    z0 = torch.tensor([0.1, 0.2, 0.3])
    v = torch.tensor([-1.0, 0.0, 1.0])
    g = latent.traversal_grid(z0, [2, 0], v)
    assert g.shape == (2, 3, 3)
    torch.testing.assert_close(g[0, :, 2], v)
    torch.testing.assert_close(g[0, :, :2], z0[:2].expand(3, 2))
    torch.testing.assert_close(g[1, :, 0], v)
    torch.testing.assert_close(g[1, :, 1:], z0[1:].expand(3, 2))


def test_manifold_grid_uses_gaussian_quantiles():
    g = latent.manifold_grid(5, (0.05, 0.95))
    q = norm.ppf(np.linspace(0.05, 0.95, 5))
    np.testing.assert_allclose(g[0, :, 0].numpy(), q, atol=1e-5)  # z1 increases to the right
    np.testing.assert_allclose(g[:, 0, 1].numpy(), q[::-1], atol=1e-5)  # z2 decreases downwards
    assert g.shape == (5, 5, 2)


def test_prior_and_posterior_samples_have_the_right_moments():
    g = torch.Generator().manual_seed(0)
    s = torch.stack([latent.prior_sample(3, g) for _ in range(4000)])  # 4 standard errors: 0.064
    torch.testing.assert_close(s.mean(0), torch.zeros(3), atol=0.064, rtol=0)
    torch.testing.assert_close(s.std(0), torch.ones(3), atol=0.05, rtol=0)
    mu, logvar = torch.tensor([1.0, -2.0]), torch.tensor([math.log(0.25), 0.0])
    p = torch.stack([latent.posterior_sample(mu, logvar, g) for _ in range(4000)])
    torch.testing.assert_close(p.mean(0), mu, atol=0.064, rtol=0)
    torch.testing.assert_close(p.std(0), torch.tensor([0.5, 1.0]), atol=0.05, rtol=0)


def test_collapsed_dims_by_kl_and_by_activity():
    assert latent.collapsed_dims([0.001, 0.5, 2.0]) == [True, False, False]
    assert latent.collapsed_dims([0.001, 0.5, 2.0], [1.0, 0.001, 1.0]) == [True, True, False]


def test_elbo_breakdown_against_torch_distributions_and_a_manual_importance_sampler(model):
    torch.manual_seed(1)
    x = torch.bernoulli(torch.full((1, 8, 8), 0.3))
    b = latent.elbo_breakdown(model, x, k=4000, seed=0)
    with torch.no_grad():
        mu, logvar = model.encode(x[None])
        q = torch.distributions.Normal(mu[0], torch.exp(0.5 * logvar[0]))
        p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
        kl_ref = torch.distributions.kl_divergence(q, p)
        # independent estimates with another generator: recon by MC, log p(x) by importance sampling
        z = q.sample((20000,))
        px = torch.distributions.Bernoulli(logits=model.decode(z)).log_prob(x.expand(20000, 1, 8, 8)).sum((1, 2, 3))
        log_w = px + p.log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
        lpx_ref = torch.logsumexp(log_w, 0) - math.log(len(log_w))
    np.testing.assert_allclose(b.kl_per_dim, kl_ref.numpy(), rtol=1e-5)
    np.testing.assert_allclose(b.kl, float(kl_ref.sum()), rtol=1e-5)
    assert b.recon == pytest.approx(float(px.mean()), abs=4 * float(px.std()) / math.sqrt(4000) + 1e-3)
    assert b.elbo == pytest.approx(b.recon - b.kl)
    assert b.log_px == pytest.approx(float(lpx_ref), abs=0.05)
    assert b.gap == pytest.approx(b.log_px - b.elbo)
    assert b.gap > -0.05  # log p(x) >= ELBO up to Monte Carlo noise
    torch.testing.assert_close(b.reconstruction, torch.sigmoid(model.decode(mu))[0])


def test_elbo_breakdown_is_seeded_and_k1_is_unbiased_for_the_elbo(model):
    x = torch.rand(1, 8, 8).round()
    a = latent.elbo_breakdown(model, x, k=300, seed=5)
    b = latent.elbo_breakdown(model, x, k=300, seed=5)
    assert a.log_px == b.log_px and a.recon == b.recon
    # k = 1: log p(x) estimate is a single importance weight, whose mean over draws is the ELBO
    ests = [latent.elbo_breakdown(model, x, k=1, seed=s).log_px for s in range(400)]
    assert np.mean(ests) == pytest.approx(a.elbo, abs=4 * np.std(ests) / math.sqrt(400) + 0.05)


def test_decode_returns_the_likelihood_mean(model):
    z = torch.randn(4, 3)
    torch.testing.assert_close(latent.decode(model, z), torch.sigmoid(model.decode(z)))
