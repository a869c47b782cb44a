"""Latent arithmetic (as in White 2016, "Sampling Generative Networks", and its tool plat): class-mean
vectors, attribute directions, moving z along a direction, and analogies.

Shapes: encoder means mu (N, k), labels (N,) int with -1 for "no label"; one latent vector is (k,).
Pure numpy: the page decodes the results with vae_core.latent.decode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClassMeans:
    labels: np.ndarray  # (C,) the labels present, ascending (-1, "no label", left out)
    means: np.ndarray  # (C, k) mean of mu over the points of each label
    counts: np.ndarray  # (C,) how many points each mean averages

    def of(self, label: int) -> np.ndarray:
        """The (k,) mean of `label`; KeyError when no point has it."""
        hits = np.flatnonzero(self.labels == label)
        if not len(hits):
            raise KeyError(f"no point has label {label}")
        return self.means[hits[0]]


def class_means(mu: np.ndarray, labels: np.ndarray) -> ClassMeans:
    """m_c = (1 / N_c) sum_{i: y_i = c} mu_i for every label c >= 0: (N, k), (N,) -> ClassMeans (C, k).
    C = 0 when no point is labelled (an unlabelled upload has labels -1 throughout)."""
    mu = np.asarray(mu, np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if mu.ndim != 2 or labels.shape != (mu.shape[0],):
        raise ValueError(f"mu must be (N, k) and labels (N,); got {mu.shape} and {labels.shape}")
    present = np.unique(labels[labels >= 0])
    counts = np.array([(labels == c).sum() for c in present], np.int64)
    sums = np.zeros((len(present), mu.shape[1]))
    np.add.at(sums, np.searchsorted(present, labels[labels >= 0]), mu[labels >= 0])  # scatter-add per class
    return ClassMeans(present, (sums / counts[:, None]) if len(present) else sums, counts)


def direction(mean_a: np.ndarray, mean_b: np.ndarray) -> np.ndarray:
    """The attribute direction d = m_A - m_B (k,): adding it to a z of class B moves z towards A."""
    return np.asarray(mean_a, np.float64) - np.asarray(mean_b, np.float64)


def along(z0: np.ndarray, d: np.ndarray, alphas, *, unit: bool = False) -> np.ndarray:
    """z(alpha) = z0 + alpha * d, or z0 + alpha * d / |d| with unit=True (alpha is then a distance in
    z-space): (k,), (k,), (T,) -> (T, k). A zero d with unit=True leaves z0 where it is."""
    z0, d = np.asarray(z0, np.float64), np.asarray(d, np.float64)
    if unit:
        n = float(np.linalg.norm(d))
        d = d / n if n > 0 else d
    return z0[None, :] + np.asarray(alphas, np.float64)[:, None] * d[None, :]


def analogy(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """a - b + c (k,): "a is to b as ? is to c", c moved by the difference between a and b."""
    return np.asarray(a, np.float64) - np.asarray(b, np.float64) + np.asarray(c, np.float64)
