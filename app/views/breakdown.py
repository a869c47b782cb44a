"""ELBO breakdown panel of one example: images, the terms in nats, KL per dim, log p(x) and the gap."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from app.common import one_thread
from vae_core.checkpoints import Checkpoint
from vae_core.constants import KL_COLLAPSED_NATS
from vae_core.data import target_description
from vae_core.images import png_bytes, to_display, upscale
from vae_core.latent import ELBOBreakdown, elbo_breakdown

K_DEFAULT = 100  # as the checkpoint's stored test log p(x); each click of a class costs 10x less than K = 1000
K_HELP = (
    "K importance samples z_k ~ q(z|x): log p(x) ≈ log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x) "
    "(Burda et al. 2016). A lower bound that tightens as K grows; K = 1 is the ELBO."
)


@st.cache_data(max_entries=2048, show_spinner=False)
def _png(raw: bytes, dtype: str, shape: tuple, input_shape: tuple, size: int) -> tuple[bytes, int]:
    """PNG bytes (and width) of an image, shared by all sessions: a class clicking the same points
    encodes each image once."""
    x = torch.from_numpy(np.frombuffer(raw, dtype=dtype).reshape(shape).copy())
    a = upscale(to_display(x, input_shape), size)
    return png_bytes(a), int(a.shape[1])


def show_image(x: torch.Tensor, ckpt: Checkpoint, caption: str, size: int = 168) -> None:
    a = x.detach().cpu().numpy()
    png, width = _png(a.tobytes(), a.dtype.str, a.shape, tuple(ckpt.model_config.input_shape), size)
    st.image(png, caption=caption, width=min(size, width))


def kl_bar(kl_per_dim, collapsed, height: int = 220, title: str = "KL per latent dim (nats)") -> go.Figure:
    kl = np.asarray(kl_per_dim)
    colors = ["#bab0ac" if c else "#4e79a7" for c in collapsed]
    fig = go.Figure(
        go.Bar(
            x=[f"z{d + 1}" for d in range(len(kl))],
            y=kl,
            marker_color=colors,
            hovertemplate="%{x}: %{y:.3f} nats<extra></extra>",
        )
    )
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=30, b=10), title=title, yaxis_title="nats", showlegend=False
    )
    return fig


@st.cache_resource(max_entries=512, show_spinner=False)
def _kl_bar(kl_per_dim: tuple, collapsed: tuple) -> go.Figure:
    """Built once per x for all sessions (plotly validates every property: ~20 ms a figure). Read-only."""
    return kl_bar(kl_per_dim, collapsed, title="KL per latent dim for this x (grey: collapsed on average)")


@st.cache_resource(max_entries=256, show_spinner=False)
def _breakdown(path: str, mtime: float, x_key: bytes, k: int, _model, _x: torch.Tensor) -> ELBOBreakdown:
    """Seeded, so a rerun (a slider move elsewhere on the page) reuses the numbers."""
    with torch.no_grad(), one_thread():
        return elbo_breakdown(_model, _x, k=k)


def render_breakdown(
    ckpt: Checkpoint,
    x: torch.Tensor,
    *,
    key: str,
    collapsed=None,
    title: str = "ELBO breakdown",
    original_caption: str = "input x",
    source: str = "test set",
) -> ELBOBreakdown:
    """x (*input_shape), as the likelihood sees it. key prefixes this panel's widgets. source: where x
    comes from ("your image" on the Upload page), named where the data description says "test set"."""
    st.markdown(f"#### {title}")  # callers plain() any user string in it
    note = target_description(ckpt.model_config.likelihood, ckpt.train_config.binarize)
    st.caption(f"{note.replace('test set:', source + ':')}; nats for this one example.")
    c1, c2, c3 = st.columns([1, 1, 3])
    with c3:
        k = st.select_slider(
            "K importance samples for log p(x)",
            [10, 100, 300, 1000, 3000, 5000],
            value=K_DEFAULT,
            key=f"{key}_k",
            help=K_HELP + " Raise K for a tighter bound.",
        )
    b = _breakdown(ckpt.path, os.path.getmtime(ckpt.path), hashlib.sha1(x.numpy().tobytes()).digest(), k, ckpt.model, x)
    with c1:
        show_image(x, ckpt, original_caption, 140)
    with c2:
        show_image(b.reconstruction, ckpt, "reconstruction E[x | z = μ]", 140)
    with c3:
        m = st.columns(3)
        m[0].metric("recon  E_q log p(x|z)", f"{b.recon:.2f}", help=f"Monte Carlo over the same K = {k} draws")
        m[1].metric("KL(q(z|x) ‖ p(z))", f"{b.kl:.2f}", help="closed form, summed over dims")
        m[2].metric("ELBO = recon − KL", f"{b.elbo:.2f}")
        m = st.columns(3)
        m[0].metric(f"log p(x)  (K = {k})", f"{b.log_px:.2f}", help=K_HELP)
        m[1].metric(
            "gap ≈ KL(q(z|x) ‖ p(z|x))",
            f"{b.gap:.2f}",
            help="log p(x) − ELBO: how far the encoder's q(z|x) is from the true posterior",
        )
        m[2].metric(
            "|μ| / √k",
            f"{float(b.mu.norm()) / np.sqrt(len(b.mu)):.2f}",
            help="distance of the mean from the origin, in units of a typical prior sample",
        )
    flags = collapsed if collapsed is not None else [v < KL_COLLAPSED_NATS for v in b.kl_per_dim]
    st.plotly_chart(_kl_bar(tuple(b.kl_per_dim), tuple(bool(f) for f in flags)), key=f"{key}_klbar")
    return b
