"""vae_core.arithmetic against independent computations: per-class numpy means over a boolean mask,
and the closed forms of a direction walk and an analogy written out coordinate by coordinate."""

from __future__ import annotations

import numpy as np
import pytest

from vae_core.arithmetic import along, analogy, class_means, direction


def _data(n=60, k=4, seed=0):
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(n, k))
    labels = rng.integers(-1, 4, size=n)  # -1: unlabelled points, left out of every mean
    return mu, labels


def test_class_means_are_the_mean_of_each_labels_points():
    mu, labels = _data()
    cm = class_means(mu, labels)
    want = sorted(set(labels.tolist()) - {-1})
    assert cm.labels.tolist() == want
    for c, m, n in zip(cm.labels, cm.means, cm.counts):
        rows = [mu[i] for i in range(len(mu)) if labels[i] == c]  # a plain loop, not the scatter-add
        assert n == len(rows)
        np.testing.assert_allclose(m, np.mean(rows, axis=0), rtol=1e-12)
    np.testing.assert_allclose(cm.of(2), mu[labels == 2].mean(0), rtol=1e-12)
    with pytest.raises(KeyError):
        cm.of(7)


def test_unlabelled_data_has_no_class_means():
    mu, _ = _data()
    cm = class_means(mu, np.full(len(mu), -1))
    assert cm.means.shape == (0, mu.shape[1]) and len(cm.labels) == 0
    with pytest.raises(ValueError):
        class_means(mu, np.zeros(len(mu) - 1))


def test_moving_along_a_direction_is_z0_plus_alpha_d():
    mu, labels = _data()
    cm = class_means(mu, labels)
    d = direction(cm.of(1), cm.of(3))
    np.testing.assert_allclose(d, mu[labels == 1].mean(0) - mu[labels == 3].mean(0), rtol=1e-12)
    z0 = mu[5]
    alphas = np.array([-3.0, -0.5, 0.0, 2.0])
    zs = along(z0, d, alphas)
    for t, a in enumerate(alphas):
        for j in range(len(z0)):
            assert zs[t, j] == pytest.approx(z0[j] + a * d[j], rel=1e-12)
    # unit=True: alpha is a distance, |z(alpha) - z0| = |alpha|, along d
    zu = along(z0, d, alphas, unit=True)
    np.testing.assert_allclose(np.linalg.norm(zu - z0, axis=1), np.abs(alphas), rtol=1e-12)
    np.testing.assert_allclose(zu[-1] - z0, 2.0 * d / np.sqrt((d**2).sum()), rtol=1e-12)
    # the class-B mean plus one whole d is the class-A mean
    np.testing.assert_allclose(along(cm.of(3), d, [1.0])[0], cm.of(1), rtol=1e-12)
    np.testing.assert_array_equal(along(z0, np.zeros_like(d), [2.0], unit=True)[0], z0)


def test_analogy_is_a_minus_b_plus_c():
    a, b, c = np.array([1.0, 2, 3]), np.array([0.5, -1, 4]), np.array([-2.0, 0, 1])
    np.testing.assert_array_equal(analogy(a, b, c), [1 - 0.5 - 2, 2 + 1 + 0, 3 - 4 + 1])
    np.testing.assert_array_equal(analogy(a, a, c), c)  # a - a + c = c
