"""The lab pages' reports (vae_core/lab/*_report, aggregate_report) and their disk cache.

Each report is checked for its shapes, for giving the same numbers for the same seed, and against a
reference computed another way (closed forms where the model makes them exact, the functions the
report orchestrates called directly)."""

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from vae_core.config import ModelConfig
from vae_core.lab.ae_report import FITTED, PRIOR, AEReport, ae_report, interpolation
from vae_core.lab.aggregate import AggregateReport, aggregate_report
from vae_core.lab.alignment import aligned_maps
from vae_core.lab.beta_report import SweepReport, sweep_report
from vae_core.lab.importance_report import ImportanceReport, importance_report, toy_report
from vae_core.lab.report_cache import (
    BadReport,
    ReportCacheWarning,
    cached_report,
    load_report,
    report_key,
    report_path,
    save_report,
)
from vae_core.lab.sweeps import summarize
from vae_core.latent import decode, encode_mean
from vae_core.losses import kl_diag_gaussian
from vae_core.model import VAE

SHAPE = (1, 8, 8)


def _vae(seed: int, k: int = 3) -> VAE:
    torch.manual_seed(seed)  # the module's init draws from the global generator
    return VAE(ModelConfig(input_shape=SHAPE, latent_dim=k, hidden=(16,))).eval()


@pytest.fixture(scope="module")
def x():
    return (torch.rand((60, *SHAPE), generator=torch.Generator().manual_seed(0)) > 0.5).float()


def _same(a, b) -> None:
    """Two reports hold the same values (arrays elementwise, NaN equal to NaN)."""
    if hasattr(a, "__dataclass_fields__"):
        assert type(a) is type(b)
        for name in a.__dataclass_fields__:
            _same(getattr(a, name), getattr(b, name))
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            _same(u, v)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b or (a != a and b != b), (a, b)


# ---------- lab 4: the sweep report ----------


def test_sweep_report_against_its_parts(x):
    models = [_vae(1), _vae(2)]
    r = sweep_report(models, x, reference=1, n_show=4, seed=3)
    assert r.maps.shape == (2, 60, 2) and r.recons.shape == (2, 4, *SHAPE) and r.samples.shape == (2, 4, *SHAPE)
    _same(r, sweep_report(models, x, reference=1, n_show=4, seed=3))
    for m, s, rec in zip(models, r.stats, r.recons):
        _same(s, summarize(m, x, seed=3))
        np.testing.assert_allclose(rec, m.decode_mean(m.encode(x[:4])[0]).detach().numpy(), rtol=1e-6)
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(3))
    np.testing.assert_allclose(r.samples[0], decode(models[0], z).numpy(), rtol=1e-6)
    # the reference map is its own PCA; the other is only rotated, so its distances are its PCA's
    mus = [encode_mean(m, x) for m in models]
    np.testing.assert_allclose(r.maps[1], aligned_maps({"b": mus[1]}, "b")["b"].project(mus[1]))
    own = aligned_maps({"a": mus[0]}, "a")["a"].project(mus[0])  # model 0's own PCA map, not rotated
    d = lambda p: np.linalg.norm(p[:, None] - p[None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(d(r.maps[0]), d(own), atol=1e-9)


# ---------- lab 5: the aggregate-posterior report ----------


def _prior_encoder(model: VAE) -> VAE:
    """The same model with q(z|x) = N(0, I) for every x: the encoder's last layer outputs zeros."""
    last = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    return model


def test_aggregate_report_is_exact_when_every_posterior_is_the_prior(x):
    """q(z|x_n) = p(z) for all n: Q = p, so KL(Q||p) = I(n; z) = marginal KLs = hole scores = 0 exactly."""
    r = aggregate_report(_prior_encoder(_vae(4)), x, n_prior=50, n_show=5, seed=0)
    assert r.agg.kl_q_p == pytest.approx(0, abs=1e-9) and r.agg.mutual_info == pytest.approx(0, abs=1e-9)
    assert r.agg.mean_kl == 0 and r.sigma_mean == 1
    np.testing.assert_allclose(r.marginal, 0, atol=1e-9)
    np.testing.assert_allclose(r.score, 0, atol=1e-5)
    assert abs(r.mmd) < 0.1 and abs(r.noise_floor) < 0.1  # both are two samples of N(0, I)


def test_aggregate_report_shapes_seed_and_elbo_surgery(x):
    model = _vae(5)
    r = aggregate_report(model, x, n_prior=50, n_show=5, seed=2)
    assert r.zq.shape == (60, 3) and r.marginal.shape == (3,) and r.map_mu.shape == (60, 2)
    assert r.map_prior.shape == (50, 2) and r.score.shape == (50,) and r.holes.shape == (5, *SHAPE)
    assert (np.diff(r.hole_scores) >= 0).all() and r.hole_scores[-1] <= r.dense_scores[0]
    _same(r, aggregate_report(model, x, n_prior=50, n_show=5, seed=2))
    # ELBO surgery (Hoffman & Johnson 2016): mean KL = I(n; z) + KL(Q || p), up to Monte Carlo error
    with torch.no_grad():
        mu, logvar = model.encode(x)
    assert r.agg.mean_kl == pytest.approx(float(kl_diag_gaussian(mu, logvar).sum(-1).mean()), rel=1e-6)
    assert r.agg.mutual_info + r.agg.kl_q_p == pytest.approx(r.agg.mean_kl, abs=4 * r.agg.kl_q_p_se + 0.05)
    assert 0 <= r.agg.mutual_info <= math.log(60) + 0.05


# ---------- lab 6: autoencoder vs VAE ----------


def test_ae_report_against_its_parts(x):
    vae, ae = _vae(6), _vae(7)
    grey = x  # binary images stand in for the grey ones
    labels = torch.arange(60) % 3
    r = ae_report(vae, ae, x, x, grey, grey, labels, n_samples=20, n_show=4, knn=3, seed=1)
    assert list(r.vae.samplers) == [PRIOR] and list(r.ae.samplers) == [PRIOR, FITTED]
    assert r.vae.codes.shape == (60, 3) and r.ae.map.shape == (60, 2) and r.ae.prior_map.shape == (20, 2)
    assert r.vae.samplers[PRIOR].images.shape == (4, *SHAPE)
    z0 = torch.randn(20, 3, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(r.vae.samplers[PRIOR].images, decode(vae, z0[:4]).numpy(), rtol=1e-6)
    np.testing.assert_allclose(r.ae.code_std, encode_mean(ae, x).std(0).numpy(), rtol=1e-6)
    # real images: the nearest training image of each is itself, at distance 0
    assert r.data.pixel_nn == 0 and 0 < r.data.knn <= 1
    _same(r, ae_report(vae, ae, x, x, grey, grey, labels, n_samples=20, n_show=4, knn=3, seed=1))
    unlabelled = ae_report(vae, ae, x, x, grey, grey, None, n_samples=20, n_show=4, knn=3, seed=1)
    assert math.isnan(unlabelled.data.knn) and math.isnan(unlabelled.ae.samplers[FITTED].knn)


def test_interpolation_runs_from_one_reconstruction_to_the_other(x):
    m = _vae(8)
    line = interpolation(m, x[0], x[5], 6)
    assert line.shape == (6, *SHAPE)
    np.testing.assert_allclose(line[[0, -1]], decode(m, encode_mean(m, x[[0, 5]])).numpy(), rtol=1e-5)


# ---------- lab 2: importance sampling ----------


def test_importance_report_kl_and_reference(x):
    m = _vae(9)
    r = importance_report(m, x[:1], n_max=50, repeats=3, seed=4)
    assert set(r.curves) == {"prior", "posterior"} and r.curves["posterior"].log_px.shape[0] == 3
    with torch.no_grad():
        mu, logvar = m.encode(x[:1])
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum()
    assert r.kl_prior == pytest.approx(float(kl), rel=1e-5)
    # the pooled reference is the log of the mean of all 3 x 50 q-based p-hats
    p_hat = np.exp(r.curves["posterior"].log_px[:, -1])
    assert r.reference == pytest.approx(math.log(p_hat.mean()), rel=1e-9)


def test_toy_report_converges_to_the_exact_log_px():
    t = toy_report(3000, 3)
    est = t.curves["posterior"].log_px[:, -1]
    assert abs(est.mean() - t.exact) < 0.05


# ---------- the disk cache ----------


@dataclass(frozen=True)
class Inner:
    a: np.ndarray
    v: float


@dataclass(frozen=True)
class Outer:
    inner: Inner
    parts: tuple[Inner, ...]
    named: dict[str, Inner]
    arrays: dict[str, np.ndarray]
    n: int
    label: str
    missing: float
    nothing: Inner | None = None


def _outer() -> Outer:
    i = Inner(np.arange(6.0).reshape(2, 3), 0.5)
    return Outer(i, (i, Inner(np.zeros(0), -1.0)), {"x": i}, {"w": np.array([1, 2], np.int64)}, 3, "β=1", float("nan"))


def test_report_round_trips_through_a_file(tmp_path):
    path = str(tmp_path / "m.lab-p-k.npz")
    save_report(path, _outer())
    back = load_report(path, Outer)
    _same(back, _outer())
    assert isinstance(back.parts, tuple) and back.arrays["w"].dtype == np.int64
    assert all(c.__dataclass_params__.frozen for c in (SweepReport, AggregateReport, AEReport, ImportanceReport))


def test_real_reports_round_trip(tmp_path, x):
    for name, cls, r in (
        ("s", SweepReport, sweep_report([_vae(1)], x, n_show=2)),
        ("a", AggregateReport, aggregate_report(_vae(2), x, n_prior=20, n_show=2)),
        ("e", AEReport, ae_report(_vae(3), _vae(4), x, x, x, x, None, n_samples=10, n_show=2)),
        ("i", ImportanceReport, importance_report(_vae(5), x[:1], n_max=20, repeats=2)),
    ):
        path = str(tmp_path / f"{name}.npz")
        save_report(path, r)
        _same(load_report(path, cls), r)


def test_a_damaged_or_foreign_cache_file_is_ignored_and_rebuilt(tmp_path):
    path = str(tmp_path / "m.lab-p-k.npz")
    calls = []

    def compute():
        calls.append(1)
        return _outer()

    for bad in (b"not a zip", b"PK\x03\x04 truncated"):
        with open(path, "wb") as f:
            f.write(bad)
        with pytest.warns(ReportCacheWarning, match="recomputing"):
            _same(cached_report(path, Outer, compute), _outer())
        _same(load_report(path, Outer), _outer())  # the rebuilt file is good
    save_report(path, Inner(np.ones(2), 1.0))  # a report of another kind under this name
    with pytest.warns(ReportCacheWarning, match="fields differ"):
        cached_report(path, Outer, compute)
    np.savez(path, tree=np.array('{"d": {}}'), a0=np.array([object()], dtype=object))  # a pickled array
    with pytest.raises(BadReport, match="unreadable"):
        load_report(path, Outer)
    assert len(calls) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached_report(path.replace("m.", "n."), Outer, compute)  # absent: computed and stored silently
        cached_report(path.replace("m.", "n."), Outer, compute)  # present: read back, not computed
    assert len(calls) == 4


def test_report_key_and_path():
    k = report_key("lab4", ["abc"], {"n": 1, "seed": 0})
    assert k == report_key("lab4", ["abc"], {"seed": 0, "n": 1}) and len(k) == 16
    assert (
        len(
            {
                k,
                report_key("lab4", ["abd"], {"n": 1, "seed": 0}),
                report_key("lab4", ["abc"], {"n": 2, "seed": 0}),
                report_key("lab5", ["abc"], {"n": 1, "seed": 0}),
            }
        )
        == 4
    )
    assert report_path("/c/m_1.safetensors", "lab4", k) == f"/c/m_1.lab-lab4-{k}.npz"
