"""Loss math against independent references: torch.distributions, Monte Carlo, closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as td

from vae_core import losses
from vae_core.model import VAE


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _q(mu, logvar):
    return td.Normal(mu, (0.5 * logvar).exp())


# --- closed-form KL --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kl_matches_torch_distributions_per_dim(dtype):
    g = _gen()
    mu = 2 * torch.randn(64, 7, generator=g, dtype=dtype)
    logvar = 2 * torch.randn(64, 7, generator=g, dtype=dtype)
    ours = losses.kl_diag_gaussian(mu, logvar)
    ref = td.kl_divergence(_q(mu, logvar), td.Normal(torch.zeros_like(mu), torch.ones_like(mu)))
    assert ours.shape == (64, 7)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    assert (ours >= 0).all()
    # KL is 0 exactly when q = p
    assert losses.kl_diag_gaussian(torch.zeros(3), torch.zeros(3)).abs().max() == 0


def test_kl_matches_monte_carlo_within_standard_error():
    g = _gen(1)
    mu = torch.tensor([[0.0, 1.5, -0.7], [2.0, -0.3, 0.1]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, -1.0, 0.8], [-2.0, 0.5, 0.0]], dtype=torch.float64)
    n = 40_000
    z = mu + (0.5 * logvar).exp() * torch.randn(n, *mu.shape, generator=g, dtype=torch.float64)
    # per dim: log q(z_d) - log p(z_d), averaged over draws
    ratio = _q(mu, logvar).log_prob(z) - td.Normal(0.0, 1.0).log_prob(z)  # (n, B, k)
    mc, se = ratio.mean(0), ratio.std(0) / math.sqrt(n)
    closed = losses.kl_diag_gaussian(mu, logvar)
    assert ((mc - closed).abs() <= 4 * se + 1e-12).all(), (mc, closed, se)


def test_log_normal_densities_match_torch():
    g = _gen(2)
    z = torch.randn(5, 4, 3, generator=g, dtype=torch.float64)
    mu, logvar = (
        torch.randn(4, 3, generator=g, dtype=torch.float64),
        torch.randn(4, 3, generator=g, dtype=torch.float64),
    )
    ref = td.Independent(_q(mu, logvar), 1).log_prob(z)
    torch.testing.assert_close(losses.log_normal_diag(z, mu, logvar), ref)
    ref0 = td.Independent(td.Normal(torch.zeros(3, dtype=torch.float64), 1.0), 1).log_prob(z)
    torch.testing.assert_close(losses.log_standard_normal(z), ref0)


# --- reparameterization ---------------------------------------------------------------------


def test_reparameterize_has_the_right_mean_and_variance():
    mu = torch.tensor([[1.0, -2.0], [0.0, 3.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, -1.5], [1.0, 0.3]], dtype=torch.float64)
    n = 50_000
    z = VAE.reparameterize(mu, logvar, n, generator=_gen(3))  # (n, B, k)
    assert z.shape == (n, 2, 2)
    var = logvar.exp()
    # SE of the mean is sigma/sqrt(n); of the sample variance about var*sqrt(2/n)
    assert ((z.mean(0) - mu).abs() <= 4 * var.sqrt() / math.sqrt(n)).all()
    assert ((z.var(0) - var).abs() <= 4 * var * math.sqrt(2 / n)).all()


def test_reparameterize_is_mu_plus_sigma_eps_and_gradients_flow():
    mu = torch.tensor([[0.5, -1.0, 2.0]], requires_grad=True)
    logvar = torch.tensor([[0.2, -0.4, 1.0]], requires_grad=True)
    z = VAE.reparameterize(mu, logvar, 4, generator=_gen(4))
    eps = torch.randn(4, 1, 3, generator=_gen(4))  # the same draws, replayed
    torch.testing.assert_close(z, mu + (0.5 * logvar).exp() * eps)
    (z**2).sum().backward()
    # d/dmu sum_l z_l^2 = 2 sum_l z_l ;  d/dlogvar = sum_l 2 z_l * 0.5 sigma eps_l
    sigma = (0.5 * logvar).exp().detach()
    torch.testing.assert_close(mu.grad, 2 * z.detach().sum(0))
    torch.testing.assert_close(logvar.grad, (z.detach() * sigma * eps).sum(0))


# --- free bits, beta warm-up ----------------------------------------------------------------


def test_free_bits_floors_the_batch_mean_kl_per_dim():
    kl = torch.tensor([[0.0, 0.4, 1.0, 3.0], [0.1, 0.6, 1.0, 1.0]], requires_grad=True)  # batch means .05 .5 1 2
    assert losses.free_bits_kl(kl, 0.0).item() == pytest.approx(3.55)
    out = losses.free_bits_kl(kl, 0.75)
    assert out.item() == pytest.approx(0.75 + 0.75 + 1.0 + 2.0)
    out.backward()
    # below the floor a dim gets no KL gradient; above it d/dKL_bd = 1/B
    torch.testing.assert_close(kl.grad, torch.tensor([[0.0, 0.0, 0.5, 0.5]] * 2))


@pytest.mark.parametrize("progress, expected", [(0.0, 0.0), (0.5, 0.25), (1.0, 0.5), (2.0, 1.0), (7.0, 2.0)])
def test_beta_warmup_is_linear_then_flat(progress, expected):
    assert losses.beta_at(2.0, 4.0, progress) == pytest.approx(expected)


def test_beta_without_warmup_is_constant():
    assert losses.beta_at(0.3, 0.0, 0.0) == 0.3 and losses.beta_at(0.3, 0.0, 5.0) == 0.3


# --- MMD ------------------------------------------------------------------------------------


def _expected_kernel(delta2: float, v: float, d: int) -> float:
    """E exp(-|u|^2/d) for u ~ N(delta, v I_d): (1 + 2v/d)^(-d/2) exp(-|delta|^2 / (d + 2v))."""
    return (1 + 2 * v / d) ** (-d / 2) * math.exp(-delta2 / (d + 2 * v))


def test_gaussian_kernel_by_hand():
    a = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    b = torch.tensor([[1.0, 0.0]])
    torch.testing.assert_close(losses.gaussian_kernel(a, b), torch.tensor([[math.exp(-1 / 2)], [math.exp(-4 / 2)]]))


def _mmd_reps(shift, scale, reps=40, n=300, d=3, seed=5):
    g = _gen(seed)
    vals = []
    for _ in range(reps):
        a = torch.randn(n, d, generator=g, dtype=torch.float64)
        b = shift + scale * torch.randn(n, d, generator=g, dtype=torch.float64)
        vals.append(float(losses.mmd(a, b)))
    v = torch.tensor(vals, dtype=torch.float64)
    return v.mean().item(), (v.std() / math.sqrt(reps)).item()


def test_mmd_is_unbiased_zero_for_the_same_distribution():
    mean, se = _mmd_reps(shift=0.0, scale=1.0)
    assert abs(mean) <= 4 * se and se < 2e-3


def test_mmd_matches_closed_form_for_shifted_gaussians():
    d, shift, scale = 3, 0.8, 0.5
    mean, se = _mmd_reps(shift=shift, scale=scale, d=d)
    # MMD^2 = E k(a,a') + E k(b,b') - 2 E k(a,b), each a Gaussian integral
    closed = (
        _expected_kernel(0.0, 2.0, d)
        + _expected_kernel(0.0, 2 * scale**2, d)
        - 2 * _expected_kernel(d * shift**2, 1 + scale**2, d)
    )
    assert closed > 0.1
    assert abs(mean - closed) <= 4 * se, (mean, closed, se)


# --- ELBO terms and the training loss -------------------------------------------------------


def test_elbo_terms_recon_matches_closed_form_for_a_linear_gaussian(linear_gaussian):
    model, w, b, s = linear_gaussian(d=5, k=2, s=0.6)
    x = torch.randn(3, 5, generator=_gen(6), dtype=torch.float64)
    torch.manual_seed(0)
    with torch.no_grad():
        t = losses.elbo_terms(model, x, mc_samples=20_000)
    mu, logvar = model.encode(x)
    mu, var = mu.detach(), logvar.detach().exp()
    # E_q log N(x; Wz + b, s^2 I) = -D/2 log 2 pi s^2 - (|x - W mu - b|^2 + tr(W diag(var) W^T)) / 2s^2
    sq = (x - mu @ w.T - b).pow(2).sum(-1) + (var[:, None, :] * w.pow(2)).sum((-1, -2))
    closed = -2.5 * math.log(2 * math.pi * s**2) - sq / (2 * s**2)
    # MC error: sd of log p(x|z) over draws / sqrt(L), bounded well by 0.05 here
    torch.testing.assert_close(t.recon, closed, rtol=0, atol=0.05)
    torch.testing.assert_close(t.kl, losses.kl_diag_gaussian(mu, logvar.detach()).sum(-1))
    torch.testing.assert_close(t.elbo, t.recon - t.kl)
    assert t.z.shape == (20_000, 3, 2) and t.kl_per_dim.shape == (3, 2)


def _draws(model, x, seed, n):
    """Replay the global-RNG draws elbo_terms makes: eps (n, B, k) after torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    mu, logvar = model.encode(x)
    return mu, logvar, mu + (0.5 * logvar).exp() * torch.randn(n, *mu.shape, dtype=mu.dtype)


def _bern_model():
    from vae_core.config import ModelConfig

    torch.manual_seed(0)
    return VAE(ModelConfig(input_shape=(12,), latent_dim=3, hidden=(8,))).double()


@pytest.mark.parametrize("beta, free_bits", [(1.0, 0.0), (0.3, 0.0), (1.0, 0.5)])
def test_elbo_objective_is_minus_recon_plus_beta_kl(beta, free_bits):
    model = _bern_model()
    x = torch.bernoulli(torch.full((6, 12), 0.3, dtype=torch.float64), generator=_gen(7))
    torch.manual_seed(11)
    loss, t = losses.training_loss(
        model, x, objective="elbo", beta=beta, free_bits=free_bits, mc_samples=2, iw_samples=1, mmd_weight=0.0
    )
    mu, logvar, z = _draws(model, x, 11, 2)
    recon = td.Bernoulli(logits=model.decode(z)).log_prob(x).sum(-1).mean(0)  # (B,)
    kl_d = td.kl_divergence(_q(mu, logvar), td.Normal(0.0, 1.0)).mean(0)  # (k,) batch mean
    kl = kl_d.clamp(min=free_bits).sum()
    torch.testing.assert_close(loss, -(recon.mean() - beta * kl))
    torch.testing.assert_close(t.recon, recon)


def test_iwae_objective_is_minus_the_k_sample_bound():
    model = _bern_model()
    x = torch.bernoulli(torch.full((4, 12), 0.5, dtype=torch.float64), generator=_gen(8))
    torch.manual_seed(12)
    loss, _ = losses.training_loss(
        model, x, objective="iwae", beta=1.0, free_bits=0.0, mc_samples=1, iw_samples=5, mmd_weight=0.0
    )
    mu, logvar, z = _draws(model, x, 12, 5)
    log_w = (
        td.Bernoulli(logits=model.decode(z)).log_prob(x).sum(-1)
        + td.Normal(0.0, 1.0).log_prob(z).sum(-1)
        - _q(mu, logvar).log_prob(z).sum(-1)
    )  # (K, B)
    torch.testing.assert_close(loss, -(log_w.logsumexp(0) - math.log(5)).mean())


def test_ae_objective_decodes_the_mean_and_mmd_objective_adds_mmd():
    model = _bern_model()
    x = torch.bernoulli(torch.full((8, 12), 0.5, dtype=torch.float64), generator=_gen(9))
    loss, _ = losses.training_loss(
        model, x, objective="ae", beta=1.0, free_bits=0.0, mc_samples=1, iw_samples=1, mmd_weight=0.0
    )
    mu, _ = model.encode(x)
    torch.testing.assert_close(loss, -td.Bernoulli(logits=model.decode(mu)).log_prob(x).sum(-1).mean())
    torch.manual_seed(13)
    loss, _ = losses.training_loss(
        model, x, objective="mmd", beta=1.0, free_bits=0.0, mc_samples=1, iw_samples=1, mmd_weight=10.0
    )
    _, _, z = _draws(model, x, 13, 1)
    prior = torch.randn_like(z[0])  # drawn right after z
    recon = td.Bernoulli(logits=model.decode(z[0])).log_prob(x).sum(-1).mean()
    torch.testing.assert_close(loss, -recon + 10.0 * losses.mmd(z[0], prior))


@pytest.mark.parametrize(
    "objective, options, refused",
    [
        ("elbo", {"beta": 4.0, "warmup_epochs": 2.0, "free_bits": 0.5, "mc_samples": 3}, None),
        ("iwae", {"iw_samples": 50, "mmd_weight": 3.0}, None),
        ("iwae", {"beta": 4.0, "mc_samples": 3}, "beta=4, mc_samples=3"),
        ("mmd", {"mc_samples": 3, "mmd_weight": 10.0}, None),
        ("mmd", {"free_bits": 0.5}, "free_bits=0.5"),
        ("mmd", {"warmup_epochs": 1.0}, "warmup_epochs=1"),
        ("ae", {"beta": 0.0}, "beta=0"),
    ],
)
def test_objectives_refuse_options_they_would_ignore(objective, options, refused):
    """training_loss reads beta/free bits (and train.fit the warm-up) for elbo only, mc_samples for
    elbo and mmd: setting one for another objective is an error, not a silent no-op."""
    from vae_core.config import ConfigError, TrainConfig

    cfg = TrainConfig(objective=objective, **options)
    if refused is None:
        losses.check_objective_options(cfg)
    else:
        with pytest.raises(ConfigError, match=f"objective '{objective}' does not use {refused}: leave"):
            losses.check_objective_options(cfg)
