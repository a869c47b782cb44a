"""Comparing two models point by point: which pairs can be compared, their 2-D maps aligned, their metrics.

Two models can be compared point by point only when test example #i is the same image for both: the
same dataset (name and content fingerprint) and the same test split (test_fraction, n_test). Their
latent dims may differ, so the 2-D maps are aligned, never the latents.

Maps are aligned by similarity Procrustes on the N shared test points: the lab's orthogonal Procrustes
(vae_core.lab.alignment.procrustes_align, Schönemann 1966) for the rotation/reflection R, then the
least-squares scale s (Gower 1975):

    R = argmin_{R^T R = I} || (B - b) R - (A - a) ||_F
    s = <(B - b) R, A - a>_F / || B - b ||_F^2           aligned B = s (B - b) R + a

Unlike the lab's β sweep (where a smaller map is the point and scale is kept), two models' maps are
in unrelated units (another PCA, another latent dim, UMAP), so B is also scaled to A's size.
residual = sqrt(mean_i || aligned_i - A_i ||^2) in A's map units; relative = residual / the RMS
distance of A's points from their mean, 0 for the same map up to a similarity and 1 when nothing of
B's layout fits (s = 0, every point at A's mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .lab.alignment import procrustes_align


@dataclass(frozen=True)
class MapAlignment:
    aligned: np.ndarray  # (N, 2) B's map points in A's frame
    residual: float  # RMS distance per point to A's map, in A's units
    relative: float  # residual / RMS spread of A's map, in [0, 1]
    scale: float  # s >= 0
    rotation: np.ndarray  # (2, 2) orthogonal, a reflection possibly


def align_maps(xy_a, xy_b) -> MapAlignment:
    """B's map (N, 2) rotated, reflected, scaled and shifted onto A's (N, 2); row i is the same test
    point in both. ValueError for maps of different points or fewer than 2 points."""
    a, b = np.asarray(xy_a, np.float64), np.asarray(xy_b, np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 2 or len(a) < 2:
        raise ValueError(f"aligning needs two maps of the same 2 or more points, got shapes {a.shape} and {b.shape}")
    r = procrustes_align(b, a).rotation
    ac, bc = a - a.mean(0), (b - b.mean(0)) @ r  # (N, 2) each, centred; B rotated
    norm = float((bc**2).sum())
    s = max(float((bc * ac).sum()) / norm, 0.0) if norm > 0 else 0.0  # >= 0 for the optimal R anyway
    aligned = s * bc + a.mean(0)
    residual = float(np.sqrt(((aligned - a) ** 2).sum(1).mean()))
    spread = float(np.sqrt((ac**2).sum(1).mean()))
    return MapAlignment(aligned, residual, residual / spread if spread > 0 else 0.0, s, r)


def shared_rows(index_a, index_b) -> tuple[np.ndarray, np.ndarray]:
    """Rows of two maps (their test indices (N_a,), (N_b,)) that show the same test points, in A's row
    order: index_a[rows_a] == index_b[rows_b]."""
    ia, ib = np.asarray(index_a, np.int64), np.asarray(index_b, np.int64)
    pos_b = {int(t): r for r, t in enumerate(ib)}
    rows_a = np.array([r for r, t in enumerate(ia) if int(t) in pos_b], np.int64)
    rows_b = np.array([pos_b[int(ia[r])] for r in rows_a], np.int64)
    return rows_a, rows_b


def _split(meta: dict) -> str:
    d, tc = meta.get("dataset") or {}, meta.get("train_config") or {}
    name = d.get("name", tc.get("dataset", "?"))
    return f"{name} (test fraction {tc.get('test_fraction', '?')}, {d.get('n_test', '?')} test images)"


def compatible(meta_a: dict, meta_b: dict) -> str | None:
    """None when test example #i is the same image under both models (checkpoint headers, as
    vae_core.checkpoints.read_metadata returns them); else the reason, to show as is."""
    da, db = meta_a.get("dataset") or {}, meta_b.get("dataset") or {}
    ta, tb = meta_a.get("train_config") or {}, meta_b.get("train_config") or {}
    if da.get("name") != db.get("name"):
        what = "another dataset"
    elif ta.get("test_fraction") != tb.get("test_fraction") or da.get("n_test") != db.get("n_test"):
        what = "another test split"
    elif da.get("fingerprint") != db.get("fingerprint"):  # a content hash of the data, split included
        what = "other data under the same dataset name"
    else:
        return None
    return (
        f"Model B was trained on {_split(meta_b)}, model A on {_split(meta_a)}: {what}. "
        "Only models trained on the same dataset and test split can be compared point by point "
        "(test example # must be the same image in both)."
    )


def target_note(meta_a: dict, meta_b: dict) -> str | None:
    """A note when the two models see the test images differently (likelihood or binarization), so
    their per-point nats are log-densities of different targets; None when they agree."""
    la, lb = (meta_a.get("model_config") or {}).get("likelihood"), (meta_b.get("model_config") or {}).get("likelihood")
    ba, bb = (meta_a.get("train_config") or {}).get("binarize"), (meta_b.get("train_config") or {}).get("binarize")
    if (la, ba) == (lb, bb):
        return None
    return (
        f"The models see the images differently (A: {la} likelihood, binarize {ba}; B: {lb}, binarize {bb}): "
        "their nats are log-densities of different targets, so compare them with care."
    )


METRIC_ROWS = ("ELBO", "recon", "KL", "log p(x)", "active units")


def stored_metrics(meta: dict) -> dict:
    """The stored test-set metrics of one checkpoint header, as rows of METRIC_ROWS (nats per example;
    None where the file does not record them), plus "K" (log p(x)'s importance samples)."""
    m = meta.get("metrics") or {}
    return {
        "ELBO": m.get("elbo"),
        "recon": m.get("recon"),
        "KL": m.get("kl"),
        "log p(x)": m.get("log_likelihood"),
        "active units": m.get("active_units"),
        "K": m.get("iw_samples"),
    }
