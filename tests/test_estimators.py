"""Importance-sampled bounds (Burda et al. 2016) against a linear-Gaussian VAE whose log p(x),
posterior and ELBO are closed-form, and against torch.distributions for the per-draw weights."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import distributions as td

from vae_core import estimators as est
from vae_core.config import ModelConfig
from vae_core.losses import kl_diag_gaussian
from vae_core.model import VAE


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _closed_forms(model, w, b, s, x):
    """Exact log p(x) (B,), ELBO (B,) and KL(q(z|x) || p(z|x)) (B,) of the linear-Gaussian model."""
    d, k = w.shape
    eye_k = torch.eye(k, dtype=w.dtype)
    log_px = td.MultivariateNormal(b, w @ w.T + s**2 * torch.eye(d, dtype=w.dtype)).log_prob(x)
    with torch.no_grad():
        mu, logvar = model.encode(x)
    var = logvar.exp()
    # E_q log N(x; Wz+b, s^2 I) - KL(q || N(0, I))
    sq = (x - mu @ w.T - b).pow(2).sum(-1) + (var[:, None, :] * w.pow(2)).sum((-1, -2))
    recon = -d / 2 * math.log(2 * math.pi * s**2) - sq / (2 * s**2)
    kl_prior = td.kl_divergence(td.Normal(mu, var.sqrt()), td.Normal(0.0, 1.0)).sum(-1)
    cov = torch.linalg.inv(eye_k + w.T @ w / s**2)  # p(z|x) = N(cov W^T (x-b) / s^2, cov)
    post = td.MultivariateNormal((x - b) @ (cov @ w.T / s**2).T, cov)
    kl_post = td.kl_divergence(td.MultivariateNormal(mu, torch.diag_embed(var)), post)
    return log_px, recon - kl_prior, kl_post


def _bernoulli_case(seed, n, p, hidden=7):
    """A small untrained Bernoulli MLP VAE (float64) and n binary 10-pixel examples."""
    torch.manual_seed(seed)
    model = VAE(ModelConfig(input_shape=(10,), latent_dim=3, hidden=(hidden,))).double()
    return model, torch.bernoulli(torch.full((n, 10), p, dtype=torch.float64), generator=_gen(seed + 100))


def _data(w, b, s, n=20, seed=5):
    g = _gen(seed)
    return (
        b
        + torch.randn(n, w.shape[1], generator=g, dtype=w.dtype) @ w.T
        + s * torch.randn(n, w.shape[0], generator=g, dtype=w.dtype)
    )


def test_closed_forms_agree_log_px_equals_elbo_plus_posterior_kl(linear_gaussian):
    # sanity of the reference itself: log p(x) = ELBO + KL(q || p(z|x)), all three computed separately
    model, w, b, s = linear_gaussian()
    lp, elbo, kl_post = _closed_forms(model, w, b, s, _data(w, b, s))
    torch.testing.assert_close(lp, elbo + kl_post)
    assert (kl_post > 0.01).all()  # q is deliberately not the posterior


def test_log_weights_match_torch_distributions_for_the_same_draws():
    model, x = _bernoulli_case(0, 4, 0.4)
    with torch.no_grad():
        log_w, t = est.log_importance_weights(model, x, 6, generator=_gen(2), return_terms=True)
        mu, logvar = model.encode(x)
        z = mu + (0.5 * logvar).exp() * torch.randn(6, 4, 3, generator=_gen(2), dtype=torch.float64)
        q = td.Independent(td.Normal(mu, (0.5 * logvar).exp()), 1)
        log_lik = td.Bernoulli(logits=model.decode(z)).log_prob(x).sum(-1)
        ref = log_lik + td.Independent(td.Normal(torch.zeros_like(mu), 1.0), 1).log_prob(z) - q.log_prob(z)
    assert log_w.shape == (6, 4)
    torch.testing.assert_close(t.z, z)
    torch.testing.assert_close(log_w, ref)
    torch.testing.assert_close(t.recon, log_lik.mean(0))
    torch.testing.assert_close(t.kl, kl_diag_gaussian(mu, logvar).sum(-1))


def test_k1_bound_is_the_single_draw_elbo_exactly():
    model, x = _bernoulli_case(1, 5, 0.5)
    with torch.no_grad():
        log_w, t = est.log_importance_weights(model, x, 1, generator=_gen(4), return_terms=True)
        z = t.z[0]
        # recon - KL of that draw: log p(x|z) - (log q(z|x) - log p(z))
        kl_draw = (td.Normal(t.mu, (0.5 * t.logvar).exp()).log_prob(z) - td.Normal(0.0, 1.0).log_prob(z)).sum(-1)
    torch.testing.assert_close(est.iwae_bound(log_w), t.recon - kl_draw, rtol=0, atol=1e-12)


def test_k1_bound_averages_to_the_closed_form_elbo(linear_gaussian):
    model, w, b, s = linear_gaussian()
    x = _data(w, b, s, n=4)
    _, elbo, _ = _closed_forms(model, w, b, s, x)
    n = 20_000
    with torch.no_grad():
        l1 = est.log_importance_weights(model, x, n, generator=_gen(6))  # n independent K=1 bounds
    mean, se = l1.mean(0), l1.std(0) / math.sqrt(n)
    assert ((mean - elbo).abs() <= 4 * se).all(), (mean, elbo, se)


def test_iwae_bound_increases_with_k_and_stays_below_log_px(linear_gaussian):
    model, w, b, s = linear_gaussian()
    x = _data(w, b, s, n=8)
    lp, elbo, _ = _closed_forms(model, w, b, s, x)
    reps = 400
    means, ses = [], []
    with torch.no_grad():
        for k in (1, 3, 10, 50):
            lw = est.log_importance_weights(model, x, k * reps, generator=_gen(k)).view(reps, k, -1)
            bounds = torch.logsumexp(lw, 1) - math.log(k)  # (reps, B): independent L_K draws
            means.append(bounds.mean().item())
            ses.append(bounds.mean(1).std().item() / math.sqrt(reps))
    target = lp.mean().item()
    assert abs(means[0] - elbo.mean().item()) <= 4 * ses[0]  # L_1 is the ELBO in expectation
    for (m_lo, s_lo), (m_hi, s_hi) in zip(zip(means, ses), zip(means[1:], ses[1:])):
        assert m_hi > m_lo - 3 * math.hypot(s_lo, s_hi), means
    assert means[-1] - means[0] > 0.1  # the bound really tightens here (KL(q||post) ~ 0.26 nats)
    assert means[-1] <= target + 4 * ses[-1] and target - means[-1] < 0.05, (means, target)


def test_iwae_beats_elbo_on_average_for_a_nonlinear_decoder():
    model, x = _bernoulli_case(2, 16, 0.3, hidden=16)
    with torch.no_grad():
        elbo, iwae = [], []
        for seed in range(30):
            lw, t = est.log_importance_weights(model, x, 20, generator=_gen(seed), return_terms=True)
            elbo.append(t.elbo.mean())
            iwae.append(est.iwae_bound(lw).mean())
    gap = torch.stack(iwae) - torch.stack(elbo)
    assert gap.mean() > 4 * gap.std() / math.sqrt(len(gap)) and gap.mean() > 0


def test_log_px_converges_to_the_exact_marginal(linear_gaussian):
    model, w, b, s = linear_gaussian()
    x = _data(w, b, s, n=20)
    lp, _, _ = _closed_forms(model, w, b, s, x)
    ours = est.log_px(model, x, k=5000, generator=_gen(8))
    assert ours.shape == (20,)
    assert (ours - lp).abs().max() < 0.1 and abs((ours - lp).mean()) < 0.02  # measured 0.03, 1e-4


def test_log_px_chunking_over_examples_and_samples(monkeypatch):
    """Chunks of K must combine as one logsumexp over all K, and examples keep their order."""
    calls = []

    def fake_log_w(model, xb, k, generator=None, return_terms=False):
        calls.append((len(xb), k))
        # chunk-dependent weights: log w = x_b[0] + (number of calls so far); recon: their mean
        lw = xb[:, 0][None].expand(k, -1) + float(len(calls))
        return (lw, SimpleNamespace(recon=lw.mean(0))) if return_terms else lw

    monkeypatch.setattr(est, "log_importance_weights", fake_log_w)
    model = VAE(ModelConfig(input_shape=(5,), latent_dim=2, hidden=()))
    x = torch.arange(600, dtype=torch.float64)[:, None].expand(600, 5).contiguous() / 600
    out = est.log_px(model, x, k=25_000, batch_size=300)  # 3e7 / (5 * 300) = 20000 samples per pass
    assert calls == [(300, 20_000), (300, 5_000), (300, 20_000), (300, 5_000)]
    # batch 1 saw call offsets 1, 2; batch 2 saw 3, 4: log((20000 e^c1 + 5000 e^c2) / 25000)
    expect = torch.cat(
        [
            x[:300, 0] + math.log((20_000 * math.e**1 + 5_000 * math.e**2) / 25_000),
            x[300:, 0] + math.log((20_000 * math.e**3 + 5_000 * math.e**4) / 25_000),
        ]
    )
    torch.testing.assert_close(out, expect)
    # the recon term of the same draws is their mean over all K, whatever the passes
    calls.clear()
    lp, recon = est.importance_terms(model, x[:300], 25_000, budget_floats=300 * 5 * 20_000)
    assert calls == [(300, 20_000), (300, 5_000)]
    torch.testing.assert_close(recon, x[:300, 0] + (20_000 * 1 + 5_000 * 2) / 25_000)
    torch.testing.assert_close(lp, expect[:300])


def test_active_units_counts_dims_by_variance_of_mu():
    g = _gen(9)
    scale = torch.tensor([1.0, 0.3, 0.05, 0.0, 2.0], dtype=torch.float64)  # variances 1, .09, .0025, 0, 4
    mu = torch.randn(2000, 5, generator=g, dtype=torch.float64) * scale + 3.0
    n, var = est.active_units(mu)
    assert n == 3
    torch.testing.assert_close(var, torch.var(mu, 0, unbiased=True))
    assert est.active_units(mu[:1])[0] == 0  # one example: no variance, no active units


def test_evaluate_matches_closed_forms(linear_gaussian):
    model, w, b, s = linear_gaussian()
    x = _data(w, b, s, n=30)
    lp, elbo, kl_post = _closed_forms(model, w, b, s, x)
    r = est.evaluate(model, x, iw_samples=3000, batch_size=7, seed=0)
    assert set(r) >= {
        "elbo",
        "recon",
        "kl",
        "kl_per_dim",
        "active_units",
        "n",
        "iw_samples",
        "log_likelihood",
        "gap_kl_q_posterior",
    }
    assert r["n"] == 30 and r["iw_samples"] == 3000 and len(r["kl_per_dim"]) == 2
    assert r["elbo"] == pytest.approx(r["recon"] - r["kl"], abs=1e-9)
    assert sum(r["kl_per_dim"]) == pytest.approx(r["kl"], abs=1e-9)
    with torch.no_grad():
        mu, logvar = model.encode(x)
    assert r["kl"] == pytest.approx(kl_diag_gaussian(mu, logvar).sum(-1).mean().item(), abs=1e-9)
    assert r["elbo"] == pytest.approx(elbo.mean().item(), abs=0.02)
    assert r["log_likelihood"] == pytest.approx(lp.mean().item(), abs=0.01)
    assert r["gap_kl_q_posterior"] == pytest.approx(kl_post.mean().item(), abs=0.03)
    # batch size changes nothing deterministic
    r2 = est.evaluate(model, x, iw_samples=0, batch_size=500)
    assert r2["kl"] == pytest.approx(r["kl"], abs=1e-12) and "log_likelihood" not in r2


def test_evaluate_takes_the_elbo_from_the_same_draws_as_log_px():
    """The printed gap log p(x) - ELBO comes from one set of K draws (as latent.elbo_breakdown), so
    it no longer carries the noise of a separate one-draw ELBO."""
    model, x = _bernoulli_case(3, 40, 0.3)
    r = est.evaluate(model, x, iw_samples=200, seed=4)
    with torch.no_grad():  # by hand: one batch, one pass, the same generator
        lw, t = est.log_importance_weights(model, x, 200, generator=_gen(4), return_terms=True)
    lp = est.iwae_bound(lw)
    assert r["recon"] == pytest.approx(float(t.recon.mean()), abs=1e-9)
    assert r["elbo"] == pytest.approx(float((t.recon - t.kl).mean()), abs=1e-9)
    assert r["log_likelihood"] == pytest.approx(float(lp.mean()), abs=1e-9)
    assert r["gap_kl_q_posterior"] == pytest.approx(float((lp - t.recon + t.kl).mean()), abs=1e-9)
    # the same K draws in passes of any size give the same numbers
    split = est.evaluate(model, x, iw_samples=200, seed=4, budget_floats=40 * 10 * 30)
    for key in ("elbo", "log_likelihood", "gap_kl_q_posterior"):
        assert split[key] == pytest.approx(r[key], abs=1e-9)
    with pytest.raises(ValueError, match="mc_samples applies only when iw_samples is 0"):
        est.evaluate(model, x, iw_samples=10, mc_samples=2)


def test_evaluate_gap_varies_less_across_seeds_than_with_a_separate_elbo_draw(linear_gaussian):
    model, w, b, s = linear_gaussian()
    x = _data(w, b, s, n=50)
    _, _, kl_post = _closed_forms(model, w, b, s, x)
    gaps = torch.tensor([est.evaluate(model, x, iw_samples=100, seed=i)["gap_kl_q_posterior"] for i in range(8)])
    # the old way: log p(x) from K draws minus an ELBO from one other draw
    old = torch.tensor(
        [
            float(est.log_px(model, x, k=100, generator=_gen(i)).mean()) - est.evaluate(model, x, seed=100 + i)["elbo"]
            for i in range(8)
        ]
    )
    assert gaps.std() < old.std() / 2, (gaps.std(), old.std())  # measured 0.016 against 0.24
    assert abs(float(gaps.mean()) - float(kl_post.mean())) < 0.1
