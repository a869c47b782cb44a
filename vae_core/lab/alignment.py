"""2-D maps of latent means that can be compared across models.

Each model gets its own PCA of the test-set means mu (N, k) -> (N, 2): vae_core.projection.fit_pca,
as the explorer's map. Two models' PCA maps are arbitrary up to rotation and reflection, so one map
is rotated onto a reference map with orthogonal Procrustes on the same N test points (Schönemann 1966):

    R* = argmin_{R^T R = I} || (A - a) R - (B - b) ||_F,   aligned = (A - a) R* + b

Only a rotation/reflection is applied, never a scale: a map that is smaller (large beta) stays smaller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import orthogonal_procrustes

from ..projection import PCAProjection, fit_pca


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.float64) if isinstance(x, torch.Tensor) else np.asarray(x, np.float64)


@dataclass(frozen=True)
class Alignment:
    rotation: np.ndarray  # (2, 2) orthogonal
    source_mean: np.ndarray  # (2,)
    target_mean: np.ndarray  # (2,)
    residual: float  # RMS distance per point after alignment

    def apply(self, points) -> np.ndarray:
        """(M, 2) points in the source map -> the reference map's frame."""
        return (_np(points) - self.source_mean) @ self.rotation + self.target_mean


def procrustes_align(source, target) -> Alignment:
    """Rotation/reflection taking source (N, 2) onto target (N, 2); rows are the same test points."""
    a, b = _np(source), _np(target)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"Procrustes needs two maps of the same points, got shapes {a.shape} and {b.shape}")
    am, bm = a.mean(0), b.mean(0)
    r, _ = orthogonal_procrustes(a - am, b - bm)
    res = float(np.sqrt((((a - am) @ r - (b - bm)) ** 2).sum(1).mean()))
    return Alignment(r, am, bm, res)


@dataclass(frozen=True)
class LatentMap:
    """A model's PCA map, optionally rotated onto a reference map; projects any latent points."""

    pca: PCAProjection
    alignment: Alignment | None = None

    def project(self, z) -> np.ndarray:
        """(M, k) -> (M, 2) in the (aligned) map frame: the same transform for means and prior samples."""
        m = self.pca.transform(_np(z))
        return m if self.alignment is None else self.alignment.apply(m)


def aligned_maps(mus: dict, reference: str) -> dict:
    """{name: mu (N, k)} -> {name: LatentMap}, every map rotated onto `reference`'s.

    Each model is projected by its own PCA of its test means; rows of all mus are the same test points.
    """
    pcas = {name: fit_pca(_np(mu)) for name, mu in mus.items()}
    ref_map = pcas[reference].transform(_np(mus[reference]))
    return {
        name: LatentMap(pca, None if name == reference else procrustes_align(pca.transform(_np(mus[name])), ref_map))
        for name, pca in pcas.items()
    }
