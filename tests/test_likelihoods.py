"""Each decoder log-density against torch.distributions (nats, constants included, summed per example)."""

from __future__ import annotations

import decimal
import os
import subprocess
import sys

import pytest
import torch
from torch import distributions as td

from vae_core import likelihoods as lk
from vae_core.config import BINARIZE, LIKELIHOODS, ModelConfig
from vae_core.data import target_description
from vae_core.model import VAE

# (shape of out/x, event dims): images (B,C,H,W) and L samples of flat data (L,B,D)
SHAPES = [((4, 3, 5, 6), 3), ((7, 4, 10), 1)]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _ref_sum(dist, x, event_dims):
    lp = dist.log_prob(x)
    return lp.flatten(start_dim=lp.dim() - event_dims).sum(-1)


@pytest.mark.parametrize("shape, e", SHAPES)
def test_bernoulli_matches_torch_and_hand_formula(shape, e):
    g = _gen()
    logits = 3 * torch.randn(shape, generator=g, dtype=torch.float64)
    x = torch.bernoulli(torch.full(shape, 0.4, dtype=torch.float64), generator=g)
    ours = lk.bernoulli_log_prob(logits, x, e)
    assert ours.shape == shape[:-e]
    torch.testing.assert_close(ours, _ref_sum(td.Bernoulli(logits=logits), x, e), rtol=0, atol=1e-10)
    # grey-level targets (pytorch/examples convention): x log s(l) + (1-x) log s(-l), by hand
    xg = torch.rand(shape, generator=g, dtype=torch.float64)
    s = torch.sigmoid(logits)
    hand = (xg * s.log() + (1 - xg) * (1 - s).log()).flatten(start_dim=len(shape) - e).sum(-1)
    torch.testing.assert_close(lk.bernoulli_log_prob(logits, xg, e), hand, rtol=1e-9, atol=1e-9)


def test_bernoulli_broadcasts_one_x_over_samples():
    g = _gen(1)
    logits = torch.randn(5, 3, 8, generator=g, dtype=torch.float64)  # (L, B, D)
    x = torch.bernoulli(torch.full((3, 8), 0.5, dtype=torch.float64), generator=g)
    ref = td.Bernoulli(logits=logits).log_prob(x.expand(5, 3, 8)).sum(-1)
    torch.testing.assert_close(lk.bernoulli_log_prob(logits, x, 1), ref)


@pytest.mark.parametrize("shape, e", SHAPES)
def test_continuous_bernoulli_matches_torch(shape, e):
    g = _gen(2)
    logits = 4 * torch.randn(shape, generator=g, dtype=torch.float64)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    ref = _ref_sum(td.ContinuousBernoulli(logits=logits), x, e)
    torch.testing.assert_close(lk.continuous_bernoulli_log_prob(logits, x, e), ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-9), (torch.float32, 2e-6)])
def test_continuous_bernoulli_near_zero_logits_taylor_branch(dtype, tol):
    # both sides of our Taylor cut-off |a| < 1e-3, and exactly 0 where a/tanh(a/2) is 0/0
    a = torch.tensor([0.0, 1e-8, -1e-6, 3e-4, -9.99e-4, 1e-3, -1.001e-3, 2e-3, -5e-3, 0.02], dtype=dtype)
    x = torch.linspace(0.05, 0.95, len(a), dtype=dtype)
    ours = lk.continuous_bernoulli_log_prob(a[:, None], x[:, None], 1)  # (10, 1) -> (10,)
    ref = td.ContinuousBernoulli(logits=a.double()).log_prob(x.double())
    torch.testing.assert_close(ours.double(), ref, rtol=0, atol=tol)
    # log C(lambda) = log 2 + a^2/12 - 7a^4/1440 + O(a^6) is smooth in a: d/da = a/6 - 7a^3/360
    # on both sides of the cut-off.
    # (float32 only gets this to ~5e-5 just above the cut-off: autograd of log a - log tanh(a/2)
    # cancels 1/a against 1/sinh a there; harmless next to the O(1) Bernoulli gradient.)
    a_req = a.clone().requires_grad_(True)
    lk._cb_log_norm(a_req).sum().backward()
    assert torch.isfinite(a_req.grad).all()
    a64 = a.double()
    torch.testing.assert_close(
        a_req.grad.double(), a64 / 6 - 7 * a64**3 / 360, rtol=0, atol=1e-8 if dtype == torch.float64 else 1e-4
    )


@pytest.mark.parametrize("shape, e", SHAPES)
def test_gaussian_matches_torch_normal(shape, e):
    g = _gen(3)
    mean = torch.randn(shape, generator=g, dtype=torch.float64)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    per_pixel = 0.3 * torch.randn(shape[-e:], generator=g, dtype=torch.float64)  # one sigma per pixel
    for log_sigma in (torch.zeros(1, dtype=torch.float64), torch.tensor([-1.2], dtype=torch.float64), per_pixel):
        ref = _ref_sum(td.Normal(mean, log_sigma.exp().expand(shape)), x, e)
        torch.testing.assert_close(lk.gaussian_log_prob(mean, log_sigma, x, e), ref, rtol=1e-10, atol=1e-10)


def _model_case(cfg, seed=4):
    torch.manual_seed(seed)
    m = VAE(cfg).double()
    if cfg.likelihood == "gaussian-learned":
        with torch.no_grad():
            m.log_sigma.normal_(0.0, 0.5)
    g = _gen(seed)
    out = torch.randn(3, 2, *cfg.input_shape, generator=g, dtype=torch.float64)  # (L, B, *shape)
    x = torch.rand(2, *cfg.input_shape, generator=g, dtype=torch.float64)
    return m, out, x


@pytest.mark.parametrize("input_shape", [(1, 4, 5), (12,)])
@pytest.mark.parametrize("sigma_mode", ["shared", "per-pixel"])
def test_model_learned_sigma_wiring(input_shape, sigma_mode):
    cfg = ModelConfig(
        input_shape=input_shape, latent_dim=2, hidden=(), likelihood="gaussian-learned", sigma_mode=sigma_mode
    )
    m, out, x = _model_case(cfg)
    assert m.log_sigma.numel() == (1 if sigma_mode == "shared" else cfg.input_dim)
    scale = m.log_sigma.detach().exp()
    scale = scale.view(input_shape) if sigma_mode == "per-pixel" else scale
    ref = _ref_sum(td.Normal(out, scale.expand_as(out)), x.expand_as(out), len(input_shape))
    torch.testing.assert_close(m.log_px_given_z(out, x), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous-bernoulli", "gaussian"])
def test_model_fixed_likelihood_wiring(likelihood):
    cfg = ModelConfig(input_shape=(1, 4, 5), latent_dim=2, hidden=(), likelihood=likelihood, sigma=0.3)
    m, out, x = _model_case(cfg)
    ref_dist = {
        "bernoulli": lambda: td.Bernoulli(logits=out, validate_args=False),
        "continuous-bernoulli": lambda: td.ContinuousBernoulli(logits=out),
        "gaussian": lambda: td.Normal(out, torch.full_like(out, 0.3)),
    }[likelihood]()
    # rtol 1e-7: the fixed log sigma buffer is computed in float32 before .double()
    torch.testing.assert_close(m.log_px_given_z(out, x), _ref_sum(ref_dist, x.expand_as(out), 3), rtol=1e-7, atol=1e-9)
    # the displayed image is the distribution's mean
    torch.testing.assert_close(m.likelihood.mean(out), ref_dist.mean, rtol=1e-6, atol=1e-6)


# --- the registry: every entry against torch.distributions ---------------------------------------

# decoder output and sigma -> the torch.distributions law each registry entry claims to be. A new
# entry without a row here fails test_every_registry_entry_has_a_reference.
REFERENCE = {
    "bernoulli": lambda out, sigma: td.Bernoulli(logits=out, validate_args=False),  # grey levels too
    "continuous-bernoulli": lambda out, sigma: td.ContinuousBernoulli(logits=out),
    "gaussian": lambda out, sigma: td.Normal(out, sigma.expand_as(out)),
    "gaussian-learned": lambda out, sigma: td.Normal(out, sigma.expand_as(out)),
}


def test_every_registry_entry_has_a_reference_and_config_takes_exactly_the_registry():
    assert set(REFERENCE) == set(lk.REGISTRY)
    assert LIKELIHOODS == lk.NAMES and all(lk.get(n).name == n for n in lk.NAMES)
    with pytest.raises(ValueError, match="likelihood must be one of"):
        lk.get("poisson")


@pytest.mark.parametrize("name", lk.NAMES)
@pytest.mark.parametrize("shape, e", SHAPES)
def test_registry_log_density_and_mean_match_torch_distributions(name, shape, e):
    entry, g = lk.get(name), _gen(5)
    # float64 logits within +-15: torch's continuous-Bernoulli mean is exact there (it clamps lam at
    # float64 eps, |a| ~ 36); large logits are checked against a closed form below
    out = 5 * torch.randn(shape, generator=g, dtype=torch.float64).clamp(-3, 3)
    log_sigma = 0.4 * torch.randn(shape[-e:], generator=g, dtype=torch.float64)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    ref = REFERENCE[name](out, log_sigma.exp())
    torch.testing.assert_close(entry.log_prob(out, log_sigma, x, e), _ref_sum(ref, x, e), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(entry.mean(out), ref.mean, rtol=0, atol=1e-12)


def _cb_mean_decimal(a: float) -> float:
    """lam/(2 lam - 1) + 1/(2 artanh(1 - 2 lam)), lam = sigmoid(a), in 100-digit decimal arithmetic:
    the paper's form, computed independently of the 1/(1 - e^-a) - 1/a that vae_core uses."""
    if a == 0:
        return 0.5  # the limit lam -> 1/2
    with decimal.localcontext() as ctx:
        ctx.prec = 100
        one, a = decimal.Decimal(1), decimal.Decimal(a)
        lam = one / (one + (-a).exp())
        y = one - 2 * lam
        artanh = ((one + y) / (one - y)).ln() / 2
        return float(lam / (2 * lam - one) + one / (2 * artanh))


CB_LOGITS = [
    20.0,
    -30.0,
    30.0,
    -20.0,
    0.0,
    1e-8,
    -1e-6,
    3e-4,
    -0.0099,
    0.0999,
    -0.1001,
    0.5,
    -0.999,
    1.0,
    1.0001,
    -1.5,
    5.0,
    15.9,
    36.0,
    -60.0,
    88.0,
    -100.0,
]


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-14), (torch.float32, 3e-7)])
def test_continuous_bernoulli_mean_is_exact_at_large_and_small_logits(dtype, atol):
    a = torch.tensor(CB_LOGITS, dtype=dtype)
    got = lk.continuous_bernoulli_mean(a).double()
    want = torch.tensor([_cb_mean_decimal(float(v)) for v in a], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=0, atol=atol)
    assert got[0] == pytest.approx(0.95, abs=1e-7) and got[1] == pytest.approx(1 / 30, abs=1e-7)
    # what this replaces: torch's mean clamps lam and is 0.013 off at a = 20 in float32
    assert float(td.ContinuousBernoulli(logits=torch.tensor(20.0)).mean) < 0.94
    # the model shows this mean: decode_mean goes through the registry entry
    model = VAE(ModelConfig(input_shape=(2,), latent_dim=1, hidden=(), likelihood="continuous-bernoulli"))
    with torch.no_grad():
        model.decoder[0].weight.copy_(torch.tensor([[20.0], [-30.0]]))
        model.decoder[0].bias.zero_()
        torch.testing.assert_close(model.decode_mean(torch.ones(1, 1))[0].double(), want[:2], rtol=0, atol=3e-7)


def test_continuous_bernoulli_mean_is_monotone_and_inside_the_unit_interval():
    a = torch.linspace(-50, 50, 20001, dtype=torch.float32)
    m = lk.continuous_bernoulli_mean(a)
    assert ((m > 0) & (m < 1)).all() and (m.diff() >= 0).all()
    assert lk.continuous_bernoulli_mean(torch.tensor([float("inf"), -float("inf")])).tolist() == [1.0, 0.0]


# --- descriptions and binarization --------------------------------------------------------------


@pytest.mark.parametrize("name", lk.NAMES)
def test_every_description_says_which_data_for_every_binarization(name):
    """Binarized targets are described as binarized for every likelihood, grey levels never are."""
    assert set(lk.BINARIZED_DATA) | {"none"} == set(BINARIZE)
    descriptions = {b: target_description(name, b) for b in BINARIZE}
    assert "binarized data (x > 0.5)" in descriptions["fixed"]
    assert "stochastically binarized" in descriptions["dynamic"]
    assert "binarized" not in descriptions["none"]
    assert len(set(descriptions.values())) == 3
    gaussian = name.startswith("gaussian")
    assert all(("constants included" in d) == gaussian for d in descriptions.values())
    with pytest.raises(ValueError, match="binarize must be one of"):
        target_description(name, "sometimes")


def test_exact_descriptions_of_the_old_cases_are_unchanged():
    assert target_description("bernoulli", "dynamic") == (
        "Bernoulli log-likelihood of stochastically binarized data (test set: one seeded draw)"
    )
    assert target_description("gaussian", "none") == (
        "Gaussian log-density (fixed sigma) of real-valued pixels, constants included"
    )
    assert target_description("gaussian", "fixed") == (
        "Gaussian log-density (fixed sigma) of binarized data (x > 0.5), constants included"
    )


def test_binarize_rule():
    """CLI: an explicit --binarize wins, else the default; the Train form offers binarize_options only."""
    assert [lk.get(n).binarize_for(None) for n in lk.NAMES] == ["dynamic", "none", "none", "none"]
    assert lk.get("gaussian").binarize_for("fixed") == "fixed"
    for n in lk.NAMES:
        entry = lk.get(n)
        assert entry.binarize_options[0] == entry.binarize_default
        assert set(entry.binarize_options) <= set(BINARIZE)


def test_registry_imports_without_torch():
    """config validates likelihood names in processes that never load torch (checkpoint headers)."""
    code = "import sys, vae_core.likelihoods, vae_core.config; print('torch' in sys.modules)"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": root},
        cwd=root,
        check=False,
    )
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
