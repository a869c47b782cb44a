"""Lab estimators (vae_core/lab) against a linear-Gaussian VAE whose answers are known in closed form."""

import math

import numpy as np
import pytest
import torch
from torch.func import functional_call

from vae_core.config import ModelConfig
from vae_core.lab.elbo_anatomy import anatomy
from vae_core.lab.gradients import _Encode, encoder_params, gradient_samples, loo_baseline, variance_curves
from vae_core.lab.importance import (
    draw,
    estimator_curve,
    log_grid,
    log_mean_exp,
    log_mean_exp_se,
    running_ess,
    running_log_mean_exp,
)
from vae_core.lab.linear_gaussian import LinearGaussian
from vae_core.losses import kl_diag_gaussian
from vae_core.model import VAE

D = torch.distributions


@pytest.fixture(scope="module")
def lg():
    return LinearGaussian.random(d=5, k=3, s=0.6, seed=0)


@pytest.fixture(scope="module")
def x(lg):
    return lg.sample_x(1, seed=1)


def _q(model, x):
    with torch.no_grad():
        return model.encode(x)


# ---------- the linear-Gaussian model itself ----------


def test_posterior_and_marginal_satisfy_bayes_rule(lg, x):
    # log p(x) = log p(x|z) + log p(z) - log p(z|x) for every z: ties marginal and posterior together
    mean, cov = lg.posterior(x)
    z = torch.randn(7, lg.k, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lik = D.Normal(z @ lg.W.T + lg.b, lg.s).log_prob(x).sum(-1)
    prior = D.Normal(0.0, 1.0).log_prob(z).sum(-1)
    post = D.MultivariateNormal(mean[0], cov).log_prob(z)
    torch.testing.assert_close(lik + prior - post, lg.log_px(x).expand(7), atol=1e-9, rtol=0)


def test_vae_wrapper_is_the_same_model(lg, x):
    model = lg.vae()
    assert lg.is_exact() and not lg.is_exact(mean_scale=0.9)
    mu, logvar = _q(model, x)
    mean, cov = lg.posterior(x)
    torch.testing.assert_close(mu, mean)
    torch.testing.assert_close(logvar.exp()[0], torch.diagonal(cov))
    z = torch.randn(4, lg.k, dtype=torch.float64)
    with torch.no_grad():
        got = model.log_px_given_z(model.decode(z), x)
    torch.testing.assert_close(got, D.Normal(z @ lg.W.T + lg.b, lg.s).log_prob(x).sum(-1))


def test_kl_to_posterior_matches_torch_distributions(lg, x):
    mu, logvar = _q(lg.vae(mean_scale=0.7, logvar_shift=0.5), x)
    mean, cov = lg.posterior(x)
    ref = D.kl_divergence(D.MultivariateNormal(mu[0], torch.diag(logvar.exp()[0])), D.MultivariateNormal(mean[0], cov))
    torch.testing.assert_close(lg.kl_q_posterior(x, mu, logvar)[0], ref)
    assert float(ref) > 0.1  # the perturbed encoder really is off


def test_expected_log_lik_matches_monte_carlo(lg, x):
    model = lg.vae(mean_scale=0.7, logvar_shift=0.5)
    mu, logvar = _q(model, x)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        f = model.log_px_given_z(model.decode(model.reparameterize(mu, logvar, 200_000, generator=g)), x)[:, 0]
    se = float(f.std()) / math.sqrt(len(f))
    assert abs(float(f.mean()) - float(lg.expected_log_px_given_z(x, mu, logvar))) < 4 * se


def test_non_orthogonal_w_is_never_exact():
    assert not LinearGaussian.random(d=5, k=3, seed=0, orthogonal=False).is_exact()


# ---------- log-space helpers ----------


def test_running_helpers_match_direct_formulas():
    lw = torch.randn(3, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 4
    w = lw.exp().numpy()
    est, ess = running_log_mean_exp(lw).numpy(), running_ess(lw).numpy()
    for n in (1, 2, 17, 50):
        np.testing.assert_allclose(est[:, n - 1], np.log(w[:, :n].mean(1)), rtol=1e-12)
        np.testing.assert_allclose(ess[:, n - 1], w[:, :n].sum(1) ** 2 / (w[:, :n] ** 2).sum(1), rtol=1e-10)
    np.testing.assert_allclose(log_mean_exp(lw).numpy(), np.log(w.mean(1)), rtol=1e-12)


def test_log_grid_spans_one_to_n_max():
    g = log_grid(10_000)
    assert g[0] == 1 and g[-1] == 10_000 and np.all(np.diff(g) > 0) and len(g) >= 15
    assert list(log_grid(1)) == [1]


def test_loo_baseline_is_mean_of_the_others():
    f = torch.tensor([[1.0, 4.0], [2.0, 8.0], [6.0, 0.0]])
    torch.testing.assert_close(loo_baseline(f, 0), torch.tensor([[4.0, 4.0], [3.5, 2.0], [1.5, 6.0]]))


def test_bad_inputs_give_clear_errors(lg, x):
    model = lg.vae()
    with pytest.raises(ValueError, match="proposal"):
        draw(model, x, 5, "uniform")
    with pytest.raises(ValueError, match="one example"):
        draw(model, x.repeat(2, 1), 5)
    with pytest.raises(ValueError, match="repeats"):
        variance_curves(model, x, repeats=1)
    with pytest.raises(ValueError, match="subset"):
        encoder_params(model, "first")


# ---------- importance sampling and the ELBO gap ----------


def test_q_importance_sampling_converges_to_exact_log_px(lg, x):
    model = lg.vae(mean_scale=0.7, logvar_shift=0.5)
    exact = float(lg.log_px(x))
    with torch.no_grad():
        lw = draw(model, x, 50_000, "posterior", generator=torch.Generator().manual_seed(3)).log_w
    est, se = float(log_mean_exp(lw)), log_mean_exp_se(lw)
    assert se < 0.02
    assert abs(est - exact) < 4 * se


def test_gap_converges_to_analytic_kl(lg, x):
    model = lg.vae(mean_scale=0.7, logvar_shift=0.5)
    mu, logvar = _q(model, x)
    kl_post = float(lg.kl_q_posterior(x, mu, logvar))
    exact = float(lg.log_px(x))
    a = anatomy(model, x, k_max=1000, repeats=64, k_ref=50_000, seed=0)
    # ELBO two ways vs the closed form log p(x) - KL(q || p(z|x))
    assert abs(a.elbo_logw - (exact - kl_post)) < 4 * a.elbo_logw_se
    assert abs(a.elbo - (exact - kl_post)) < 4 * a.recon_se
    closed_elbo = float(lg.expected_log_px_given_z(x, mu, logvar) - kl_diag_gaussian(mu, logvar).sum())
    assert abs(closed_elbo - (exact - kl_post)) < 1e-9
    assert abs(a.gap - kl_post) < 4 * (a.recon_se + a.log_px_se)
    # L_K rises toward log p(x): K=1 sits at the ELBO, the large-K gap is a small fraction of the KL
    m, se = a.lk_mean(), a.lk_se()
    assert abs(m[0] - (exact - kl_post)) < 4 * se[0]
    assert exact - m[-1] < 0.1 * kl_post
    assert m[-1] - a.elbo_logw > 0.8 * kl_post
    assert np.all(np.diff(m) > -4 * np.hypot(se[1:], se[:-1]))  # non-decreasing in K, within noise


def test_exact_posterior_has_zero_gap_and_constant_bound(lg, x):
    model = lg.vae()
    exact = float(lg.log_px(x))
    a = anatomy(model, x, k_max=100, repeats=3, k_ref=2000, seed=0)
    # every log w equals log p(x) (1e-6: the VAE keeps log sigma in float32)
    assert abs(a.log_px - exact) < 1e-6 and abs(a.elbo_logw - exact) < 1e-6 and a.log_px_se < 1e-8
    np.testing.assert_allclose(a.lk, exact, atol=1e-6)
    assert np.ptp(a.lk) < 1e-6  # L_K constant in K
    assert abs(a.gap) < 4 * a.recon_se  # closed-form-KL ELBO: MC only


def test_prior_estimator_unbiased_in_linear_space_but_noisier():
    # low-dim (k=2) so that p_hat from prior draws has a measurable variance
    lg2 = LinearGaussian.random(d=3, k=2, s=0.5, seed=4)
    model, x = lg2.vae(mean_scale=0.8, logvar_shift=0.4), lg2.sample_x(1, seed=5)
    exact = float(lg2.log_px(x))
    n, r = 20, 3000
    curves = {p: estimator_curve(model, x, p, n, r, seed=6) for p in ("prior", "posterior")}
    for c in curves.values():
        p_hat = np.exp(c.log_px[:, -1] - exact)  # p_hat / p(x), one per repeat, at N = 20
        assert abs(p_hat.mean() - 1) < 4 * p_hat.std() / math.sqrt(r)
        assert abs(c.mean_linear()[-1] - exact) < 4 * p_hat.std() / math.sqrt(r)
    prior, post = curves["prior"], curves["posterior"]
    assert np.all(prior.spread() > 2 * post.spread())  # at every N of the grid
    assert prior.ess[:, -1].mean() < post.ess[:, -1].mean()
    # its log is biased low (Jensen), visibly so at N = 1
    assert prior.log_px[:, 0].mean() < exact - 4 * prior.log_px[:, 0].std() / math.sqrt(r)


# ---------- gradient estimators ----------


def _analytic_grad(lg, model, x, params):
    """grad_phi of the closed-form mean_b E_q log p(x_b|z), by autograd through the encoder."""
    p = {k: v.clone().requires_grad_() for k, v in params.items()}
    mu, logvar = functional_call(_Encode(model), p, (x,))
    r = lg.expected_log_px_given_z(x, mu, logvar).mean()
    return torch.cat([g.flatten() for g in torch.autograd.grad(r, list(p.values()))])


@pytest.mark.parametrize("estimator,repeats", [("reparam", 4000), ("score", 20000), ("score-loo", 20000)])
def test_gradient_estimators_are_unbiased(lg, estimator, repeats):
    model = lg.vae(mean_scale=0.7, logvar_shift=0.5)
    xb = lg.sample_x(3, seed=7)
    params = encoder_params(model, "all")
    exact = _analytic_grad(lg, model, xb, params)
    ((_, g),) = gradient_samples(model, xb, params, estimator, [2], repeats, generator=torch.Generator().manual_seed(8))
    z = (g.mean(0) - exact) / (g.std(0) / math.sqrt(repeats))
    assert float(z.abs().max()) < 4.5, z


def test_score_function_has_larger_variance(lg):
    model = lg.vae(mean_scale=0.7, logvar_shift=0.5)
    vc = variance_curves(model, lg.sample_x(3, seed=9), subset="all", l_grid=(1, 2, 8), repeats=400, seed=0)
    assert np.all(vc.variance["score"] > 5 * vc.variance["reparam"])
    assert np.isnan(vc.variance["score-loo"][0]) and np.all(vc.variance["score-loo"][1:] < vc.variance["score"][1:])
    # independent samples: variance falls as 1/L (within the noise of 400 repeats)
    ratio = vc.variance["reparam"][0] / vc.variance["reparam"][2]
    assert 5 < ratio < 12.8
    agree = vc.agreement("reparam", "score")
    assert agree["max_abs_z"] < 4.5 and agree["n"] == vc.n_params


@pytest.mark.parametrize("estimator", ["reparam", "score", "score-loo"])
def test_vjp_estimators_equal_direct_autograd(estimator):
    # the J^T v shortcut against plain autograd of each estimator's surrogate, same eps, nonlinear MLP
    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 4, 4), latent_dim=3, hidden=(8, 6))).double()
    xb = (torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(1)) > 0.5).double()
    params = encoder_params(model, "all")
    grid, reps = [2, 3], 4
    got = dict(gradient_samples(model, xb, params, estimator, grid, reps, generator=torch.Generator().manual_seed(2)))
    with torch.no_grad():
        mu0, _ = model.encode(xb)
    eps = torch.randn((reps, 3, *mu0.shape), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for n in grid:
        for r in range(reps):
            p = {k: v.clone().requires_grad_() for k, v in params.items()}
            mu, logvar = functional_call(_Encode(model), p, (xb,))
            e = eps[r, :n]
            if estimator == "reparam":
                z = mu + torch.exp(0.5 * logvar) * e
                surrogate = model.log_px_given_z(model.decode(z), xb).mean()
            else:
                z = (mu + torch.exp(0.5 * logvar) * e).detach()
                f = model.log_px_given_z(model.decode(z), xb).detach()  # (L, B)
                if estimator == "score-loo":
                    f = f - (f.sum(0) - f) / (n - 1)
                logq = D.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
                surrogate = (f * logq).mean()
            ref = torch.cat([t.flatten() for t in torch.autograd.grad(surrogate, list(p.values()))])
            torch.testing.assert_close(got[n][r], ref, atol=1e-10, rtol=1e-8)


def test_last_layer_subset_picks_the_final_linear():
    model = VAE(ModelConfig(input_shape=(6,), latent_dim=2, hidden=(5, 4)))
    p = encoder_params(model, "last")
    assert sorted(p) == ["vae.encoder.4.bias", "vae.encoder.4.weight"] and p["vae.encoder.4.weight"].shape == (4, 4)
