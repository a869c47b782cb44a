"""Lab math for pages 4-6 against independent references: closed forms, numerical integrals,
torch.distributions, permutation tests, brute force. One tiny real sweep checks active units vs beta."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_dataset
from vae_core.lab.aggregate import aggregate_kl, hole_scores, log_aggregate_density, marginal_kl, mmd_to_prior
from vae_core.lab.alignment import aligned_maps, procrustes_align
from vae_core.lab.compare import (
    fit_code_gaussian,
    knn_label_agreement,
    nearest_distance,
    reconstruction_error,
    sample_gaussian,
)
from vae_core.lab.sweeps import (
    beta_runs,
    collapse_runs,
    default_runs,
    effective_beta,
    is_cached,
    objective_runs,
    summarize,
    train_runs,
)
from vae_core.losses import kl_diag_gaussian, mmd
from vae_core.model import VAE
from vae_core.projection import fit_pca

# --- MMD -------------------------------------------------------------------------------------


def _mmd2_gaussians(m1, s1, m2, s2, d):
    """Closed-form MMD^2 between N(m1, s1^2 I) and N(m2, s2^2 I) for k(a,b) = exp(-|a-b|^2 / d).

    E exp(-|u|^2/g) for u ~ N(m, s^2 I_d) = (1 + 2 s^2/g)^(-d/2) exp(-|m|^2 / (g + 2 s^2)).
    """

    def ek(dm2, var):
        return (1 + 2 * var / d) ** (-d / 2) * math.exp(-dm2 / (d + 2 * var))

    return ek(0.0, 2 * s1**2) + ek(0.0, 2 * s2**2) - 2 * ek(float(((m1 - m2) ** 2).sum()), s1**2 + s2**2)


def test_mmd_matches_closed_form_for_two_gaussians():
    d, n, g = 4, 1500, torch.Generator().manual_seed(0)
    m2 = torch.tensor([0.8, 0.0, 0.0, 0.0])
    ests = [
        float(
            mmd(
                torch.randn(n, d, generator=g, dtype=torch.float64),
                m2 + 1.3 * torch.randn(n, d, generator=g, dtype=torch.float64),
            )
        )
        for _ in range(8)
    ]
    exact = _mmd2_gaussians(torch.zeros(d), 1.0, m2, 1.3, d)
    se = np.std(ests, ddof=1) / math.sqrt(len(ests))
    assert exact > 0.02
    assert abs(np.mean(ests) - exact) < 4 * se + 1e-3, (np.mean(ests), exact, se)


def test_mmd_to_prior_near_zero_for_prior_samples_and_permutation_reference():
    g = torch.Generator().manual_seed(1)
    z_same = torch.randn(800, 8, generator=g, dtype=torch.float64)
    z_shift = torch.randn(800, 8, generator=g, dtype=torch.float64) * 0.5 + 0.3
    same, shifted = mmd_to_prior(z_same, g), mmd_to_prior(z_shift, g)
    # permutation reference: the null spread of the statistic when both samples share one law
    pool = torch.cat([z_same, torch.randn(800, 8, generator=g, dtype=torch.float64)])
    null = []
    for _ in range(30):
        p = torch.randperm(len(pool), generator=g)
        null.append(float(mmd(pool[p[:800]], pool[p[800:]])))
    q = np.quantile(np.abs(null), 0.99)
    assert abs(same) < max(3 * q, 1e-3)
    assert shifted > 10 * q and shifted > 0.05


# --- KL(Q || p) ------------------------------------------------------------------------------


def test_aggregate_kl_single_gaussian_equals_closed_form():
    mu = torch.tensor([[0.7, -1.2, 0.3]])
    logvar = torch.tensor([[-0.5, 0.4, -1.5]])
    r = aggregate_kl(mu, logvar, per_x=20000, generator=torch.Generator().manual_seed(0))
    exact = float(kl_diag_gaussian(mu, logvar).sum())
    assert abs(r.kl_q_p - exact) < 4 * r.kl_q_p_se + 1e-6
    assert abs(r.mutual_info) < 1e-9  # one component: Q = q, no information about an index
    assert r.mean_kl == pytest.approx(exact, rel=1e-6)


def test_aggregate_kl_1d_mixture_matches_numerical_integral():
    mu = torch.tensor([[-2.0], [0.5], [3.0]])
    logvar = torch.tensor([[-1.0], [0.0], [-2.0]]).double()
    r = aggregate_kl(mu.double(), logvar, per_x=20000, generator=torch.Generator().manual_seed(2))
    z = np.linspace(-15, 15, 200001)
    s = np.exp(0.5 * logvar.numpy().ravel())
    comp = np.exp(-0.5 * ((z[:, None] - mu.numpy().ravel()) / s) ** 2) / (s * math.sqrt(2 * math.pi))
    q = comp.mean(1)
    p = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    exact = np.trapezoid(q * (np.log(q + 1e-300) - np.log(p)), z)
    assert abs(r.kl_q_p - exact) < 4 * r.kl_q_p_se + 1e-3, (r.kl_q_p, exact, r.kl_q_p_se)
    # ELBO surgery: mean KL = I(n; z) + KL(Q || p), and I <= log N
    assert r.mutual_info + r.kl_q_p == pytest.approx(r.mean_kl, abs=5 * r.kl_q_p_se + 0.02)
    assert 0 < r.mutual_info <= math.log(3) + 1e-9


def test_marginal_kl_matches_one_dimensional_aggregate_kl():
    g = torch.Generator().manual_seed(5)
    mu = torch.randn(40, 3, generator=g).double() * torch.tensor([0.5, 1.0, 2.0]).double() + 0.3
    logvar = torch.randn(40, 3, generator=g).double() * 0.3 - 1.0
    per_dim = marginal_kl(mu, logvar, per_x=500, generator=g, chunk=1000)
    for d in range(3):
        ref = aggregate_kl(mu[:, d : d + 1], logvar[:, d : d + 1], per_x=500, generator=g)
        assert abs(float(per_dim[d]) - ref.kl_q_p) < 5 * ref.kl_q_p_se + 1e-3, (d, float(per_dim[d]), ref)


def test_log_aggregate_density_matches_torch_mixture():
    g = torch.Generator().manual_seed(3)
    mu, logvar = torch.randn(700, 5, generator=g).double(), torch.randn(700, 5, generator=g).double() * 0.5
    z = torch.randn(1100, 5, generator=g).double() * 1.5
    mix = MixtureSameFamily(
        Categorical(logits=torch.zeros(700, dtype=torch.float64)), Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    )
    torch.testing.assert_close(log_aggregate_density(z, mu, logvar, chunk=300), mix.log_prob(z))
    torch.testing.assert_close(hole_scores(z, mu, logvar), mix.log_prob(z) - Normal(0.0, 1.0).log_prob(z).sum(-1))


# --- alignment -------------------------------------------------------------------------------


@pytest.mark.parametrize("reflect", [False, True])
def test_procrustes_recovers_known_rotation(reflect):
    g = np.random.default_rng(0)
    target = g.normal(size=(200, 2)) * [3.0, 1.0]
    th = 0.9
    rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    if reflect:
        rot = rot @ np.diag([1.0, -1.0])
    source = target @ rot + [5.0, -2.0]
    al = procrustes_align(source, target)
    np.testing.assert_allclose(al.rotation, rot.T, atol=1e-10)  # source @ rot.T = target (+ shift)
    np.testing.assert_allclose(al.apply(source), target, atol=1e-10)
    assert al.residual < 1e-10


def test_pca_matches_sklearn_and_aligned_maps_undo_a_latent_rotation():
    from sklearn.decomposition import PCA as SkPCA

    g = np.random.default_rng(1)
    mu = g.normal(size=(300, 6)) * [4, 2, 1, 0.5, 0.2, 0.1]
    p = fit_pca(mu)
    sk = SkPCA(2).fit(mu)
    np.testing.assert_allclose(np.abs(p.transform(mu)), np.abs(sk.transform(mu)), atol=1e-8)
    np.testing.assert_allclose(p.explained, sk.explained_variance_ratio_, atol=1e-10)
    q, _ = np.linalg.qr(g.normal(size=(6, 6)))  # a second "model" whose latent space is rotated
    maps = aligned_maps({"a": mu, "b": mu @ q}, reference="a")
    np.testing.assert_allclose(maps["b"].project(mu @ q), maps["a"].project(mu), atol=1e-8)


# --- AE vs VAE helpers -----------------------------------------------------------------------


def test_code_gaussian_round_trip_and_nearest_distance_brute_force():
    g = torch.Generator().manual_seed(4)
    a = torch.tensor([[2.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.5, 3.0]])
    codes = (
        torch.randn(20000, 3, generator=g, dtype=torch.float64) @ a.double() + torch.tensor([1.0, -2.0, 0.5]).double()
    )
    m, c = fit_code_gaussian(codes)
    z = sample_gaussian(m, c, 20000, generator=g)
    torch.testing.assert_close(z.mean(0), m, atol=0.06, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), c, atol=0.15, rtol=0.03)
    torch.testing.assert_close(c, (a.T @ a).double(), atol=0.2, rtol=0.03)
    x, ref = torch.rand(7, 1, 4, 4, generator=g), torch.rand(11, 1, 4, 4, generator=g)
    brute = torch.tensor([min(float(((xi - r) ** 2).mean().sqrt()) for r in ref) for xi in x])
    torch.testing.assert_close(nearest_distance(x, ref, chunk=3), brute)


def test_knn_label_agreement_by_hand():
    ref = torch.tensor([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    # near 0: neighbours labelled 0, 0, 1 -> 2/3 agree; near 5: 2, 2, 2 -> 1
    assert knn_label_agreement(torch.tensor([[0.05], [5.1]]), ref, labels, k=3) == pytest.approx((2 / 3 + 1) / 2)


def test_reconstruction_error_against_bce_and_mse():
    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 4, 4), latent_dim=2, hidden=(8,))).eval()
    x = (torch.rand(9, 1, 4, 4) > 0.5).float()
    with torch.no_grad():
        mu, _ = model.encode(x)
        logits = model.decode(mu)
        bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        mse = ((torch.sigmoid(logits) - x) ** 2).flatten(1).mean(1)
    r = reconstruction_error(model, x, batch_size=4)
    assert r.log_px_z == pytest.approx(float(-bce.mean()), rel=1e-5)
    assert r.mse == pytest.approx(float(mse.mean()), rel=1e-5)


# --- sweeps ----------------------------------------------------------------------------------


def test_effective_beta_is_the_gradient_ratio_of_the_mean_loss():
    """D * (mean-BCE + beta KL) has the same gradient as sum-BCE + beta_eff KL."""
    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 4, 4), latent_dim=3, hidden=(8,)))
    x = (torch.rand(5, 1, 4, 4) > 0.5).float()
    d, k, beta = 16, 3, 0.7
    for red in ("sum", "mean"):
        out = model(x)
        logits = out.out[0]
        kl_d = kl_diag_gaussian(out.mu, out.logvar)
        kl_red = kl_d.sum(-1) if red == "sum" else kl_d.mean(-1)
        bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1)
        loss_mean = (bce.mean(1) + beta * kl_red).mean()
        g_mean = torch.autograd.grad(d * loss_mean, list(model.parameters()), retain_graph=True)
        loss_sum = (bce.sum(1) + effective_beta(d, k, beta, red) * kl_d.sum(-1)).mean()
        g_sum = torch.autograd.grad(loss_sum, list(model.parameters()))
        for a, b in zip(g_mean, g_sum):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="kl_reduction"):
        effective_beta(d, k, 1.0, "max")


def test_run_configs_change_one_thing():
    from vae_core.cache import DEFAULT_MODEL, DEFAULT_TRAIN

    runs = default_runs()
    assert len({r.train for r in runs}) == len(runs) == 9
    for r in runs:
        diff = {k for k, v in r.train.to_dict().items() if v != DEFAULT_TRAIN.to_dict()[k]}
        assert diff - {"epochs", "beta", "warmup_epochs", "free_bits", "objective"} == set()
        assert r.model == DEFAULT_MODEL and r.train.epochs == 30
    c = collapse_runs(DEFAULT_MODEL, DEFAULT_TRAIN)
    assert [r.train.beta for r in c] == [10.0] * 3 and c[1].train.warmup_epochs > 0 and c[2].train.free_bits > 0
    assert objective_runs(DEFAULT_MODEL, DEFAULT_TRAIN)["ae"].train.objective == "ae"


@pytest.mark.slow
def test_beta_sweep_active_units_fall_as_beta_grows(tmp_path):
    """A real tiny sweep on sklearn digits (8x8): 8 latent dims, betas 0.1 .. 30."""
    torch.set_num_threads(1)
    data = load_dataset("digits")
    mc = ModelConfig(input_shape=(1, 8, 8), latent_dim=8, hidden=(64,))
    tc = TrainConfig(dataset="digits", epochs=25, batch_size=64, lr=3e-3, seed=0)
    runs = beta_runs(mc, tc, betas=(0.1, 1.0, 8.0, 30.0), epochs=25)
    fractions = []
    ckpts = train_runs(runs, data, cache_dir=str(tmp_path), device="cpu", progress=lambda f, msg: fractions.append(f))
    assert all(is_cached(r, data, str(tmp_path)) for r in runs)
    assert fractions[-1] == pytest.approx(1.0) and fractions == sorted(fractions)
    x = data.x_test
    stats = [summarize(c.model, x) for c in ckpts]
    au = [s.active_units for s in stats]
    kl = [s.kl for s in stats]
    print("active units", au, "KL", kl)
    assert all(a >= b for a, b in zip(au, au[1:])) and au[0] > au[-1], au
    assert all(a > b for a, b in zip(kl, kl[1:])), kl
    # a second call is a cache hit: same files, no training progress
    again = train_runs(runs, data, cache_dir=str(tmp_path), device="cpu")
    assert [c.path for c in again] == [c.path for c in ckpts]


def test_lambda_changes_only_the_mmd_run():
    """Lab 5's λ slider: the β=1 VAE and the autoencoder stay the cache entries they are (issue 12.5)."""
    from vae_core.cache import DEFAULT_MODEL
    from vae_core.cache import DEFAULT_TRAIN as T

    a, b = objective_runs(DEFAULT_MODEL, T), objective_runs(DEFAULT_MODEL, T, mmd_weight=10.0)
    assert a["vae"].train == b["vae"].train and a["ae"].train == b["ae"].train
    assert b["mmd"].train.mmd_weight == 10.0 and b["mmd"].train.objective == "mmd"
    assert a["mmd"].train.mmd_weight == T.mmd_weight and b["mmd"].name == "MMD-VAE (λ=10)"
