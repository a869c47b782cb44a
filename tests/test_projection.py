"""vae_core.projection against independent references: sklearn PCA, a root-finder for UMAP's sigma,
UMAP's own transform initialisation (slow: numba), and the on-disk cache's round trip / staleness."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from vae_core import projection as proj
from vae_core import projection_build as pb
from vae_core import projection_cache as pc
from vae_core.config import ModelConfig
from vae_core.model import VAE


def _cloud(n=300, k=6, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, k)) * np.array([3.0, 2.0, 1.0, 0.5, 0.2, 0.1])[:k]).astype(np.float32)


def test_pca_matches_sklearn_up_to_sign_and_is_exact_linear():
    from sklearn.decomposition import PCA

    x = _cloud()
    p = proj.fit_pca(x)
    ref = PCA(n_components=2).fit(x)
    y, y_ref = p.transform(x), ref.transform(x)
    for j in range(2):  # each axis agrees up to a sign flip
        s = np.sign(np.dot(y[:, j], y_ref[:, j]))
        np.testing.assert_allclose(y[:, j], s * y_ref[:, j], atol=1e-4)
    np.testing.assert_allclose(p.explained, ref.explained_variance_ratio_, rtol=1e-5)
    # linear: projecting a midpoint gives the midpoint of the projections
    a, b = x[3], x[7]
    np.testing.assert_allclose(
        p.transform(((a + b) / 2)[None])[0], (p.transform(a[None])[0] + p.transform(b[None])[0]) / 2, atol=1e-9
    )


def test_pca_sign_convention_is_deterministic():
    x = _cloud()
    p1, p2 = proj.fit_pca(x), proj.fit_pca(-x)  # flipping the data must not flip the fixed-sign loadings
    for r in p1.components:
        assert r[np.abs(r).argmax()] > 0
    np.testing.assert_allclose(np.abs(p1.components), np.abs(p2.components), atol=1e-9)


def test_smooth_knn_sigma_solves_umaps_equation():
    """sum_{j>=1} exp(-d_j / sigma) = log2(k), checked with an independent root finder."""
    rng = np.random.default_rng(1)
    d = np.sort(rng.uniform(0.5, 3.0, size=(5, 15)), axis=1)
    sig = proj.smooth_knn_sigma(d, 15.0)
    for row, s in zip(d, sig):
        f = lambda t: np.exp(-row[1:] / t).sum() - np.log2(15)  # noqa: B023
        np.testing.assert_allclose(s, brentq(f, 1e-6, 1e6), rtol=1e-4)


def test_knn_transform_is_the_weighted_mean_and_exact_on_data_points():
    means = _cloud(200, 4)
    emb = np.random.default_rng(2).normal(size=(200, 2))
    t = proj.KNNProjection(means, emb, n_neighbors=10)
    # a plotted point lands on itself (also after float rounding of the encoder)
    np.testing.assert_allclose(t.transform(means[[5, 17]]), emb[[5, 17]])
    np.testing.assert_allclose(t.transform(means[[5]] + 1e-6), emb[[5]])
    # a new point: hand-computed kNN weights w = exp(-d / sigma) over its 10 nearest means
    z = means[:2].mean(0, keepdims=True) + 0.05
    d = np.sqrt(((means - z) ** 2).sum(1))
    nn = np.argsort(d)[:10]
    sigma = brentq(lambda s: np.exp(-d[nn][1:] / s).sum() - np.log2(10), 1e-8, 1e8)
    w = np.exp(-d[nn] / sigma)
    np.testing.assert_allclose(t.transform(z)[0], (w[:, None] * emb[nn]).sum(0) / w.sum(), rtol=1e-4)
    # and it stays inside the convex hull of the neighbours' embeddings
    lo, hi = emb[nn].min(0), emb[nn].max(0)
    assert np.all(t.transform(z)[0] >= lo - 1e-9) and np.all(t.transform(z)[0] <= hi + 1e-9)


def test_latent_plane_is_identity_for_k2_and_pads_k1():
    z = np.array([[0.5, -1.0], [2.0, 3.0]])
    np.testing.assert_array_equal(proj.LatentPlane(2).transform(z), z)
    np.testing.assert_array_equal(proj.LatentPlane(1).transform(np.array([[0.7]])), [[0.7, 0.0]])


def test_point_order_prefix_is_stable():
    a, b = proj.point_order(1000, 100), proj.point_order(1000, 300)
    np.testing.assert_array_equal(a, b[:100])
    assert len(set(b.tolist())) == 300


def _tiny_checkpoint(tmp_path, k=3):
    from vae_core.checkpoints import save_checkpoint
    from vae_core.config import TrainConfig

    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 8, 8), latent_dim=k, hidden=(16,))).eval()
    path = str(tmp_path / "m.safetensors")
    save_checkpoint(path, model, TrainConfig(dataset="digits", epochs=1))
    return path, model


def test_cache_round_trip_is_atomic_and_tied_to_the_weights(tmp_path):
    path, model = _tiny_checkpoint(tmp_path)
    x = torch.rand(50, 1, 8, 8)
    y = torch.arange(50) % 10
    c = pb.build_cache(path, model, x, y, with_umap=False)
    assert pc.cache_path_for(path) == str(tmp_path / "m.proj.npz")
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]
    got = pc.read_cache(path)
    np.testing.assert_array_equal(got.means, c.means)
    np.testing.assert_array_equal(got.labels, y[torch.from_numpy(c.index)].numpy())
    with torch.no_grad():  # the stored means are the encoder means of those test points
        mu = model.encode(x[torch.from_numpy(c.index)])[0].numpy()
    np.testing.assert_allclose(got.means, mu, atol=1e-6)
    assert got.umap is None
    with pytest.raises(ValueError, match="no UMAP"):
        got.umap_projection()
    # other weights under the same name: the cache is stale and ignored
    with open(path, "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x00\x80\x3f")
    assert pc.read_cache(path) is None
    # a corrupt cache file is ignored with a warning, not raised (tests/test_faults_projection.py: every kind)
    with open(pc.cache_path_for(path), "wb") as f:
        f.write(b"not an npz")
    with pytest.warns(pc.ProjectionCacheWarning, match="m.proj.npz: unreadable"):
        assert pc.read_cache(path) is None


def test_save_map_cache_after_training_writes_the_means_or_says_why_not(tmp_path):
    """The one post-training hook (command line and Train page): the checkpoint's test set as its
    likelihood sees it (binarized here), encoded; a failure is a one-line warning, not an error."""
    from vae_core.checkpoints import load_checkpoint
    from vae_core.data import _build, eval_targets

    path, model = _tiny_checkpoint(tmp_path)
    rng = np.random.default_rng(0)
    data = _build("tiny", rng.integers(0, 256, (20, 8, 8)), None, rng.integers(0, 256, (30, 8, 8)), np.arange(30) % 3)
    ckpt = load_checkpoint(path)
    events = []
    assert pb.save_map_cache(ckpt, data, progress=events.append) is None
    got = pc.read_cache(path)
    with torch.no_grad():
        x = eval_targets(data.x_test, ckpt.train_config.binarize).reshape(30, 1, 8, 8)
        mu = model.encode(x[torch.from_numpy(got.index)])[0].numpy()
    np.testing.assert_allclose(got.means, mu, atol=1e-6)
    np.testing.assert_array_equal(got.labels, np.arange(30)[got.index] % 3)
    assert [(e.phase, e.done, e.total) for e in events] == [("encode", 0, 1), ("encode", 1, 1)]
    assert events[-1].message == "encoded 30 test examples for the latent map"

    os.remove(pc.cache_path_for(path))
    os.mkdir(pc.cache_path_for(path))  # a folder in the file's place: the model is there, its map cannot be
    problem = pb.save_map_cache(ckpt, data)
    assert problem.startswith("the model is cached, but its latent map cache was not saved (")
    assert "m.proj.npz" in problem and os.path.isdir(pc.cache_path_for(path))


def test_projection_is_the_maths_only_and_its_old_command_still_runs():
    """The cache, build and UMAP jobs import projection, never the reverse (tests/test_import_graph.py):
    their names are not re-exported here. `python -m vae_core.projection` is still the UMAP job."""
    import subprocess
    import sys

    for name in ("read_cache", "build_cache", "fit_umap", "LEGACY_MAX_POINTS", "ProjectionCache"):
        assert not hasattr(proj, name), name
    out = subprocess.run(
        [sys.executable, "-m", "vae_core.projection", "--help"], capture_output=True, text=True, timeout=600
    )  # a hang guard only
    assert out.returncode == 0, out.stderr
    assert "usage: python -m vae_core.umap_job" in out.stdout and "<checkpoint>.proj.npz" in out.stdout


@pytest.mark.slow
def test_knn_transform_matches_umaps_own_transform_init(tmp_path):
    """Our kNN placement = umap_.smooth_knn_dist + compute_membership_strengths + init_graph_transform."""
    import scipy.sparse
    from umap.umap_ import compute_membership_strengths, init_graph_transform, smooth_knn_dist

    means = _cloud(300, 5).astype(np.float32)
    emb = np.random.default_rng(3).normal(size=(300, 2)).astype(np.float32)
    new = (means[:4] + np.random.default_rng(4).normal(scale=0.3, size=(4, 5))).astype(np.float32)
    new = np.concatenate([new, means[[10]]])  # plus one exact data point
    ours = proj.KNNProjection(means, emb, n_neighbors=15).transform(new)
    for i, z in enumerate(new):  # one query at a time: UMAP's sigma floor uses the batch mean
        d = np.sqrt(((means - z) ** 2).sum(1))
        idx = np.argsort(d)[:15][None].astype(np.int32)
        dist = d[idx].astype(np.float32)
        sig, rho = smooth_knn_dist(dist, 15.0, local_connectivity=0.0)
        rows, cols, vals, _ = compute_membership_strengths(idx, dist, sig, rho, bipartite=True)
        g = scipy.sparse.coo_matrix((vals, (rows, cols)), shape=(1, len(means))).tocsr()
        g.eliminate_zeros()
        np.testing.assert_allclose(ours[i], init_graph_transform(g, emb)[0], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_umap_cache_from_a_child_process(tmp_path):
    """ensure_umap_cache in a subprocess (as the app runs it) writes a usable embedding."""
    import subprocess
    import sys

    from vae_core.checkpoints import save_checkpoint
    from vae_core.config import TrainConfig

    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 8, 8), latent_dim=4, hidden=(16,))).eval()
    path = str(tmp_path / "d.safetensors")
    save_checkpoint(path, model, TrainConfig(dataset="digits", epochs=1))
    out = subprocess.run(
        [sys.executable, "-m", "vae_core.projection", path], capture_output=True, text=True, timeout=1800
    )  # a hang guard only: a first numba JIT on a loaded machine takes minutes
    assert out.returncode == 0, out.stderr
    c = pc.read_cache(path)
    assert c is not None and c.umap is not None and c.umap.shape == (len(c.means), 2)
    assert np.isfinite(c.umap).all()
    t = c.umap_projection()
    np.testing.assert_allclose(t.transform(c.means[:3]), c.umap[:3])


def test_cache_records_the_test_set_size_and_old_caches_infer_it(tmp_path):
    path, model = _tiny_checkpoint(tmp_path)
    assert pb.build_cache(path, model, torch.rand(50, 1, 8, 8), None, with_umap=False).n_test == 50
    assert pc.read_cache(path).n_test == 50
    # a cache written before n_test existed: below the cap, the points are the whole test set ...
    old = dataclasses.replace(pc.read_cache(path), n_test=None)
    pc.write_cache(path, old)
    with np.load(pc.cache_path_for(path)) as f:
        assert "n_test" not in f.files
    assert pc.read_cache(path).n_test == 50
    # ... at the old 10k cap it may be a sample: stale (rebuilt with every point), not a fault
    n = pc.LEGACY_MAX_POINTS
    pc.write_cache(
        path, dataclasses.replace(old, index=np.arange(n), labels=np.full(n, -1), means=np.zeros((n, 2), np.float32))
    )
    assert pc.read_cache(path) is None and pc.cache_problem(path) is None
    # so is a cache of fewer points than its test set holds (written under a lower cap)
    pc.write_cache(
        path,
        dataclasses.replace(
            old, index=np.arange(40), labels=np.full(40, -1), means=np.zeros((40, 2), np.float32), n_test=50
        ),
    )
    assert pc.read_cache(path) is None and pc.cache_problem(path) is None
