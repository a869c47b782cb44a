"""vae_core.point_stats: per-point ELBO/KL/log p(x) against estimators.evaluate, its disk cache, and
nearest neighbours / least likely against brute force."""

import os

import numpy as np
import torch

from vae_core.config import ModelConfig
from vae_core.estimators import evaluate
from vae_core.model import VAE
from vae_core.point_stats import least_likely, map_point_stats, nearest_neighbours, read_point_stats, stats_path_for


def _model_and_data():
    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 4, 4), latent_dim=3, hidden=(8,))).eval()
    x = torch.bernoulli(torch.rand(40, 16, generator=torch.Generator().manual_seed(1))).view(40, 1, 4, 4)
    return model, x


def test_per_point_stats_average_to_evaluates_means(tmp_path):
    model, x = _model_and_data()
    ckpt = tmp_path / "m.safetensors"
    ckpt.write_bytes(b"stand-in for a checkpoint file: the cache keys on its size and mtime")
    index = np.arange(len(x))
    s = map_point_stats(str(ckpt), model, x, index, iw_samples=50, seed=3)
    ref = evaluate(model, x, iw_samples=50, seed=3)  # one batch: the same seeded draws as point_stats
    np.testing.assert_allclose(s["kl"].mean(), ref["kl"], rtol=1e-5)
    np.testing.assert_allclose(s["elbo"].mean(), ref["elbo"], rtol=1e-5)
    np.testing.assert_allclose(s["log_px"].mean(), ref["log_likelihood"], rtol=1e-5)
    assert s["log_px"].mean() > s["elbo"].mean()  # log p(x) - ELBO = KL(q || p(z|x)) >= 0 (Burda et al.)
    assert len(set(np.round(s["log_px"], 6))) == len(x)  # one number per point, not a broadcast mean


def test_the_disk_cache_is_used_and_a_bad_file_rebuilt(tmp_path):
    model, x = _model_and_data()
    ckpt = tmp_path / "m.safetensors"
    ckpt.write_bytes(b"checkpoint")
    index = np.array([5, 2, 9, 0])
    first = map_point_stats(str(ckpt), model, x, index, iw_samples=20)
    assert os.path.exists(stats_path_for(str(ckpt)))
    np.testing.assert_array_equal(read_point_stats(str(ckpt), index, 20)["log_px"], first["log_px"])
    assert read_point_stats(str(ckpt), index[::-1], 20) is None  # other points
    assert read_point_stats(str(ckpt), index, 21) is None  # another K
    ckpt.write_bytes(b"another checkpoint")  # the checkpoint changed
    assert read_point_stats(str(ckpt), index, 20) is None
    open(stats_path_for(str(ckpt)), "wb").write(b"not an npz")
    assert read_point_stats(str(ckpt), index, 20) is None
    again = map_point_stats(str(ckpt), model, x, index, iw_samples=20)  # rebuilt, same seeded draws
    np.testing.assert_allclose(again["log_px"], first["log_px"])
    assert read_point_stats(str(ckpt), index, 20) is not None


def test_nearest_neighbours_match_brute_force():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(300, 5))
    for row in (0, 17, 299):
        rows, dist = nearest_neighbours(means, row, k=8)
        brute = sorted((float(np.linalg.norm(means[j] - means[row])), j) for j in range(300) if j != row)[:8]
        assert rows.tolist() == [j for _, j in brute]
        np.testing.assert_allclose(dist, [d for d, _ in brute])
    assert nearest_neighbours(means[:3], 1, k=8)[0].tolist() == sorted(
        [0, 2], key=lambda j: np.linalg.norm(means[j] - means[1])
    )


def test_least_likely_is_the_lowest_first_without_nans():
    v = np.array([3.0, -1.0, np.nan, -5.0, 0.0, -1.0])
    assert least_likely(v, 3).tolist() == [3, 1, 5]
    assert least_likely(v, 16).tolist() == [3, 1, 5, 4, 0]
