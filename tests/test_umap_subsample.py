"""UMAP of large sets (vae_core.umap_subsample): the blockwise kNN placement against KNNProjection's
whole-matrix transform, the subsample fit's bookkeeping, and the job's progress lines."""

from __future__ import annotations

import numpy as np
import pytest

from vae_core import umap_job
from vae_core import umap_subsample as us
from vae_core.progress import Progress
from vae_core.projection import KNNProjection


def clusters(n, k=6, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (5, k))
    return (centres[rng.integers(0, 5, n)] + rng.normal(0, 0.5, (n, k))).astype(np.float32)


def test_nearest_matches_a_full_sort_with_exact_distances():
    ref, z = clusters(700), clusters(130, seed=1).astype(np.float64)
    z[:5] = ref[[3, 50, 7, 699, 0]]  # exactly a reference row: distance 0, not float32 rounding
    idx, d = us.nearest(ref, z, 15, chunk=37)
    full = np.sqrt(((z[:, None] - ref[None].astype(np.float64)) ** 2).sum(-1))
    np.testing.assert_allclose(d, np.sort(full, 1)[:, :15], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.take_along_axis(full, idx, 1), d, rtol=1e-12)
    assert (d[:5, 0] == 0).all() and idx[:5, 0].tolist() == [3, 50, 7, 699, 0]


def test_place_is_knn_projection_transform_in_blocks():
    means, z = clusters(900), clusters(257, seed=2)
    emb = np.stack([np.tanh(means[:, 0]) * 4 + means[:, 1], means[:, 2] ** 2], 1).astype(np.float32)
    z[:3] = means[:3]
    seen = []
    got = us.place(means, emb, z, 15, progress=seen.append, chunk=100)
    np.testing.assert_allclose(got, KNNProjection(means, emb, 15).transform(z), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(got[:3], emb[:3])  # a mean lands on its own position
    assert [(p.phase, p.done, p.total) for p in seen] == [("place", 100, 257), ("place", 200, 257), ("place", 257, 257)]
    assert seen[-1].message == "placed 257 of 257 points on the UMAP map"


def test_fit_umap_large_fits_the_subsample_and_places_the_rest(monkeypatch):
    """UMAP itself is replaced by a fixed map of the fitted points (its own tests run the real one):
    the subsample keeps what the fit returned, every other point is placed on it by kNN."""
    means = clusters(500, seed=3)
    fitted = {}

    def fake_fit(x, seed, n_neighbors, min_dist, progress=None, n_epochs=None):
        fitted["x"], fitted["n_epochs"] = x.copy(), n_epochs
        for i in (0, 100, 200):
            progress(Progress("map", i, 200, f"UMAP epoch {i} of 200"))
        return np.stack([x[:, 0] + x[:, 1], x[:, 2]], 1).astype(np.float32)

    monkeypatch.setattr(us, "fit_umap", fake_fit)
    progress = []
    emb = us.fit_umap_large(means, seed=4, n_fit=120, progress=progress.append)
    sub = us.fit_subsample(500, 120, seed=4)
    assert len(sub) == 120 and len(np.unique(sub)) == 120
    np.testing.assert_array_equal(fitted["x"], means[sub])
    np.testing.assert_allclose(emb[sub], np.stack([means[sub, 0] + means[sub, 1], means[sub, 2]], 1), rtol=1e-6)
    rest = np.setdiff1d(np.arange(500), sub)
    np.testing.assert_allclose(
        emb[rest], KNNProjection(means[sub], emb[sub], 15).transform(means[rest]), rtol=1e-5, atol=1e-5
    )
    assert fitted["n_epochs"] == us.FIT_EPOCHS
    assert [(p.phase, p.done, p.total) for p in progress] == [
        ("map", 0, 200),
        ("map", 0, 200),
        ("map", 100, 200),
        ("map", 200, 200),
        ("place", 380, 380),
    ]
    assert progress[0].message == "fitting UMAP on 120 of 500 points"
    assert progress[2].message == "UMAP epoch 100 of 200 (120 of 500 points)"
    # at or below n_fit, UMAP sees every point and nothing is placed
    np.testing.assert_allclose(
        us.fit_umap_large(means[:100], n_fit=120),
        np.stack([means[:100, 0] + means[:100, 1], means[:100, 2]], 1),
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "log, want",
    [
        (
            "starting\nprogress map 0 200 fitting UMAP on 10,000 of 60,000 points\nprogress map 80 200 UMAP epoch 80 of 200\n",  # noqa: E501
            Progress("map", 80, 200, "UMAP epoch 80 of 200"),
        ),
        ("progress place 7 5 done\n", Progress("place", 7, 5, "done")),  # fraction clipped to 1
        ("no progress yet\nwarning: something\n", None),
        ("progress map nan-ish broken\n", None),
        ("progress map 3\n", None),
        ("", None),
    ],
)
def test_the_app_reads_the_jobs_last_progress_line(log, want):
    assert umap_job.last_progress(log) == want


def test_the_job_prints_progress_lines_the_app_reads(capsys):
    p = Progress("place", 5000, 50000, "placed 5,000 of\n50,000 points")  # one line, whatever the message
    umap_job.print_progress(p)
    got = umap_job.last_progress(capsys.readouterr().out)
    assert got == Progress("place", 5000, 50000, "placed 5,000 of 50,000 points") and got.fraction == 0.1
