"""Explorer panels that need the model (torch): the decoder column (app.views.explorer_z.z_panel), the
hover thumbnails and the clicked point's images under the map, finding and comparing points
(app.views.find: neighbours, least likely gallery, by label), the selected point's q(z|x)
(app.views.uncertainty), the 2-D manifold, the ELBO breakdown and the CSV export.
app/views/explorer.py draws the map first and only then imports this module.
"""

from __future__ import annotations

import os

import numpy as np
import streamlit as st
import torch

from app.common import dataset_for, one_thread, page_link, test_targets
from app.components.hover_preview import hover_preview, hover_sprite
from app.views.breakdown import render_breakdown, show_image
from app.views.explorer_z import P, on_index, z_panel
from app.views.find import render_find
from app.views.latent_data import ModelView
from app.views.latent_map import MapProjection
from app.views.uncertainty import render_uncertainty
from vae_core.checkpoints import Checkpoint
from vae_core.images import tile, to_display, upscale
from vae_core.latent import decode, manifold_grid, reconstruct

HOVER_MAX = 5000  # thumbnails sent to the browser for hovering (one sprite sheet)


@st.cache_resource(max_entries=8, show_spinner=False)
def _sprite(path: str, mtime: float, n: int, _ckpt: Checkpoint, _view: ModelView) -> dict:
    idx = _view.index[:n]
    imgs = to_display(test_targets(_ckpt)[torch.from_numpy(idx)], _ckpt.model_config.input_shape)
    return hover_sprite(imgs, idx)


def _previews(ckpt: Checkpoint, view: ModelView, n: int, sel: int | None) -> None:
    """Under the map: the image under the mouse (browser-side) and the clicked point."""
    c = st.columns([5, 2, 2, 4], vertical_alignment="center")
    with c[0]:
        m = min(n, HOVER_MAX)
        hover_preview(_sprite(ckpt.path, os.path.getmtime(ckpt.path), m, ckpt, view), key=P + "hover")
        if n > m:
            st.caption(f"hover images for the first {m:,} points")
    if sel is None:
        return
    x = test_targets(ckpt)[sel]
    with one_thread():
        recon = reconstruct(ckpt.model, x[None])[0]
    with c[1]:
        show_image(x, ckpt, f"#{sel}", 84)
    with c[2]:
        show_image(recon, ckpt, "recon.", 84)
    c[3].markdown(f"**Selected #{sel}** · label {_label_of(view, ckpt, sel)}  \nits ELBO breakdown is below")


def _manifold(ckpt: Checkpoint, n: int = 15) -> None:
    """k = 2: decode a grid at Gaussian quantiles (Kingma & Welling 2014, fig. 4)."""
    grid = manifold_grid(n)
    imgs = to_display(decode(ckpt.model, grid), ckpt.model_config.input_shape)
    st.image(
        upscale(tile(imgs, pad=1), 720),
        caption=f"Decoded manifold: z on a {n}×{n} grid at N(0,1) quantiles 5%–95% (z1 → right, z2 → up)",
        clamp=True,
        width="stretch",
    )


def _csv_export(ckpt: Checkpoint, view: ModelView, proj: MapProjection, n: int) -> None:
    csv = _embedding_csv(ckpt.path, os.path.getmtime(ckpt.path), proj.name, n, view, proj)
    st.download_button(
        f"map embedding (CSV, {proj.name})",
        csv,
        "embedding.csv",
        "text/csv",
        icon=":material/download:",
        on_click="ignore",
        key=P + "dl_csv",
        help="one row per map point: test index, label, map x, y, then the encoder mean",
    )


@st.cache_resource(max_entries=4, show_spinner=False)
def _explorer_html(path: str, mtime: float, _ckpt: Checkpoint) -> bytes:
    """Built once per checkpoint file for all sessions, when the first of them clicks."""
    from vae_core.export_html import explorer_data, explorer_html

    data = explorer_data(_ckpt, test_targets(_ckpt), dataset_for(_ckpt).y_test)
    return explorer_html(data).encode("utf-8")


def _html_export(ckpt: Checkpoint) -> None:
    """The same file as `python -m vae_core export-html`: a serverless explorer for a static host."""
    mtime = os.path.getmtime(ckpt.path)
    st.download_button(
        "standalone explorer (HTML)",
        lambda: _explorer_html(ckpt.path, mtime, ckpt),
        "explorer.html",
        "text/html",
        icon=":material/download:",
        on_click="ignore",
        key=P + "dl_html",
        help="One HTML file, no server needed: the map, sliders, traversal and each test point's "
        "ELBO; it opens offline in any browser (decoding runs in the browser). Building it "
        "takes a few seconds.",
    )


def embedding_csv(view: ModelView, proj: MapProjection, n: int) -> str:
    """One row per map point: test index, label (-1: none), map x, y, then the encoder mean."""
    header = "test_index,label,map_x,map_y," + ",".join(f"mu{d + 1}" for d in range(view.latent_dim))
    rows = np.column_stack([view.index[:n], view.labels[:n], proj.xy[:n], view.means[:n]])
    return header + "\n" + "\n".join(f"{int(r[0])},{int(r[1])}," + ",".join(f"{v:.6g}" for v in r[2:]) for r in rows)


@st.cache_resource(max_entries=8, show_spinner=False)
def _embedding_csv(path: str, mtime: float, proj_name: str, n: int, _view: ModelView, _proj: MapProjection) -> str:
    return embedding_csv(_view, _proj, n)


def _label_of(view: ModelView, ckpt: Checkpoint, test_index: int) -> str:
    row = view.row_of(test_index)
    if row is not None:
        return str(int(view.labels[row])) if view.labels[row] >= 0 else "none"
    y = dataset_for(ckpt).y_test
    return str(int(y[test_index])) if y is not None else "none"


def render_panels(ckpt: Checkpoint, view: ModelView, proj: MapProjection, n: int, left, right) -> None:
    """Called by the explorer's body fragment once the map has been sent."""
    sel = st.session_state.get(P + "selected")
    with right:
        st.number_input(
            "Test example #",
            0,
            view.n_test - 1,
            key=P + "index",
            on_change=on_index,
            args=(ckpt,),
            help="type an index, or click a point on the map",
        )
        z_panel(ckpt, view)
    with left:
        _previews(ckpt, view, n, sel)
        render_uncertainty(ckpt, view, proj, n, sel)
        render_find(ckpt, view, n)
        if view.latent_dim == 2:
            _manifold(ckpt)
    st.divider()
    if sel is not None:
        x = test_targets(ckpt)[sel]
        render_breakdown(
            ckpt,
            x,
            key=P + "bd",
            collapsed=view.collapsed,
            title=f"ELBO breakdown · test example #{sel}",
            original_caption=f"test #{sel} (label {_label_of(view, ckpt, sel)})",
        )
    st.divider()
    page_link(
        "compare",
        "Compare two models",
        "Compare with another model (the same point, aligned maps)",
        ":material/compare:",
    )
    c = st.columns(2)
    with c[0]:
        _csv_export(ckpt, view, proj, n)
    with c[1]:
        _html_export(ckpt)
