"""Explorer: the selected point's posterior q(z|x) = N(mu, diag sigma^2), not only its mean (issue 12
item 10, as vae-explainer shows it).

- On the map: S draws z ~ q(z|x) (vae_core.latent.posterior_samples, seeded: the same cloud on every
  rerun) handed to the canvas map (app.components.latent_map.map_cloud), which places them by its own
  projection and draws them as small dots around the point. Toggle "Show q(z|x) samples".
- "q(z|x) on a latent plane": two latent dims (default: the two of highest average KL), the map
  points' means faint, the point's mean with its 1-sigma and 2-sigma ellipses (axis-aligned: q is
  diagonal), the same samples, and the prior's unit circle dashed for comparison.
Needs torch: called from app.views.explorer_panels, after the map has been sent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from app.common import one_thread, test_targets
from app.components.latent_map import map_cloud
from app.palette import label_colour
from app.views.explorer_z import P
from app.views.latent_data import ModelView
from app.views.latent_map import MapProjection, map_payload
from vae_core.checkpoints import Checkpoint
from vae_core.latent import encode, posterior_samples

SAMPLES = 64  # S draws of the cloud
SEED = 0  # of the cloud's generator: a rerun draws the same cloud
FAINT = 3000  # map points drawn faint on the latent plane (the first ones: a random subset of the map)


@dataclass(frozen=True)
class Posterior:
    """q(z|x) of one test point: mu, sigma (k,) and S draws z (S, k)."""

    mu: np.ndarray
    sigma: np.ndarray
    z: np.ndarray


@st.cache_resource(max_entries=256, show_spinner=False)
def _posterior(path: str, mtime: float, test_index: int, s: int, seed: int, _ckpt: Checkpoint) -> Posterior:
    """Shared by all sessions (read-only): a class clicking the same point encodes it once."""
    x = test_targets(_ckpt)[test_index]  # as the likelihood sees it, like the map's means
    with one_thread():
        mu, logvar = encode(_ckpt.model, x[None])  # (1, k) each
        z = posterior_samples(_ckpt.model, x, s, torch.Generator().manual_seed(seed))  # (S, k)
    return Posterior(mu[0].numpy(), torch.exp(0.5 * logvar[0]).numpy(), z.numpy())


def posterior(ckpt: Checkpoint, test_index: int) -> Posterior:
    return _posterior(ckpt.path, os.path.getmtime(ckpt.path), int(test_index), SAMPLES, SEED, ckpt)


def default_dims(kl_per_dim) -> tuple[int, int]:
    """The two latent dims of highest average KL (the ones the model uses most), highest first."""
    order = np.argsort(-np.asarray(kl_per_dim, np.float64), kind="stable")
    return int(order[0]), int(order[1])


def _ellipse(mu: np.ndarray, sigma: np.ndarray, scale: float, m: int = 97) -> tuple[np.ndarray, np.ndarray]:
    """The axis-aligned ellipse (z_i - mu_i)^2 / (c sigma_i)^2 + (z_j - mu_j)^2 / (c sigma_j)^2 = 1."""
    t = np.linspace(0, 2 * np.pi, m)
    return mu[0] + scale * sigma[0] * np.cos(t), mu[1] + scale * sigma[1] * np.sin(t)


def plane_figure(view: ModelView, n: int, post: Posterior, dims: tuple[int, int], colour: str) -> go.Figure:
    """q(z|x) on the latent plane of dims (i, j), equal-aspect."""
    i, j = dims
    faint = view.means[: min(n, FAINT)]
    mu, sigma = post.mu[[i, j]], post.sigma[[i, j]]
    fig = go.Figure()
    fig.add_scatter(
        x=faint[:, i],
        y=faint[:, j],
        mode="markers",
        name="map points' μ",
        marker=dict(size=3, color="#9a9a9a", opacity=0.25),
        hoverinfo="skip",
    )
    cx, cy = _ellipse(np.zeros(2), np.ones(2), 1.0)
    fig.add_scatter(x=cx, y=cy, mode="lines", name="prior N(0, 1): 1σ", line=dict(color="#777", dash="dash", width=1))
    for c, width in ((2.0, 1.2), (1.0, 2.2)):
        ex, ey = _ellipse(mu, sigma, c)
        fig.add_scatter(x=ex, y=ey, mode="lines", name=f"q(z|x): {c:g}σ", line=dict(color=colour, width=width))
    fig.add_scatter(
        x=post.z[:, i],
        y=post.z[:, j],
        mode="markers",
        name=f"{len(post.z)} samples z ~ q(z|x)",
        marker=dict(size=4, color=colour, opacity=0.5),
        hovertemplate="(%{x:.3f}, %{y:.3f})<extra></extra>",
    )
    fig.add_scatter(
        x=[mu[0]],
        y=[mu[1]],
        mode="markers",
        name="μ(x)",
        marker=dict(size=9, symbol="x", color="#222"),
        hovertemplate="μ (%{x:.3f}, %{y:.3f})<extra></extra>",
    )
    fig.update_layout(
        height=420,
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis_title=f"z{i + 1}",
        yaxis_title=f"z{j + 1}",
        yaxis=dict(scaleanchor="x", scaleratio=1),  # equal aspect: a circle stays a circle
        legend=dict(orientation="h", yanchor="top", y=-0.15, x=0),
    )
    return fig


@st.cache_resource(max_entries=64, show_spinner=False)
def _plane_figure(
    path: str,
    mtime: float,
    test_index: int,
    dims: tuple[int, int],
    n: int,
    colour: str,
    _view: ModelView,
    _post: Posterior,
) -> go.Figure:
    """Built once per point and plane for all sessions (plotly validates every property). Read-only."""
    return plane_figure(_view, n, _post, dims, colour)


def plane_caption(post: Posterior, dims: tuple[int, int], test_index: int) -> str:
    i, j = dims
    nums = "; ".join(f"z{d + 1}: μ = {post.mu[d]:.4f}, σ = {post.sigma[d]:.4f}" for d in (i, j))
    return (
        f"Test #{test_index} · {nums}. A small σ means the encoder is sure where x lies; σ near 1 (the dashed "
        "prior circle) means it says little more than the prior. Ellipses at 1σ and 2σ (axis-aligned: q is "
        f"diagonal); the dots are the same {len(post.z)} samples the map shows."
    )


def _plane(path: str, view: ModelView, n: int, post: Posterior, sel: int) -> None:
    k = view.latent_dim
    if k < 2:
        st.caption(f"One latent dimension: q(z|x) = N(μ = {post.mu[0]:.4f}, σ = {post.sigma[0]:.4f}²).")
        return
    di, dj = default_dims(view.kl_per_dim)
    name = [f"z{d + 1} · KL {kl:.2f}" for d, kl in enumerate(view.kl_per_dim)]
    c = st.columns(2)
    i = c[0].selectbox("x axis", range(k), index=di, format_func=name.__getitem__, key=P + "unc_x")
    j = c[1].selectbox("y axis", range(k), index=dj, format_func=name.__getitem__, key=P + "unc_y")
    if i == j:
        st.info("Pick two different latent dimensions.", icon=":material/info:")
        return
    row = view.row_of(sel)
    colour = label_colour(view.labels[row]) if row is not None and view.labels[row] >= 0 else "#4e79a7"
    mtime = os.path.getmtime(path)
    st.plotly_chart(_plane_figure(path, mtime, sel, (i, j), n, colour, view, post), key=P + "unc_fig")
    st.caption(plane_caption(post, (i, j), sel))


def render_uncertainty(ckpt: Checkpoint, view: ModelView, proj: MapProjection, n: int, sel: int | None) -> None:
    """Under the map: the cloud toggle (the cloud itself goes to the map) and the latent-plane panel."""
    on = st.toggle(
        "Show q(z|x) samples",
        value=True,
        key=P + "cloud_on",
        help=f"{SAMPLES} draws z ~ q(z|x) = N(μ, diag σ²) of the selected point, placed on the map as the ★ is: "
        "how sure the encoder is where this image lies. PCA places them exactly; UMAP by its kNN rule, so a "
        "draw off the data lands near the test points it is closest to, and the cloud need not centre on the point.",
    )
    post = posterior(ckpt, sel) if sel is not None else None
    cloud = post.z if post is not None and on else None
    map_cloud(cloud, map_payload(proj, view, ckpt.path)["id"], sel, key=P + "cloud")
    if post is None:
        return
    # A toggle, not an expander: a closed expander's chart is still sent, and plotly.js would then load
    # on every explorer visit and each click would send ~55 kB (the map and the sliders avoid plotly).
    if st.toggle(
        "Show q(z|x) on a latent plane",
        value=False,
        key=P + "unc_plane",
        help="Two latent dims of your choice: the selected point's μ, its 1σ and 2σ ellipses, the same "
        "q(z|x) samples, and the prior's unit circle.",
    ):
        _plane(ckpt.path, view, n, post, sel)
