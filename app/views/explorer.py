"""Explorer: the latent map of the test set, one slider per latent dim, live decoding, ELBO of a point.

State (all keys prefixed explorer_): z (list, the truth the sliders and map star follow), selected
(test index or None), index (the number input), z{i} (server sliders), draws (sample counter).
Clicks, buttons and slider releases all go through callbacks, which run before the script, so the
map star, sliders and image agree within one run.
"""
from __future__ import annotations

import functools
import json
import os

import numpy as np
import streamlit as st
import torch

from app.common import current_checkpoint, dataset_for, test_targets
from app.components.hover_preview import hover_preview, hover_sprite
from app.views.breakdown import render_breakdown, show_image
from app.views.latent_data import ModelView, model_view
from app.views.latent_map import MapProjection, choose_projection, map_marks, point_from_event, static_map_figure
from vae_core.checkpoints import Checkpoint
from vae_core.images import png_bytes, tile, to_display, upscale
from vae_core.latent import decode, manifold_grid, posterior_sample, prior_sample

P = "explorer_"
SLIDER_RANGE = 3.0


# --- state --------------------------------------------------------------------------------------

def _set_z(z) -> None:
    """Sliders span ±3: a value outside is clipped, and the dims that were are listed under the map."""
    st.session_state[P + "clipped"] = [i for i, v in enumerate(z) if abs(v) > SLIDER_RANGE]
    z = [float(np.clip(v, -SLIDER_RANGE, SLIDER_RANGE)) for v in z]
    st.session_state[P + "z"] = z
    for i, v in enumerate(z):
        st.session_state[f"{P}z{i}"] = v


def select_point(ckpt: Checkpoint, test_index: int) -> None:
    """Load the encoder mean of test example `test_index` into the sliders (map click, number input)."""
    x = test_targets(ckpt)
    test_index = int(np.clip(test_index, 0, len(x) - 1))
    with torch.no_grad():
        mu, _ = ckpt.model.encode(x[test_index:test_index + 1])
    st.session_state[P + "selected"] = test_index
    st.session_state[P + "index"] = test_index
    _set_z(mu[0].tolist())


def _reset_for(ckpt: Checkpoint, view: ModelView) -> None:
    """A newly opened model starts on its first map point."""
    if st.session_state.get(P + "model") == ckpt.path and len(st.session_state.get(P + "z", [])) == view.latent_dim:
        return
    for k in [k for k in st.session_state if k.startswith(P + "z")]:
        del st.session_state[k]
    st.session_state[P + "model"] = ckpt.path
    st.session_state[P + "draws"] = 0
    select_point(ckpt, int(view.index[0]))


def _on_map_select(ckpt: Checkpoint) -> None:
    idx = point_from_event(st.session_state.get(P + "map"))
    if idx is not None:
        select_point(ckpt, idx)


def _on_index(ckpt: Checkpoint) -> None:
    select_point(ckpt, int(st.session_state[P + "index"]))


def _on_slider() -> None:
    k = len(st.session_state[P + "z"])
    st.session_state[P + "z"] = [float(st.session_state[f"{P}z{i}"]) for i in range(k)]


def _next_generator() -> torch.Generator:
    st.session_state[P + "draws"] = st.session_state.get(P + "draws", 0) + 1
    return torch.Generator().manual_seed(st.session_state[P + "draws"])


def _on_zero() -> None:
    _set_z([0.0] * len(st.session_state[P + "z"]))


def _on_prior() -> None:
    _set_z(prior_sample(len(st.session_state[P + "z"]), _next_generator()).tolist())


def _on_posterior(ckpt: Checkpoint) -> None:
    idx = st.session_state.get(P + "selected")
    if idx is None:
        return
    x = test_targets(ckpt)[idx:idx + 1]
    with torch.no_grad():
        mu, logvar = ckpt.model.encode(x)
    _set_z(posterior_sample(mu[0], logvar[0], _next_generator()).tolist())


def _on_decoder_release(key: str) -> None:
    z = (st.session_state.get(key) or {}).get("z")
    if z is not None and len(z) == len(st.session_state[P + "z"]):
        _set_z(z)


# --- panels -------------------------------------------------------------------------------------

def _browser_decoder():
    """(latent_decoder, browser_weights) when the in-browser component is available, else None."""
    try:
        from app.components.latent_decoder import browser_weights, latent_decoder
    except Exception:  # the component is optional: fall back to server-side sliders
        return None
    return latent_decoder, browser_weights


@st.fragment
def _sliders(ckpt: Checkpoint, view: ModelView, proj: MapProjection, n: int, selected_xy) -> None:
    """Everything that follows z alone: a slider release or a z button reruns only this, not the map
    (its spec stays the same, so the browser keeps the drawn chart), previews or breakdown."""
    _decoder_panel(ckpt, view)
    z = st.session_state[P + "z"]
    # the star and the selection ring are moved in the browser (see latent_map.map_marks)
    map_marks(proj.transform(np.asarray(z)[None])[0], selected_xy, key=P + "marks")
    clipped = st.session_state.get(P + "clipped")
    if clipped:
        st.caption("⚠ z was clipped to the sliders' ±3 range in " + ", ".join(f"z{i + 1}" for i in clipped)
                   + ", so the star sits a little off the selected point.")
    _z_downloads(ckpt, list(z))


def _z_downloads(ckpt: Checkpoint, z: list) -> None:
    """Made only when clicked (deferred data): a release does not pay for an 8x PNG."""
    def png() -> bytes:
        return png_bytes(to_display(decode(ckpt.model, torch.tensor(z)), ckpt.model_config.input_shape), scale=8)
    cols = st.columns(2)
    cols[0].download_button("⬇ decoded image (PNG)", png, "decoded.png", "image/png",
                            on_click="ignore", key=P + "dl_png", width="stretch")
    cols[1].download_button("⬇ z (JSON)", lambda: json.dumps({"checkpoint": ckpt.path, "z": z}, indent=1),
                            "z.json", "application/json", on_click="ignore", key=P + "dl_z", width="stretch")


def _decoder_panel(ckpt: Checkpoint, view: ModelView) -> None:
    z = st.session_state[P + "z"]
    labels, flags = view.slider_labels(), view.collapsed
    b = st.columns(3)
    b[0].button("z = 0", on_click=_on_zero, key=P + "btn_zero", width="stretch",
                help="the prior's mean")
    b[1].button("🎲 prior sample", on_click=_on_prior, key=P + "btn_prior", width="stretch",
                help="z ~ p(z) = N(0, I)")
    sel = st.session_state.get(P + "selected")
    b[2].button("🎯 posterior sample", on_click=_on_posterior, args=(ckpt,), key=P + "btn_post",
                width="stretch", disabled=sel is None,
                help=f"z ~ q(z|x) of test #{sel}" if sel is not None else "select a point first")
    comp = _browser_decoder()
    weights = comp[1](ckpt) if comp is not None else None
    live = weights is not None and st.toggle(
        "Decode in the browser while dragging", value=True, key=P + "live",
        help="The MLP decoder runs in your browser, so the image follows the slider as you drag. "
             "Off: sliders decode on the server when released.")
    if live:
        comp[0](weights, z, labels, flags, key=P + "decoder", height=224,
                on_change=functools.partial(_on_decoder_release, P + "decoder"))
    else:
        img = decode(ckpt.model, torch.tensor(z))
        show_image(img, ckpt, "decoded E[x|z]", 224)
        cols = st.columns(2)
        for i in range(view.latent_dim):
            if f"{P}z{i}" not in st.session_state:
                st.session_state[f"{P}z{i}"] = z[i]
            cols[i % 2].slider(labels[i], -SLIDER_RANGE, SLIDER_RANGE, step=0.05, key=f"{P}z{i}",
                               on_change=_on_slider,
                               help="collapsed: this dim's KL < 0.01 nats or its mean barely varies, "
                                    "so the decoder ignores it" if flags[i] else None)
    n_coll = sum(flags)
    if n_coll:
        st.caption(f"{n_coll} of {view.latent_dim} dims are collapsed (average KL < 0.01 nats or inactive): "
                   "moving them changes little.")


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
    with torch.no_grad():
        recon = ckpt.model.decode_mean(ckpt.model.encode(x[None])[0])[0]
    with c[1]:
        show_image(x, ckpt, f"#{sel}", 84)
    with c[2]:
        show_image(recon, ckpt, "recon.", 84)
    c[3].markdown(f"**Selected #{sel}** · label {_label_of(view, ckpt, sel)}  \n"
                  "its μ is in the sliders, its ELBO breakdown below")


def _manifold(ckpt: Checkpoint, n: int = 15) -> None:
    """k = 2: decode a grid at Gaussian quantiles (Kingma & Welling 2014, fig. 4)."""
    grid = manifold_grid(n)
    imgs = to_display(decode(ckpt.model, grid), ckpt.model_config.input_shape)
    st.image(upscale(tile(imgs, pad=1), 720), caption=f"Decoded manifold: z on a {n}×{n} grid at N(0,1) quantiles 5%–95% "
             "(z1 → right, z2 → up)", clamp=True, width="stretch")


def _csv_export(ckpt: Checkpoint, view: ModelView, proj: MapProjection, n: int) -> None:
    csv = _embedding_csv(ckpt.path, os.path.getmtime(ckpt.path), proj.name, n, view, proj)
    st.download_button(f"⬇ map embedding (CSV, {proj.name})", csv, "embedding.csv",
                       "text/csv", on_click="ignore", key=P + "dl_csv")


def embedding_csv(view: ModelView, proj: MapProjection, n: int) -> str:
    """One row per map point: test index, label (-1: none), map x, y, then the encoder mean."""
    header = "test_index,label,map_x,map_y," + ",".join(f"mu{d + 1}" for d in range(view.latent_dim))
    rows = np.column_stack([view.index[:n], view.labels[:n], proj.xy[:n], view.means[:n]])
    return header + "\n" + "\n".join(f"{int(r[0])},{int(r[1])}," + ",".join(f"{v:.6g}" for v in r[2:])
                                      for r in rows)


@st.cache_resource(max_entries=8, show_spinner=False)
def _embedding_csv(path: str, mtime: float, proj_name: str, n: int, _view: ModelView, _proj: MapProjection) -> str:
    return embedding_csv(_view, _proj, n)


@st.fragment
def _body(ckpt: Checkpoint, view: ModelView, proj: MapProjection, n: int) -> None:
    """Map, sliders and the selected point's breakdown: reruns alone on clicks (a slider release
    reruns only _sliders inside it)."""
    sel = st.session_state.get(P + "selected")
    row = view.row_of(sel) if sel is not None else None
    left, right = st.columns([3, 2], gap="medium")

    def sliders() -> None:
        with right:
            st.number_input("Test example #", 0, view.n_test - 1, key=P + "index", on_change=_on_index,
                            args=(ckpt,), help="type an index, or click a point on the map")
            _sliders(ckpt, view, proj, n, proj.xy[row] if row is not None and row < n else None)

    def map_panel() -> None:
        with left:
            st.plotly_chart(static_map_figure(proj, view, n), key=P + "map",
                            on_select=functools.partial(_on_map_select, ckpt),
                            selection_mode="points", config={"displaylogo": False})
            placed = " (drawn directly)" if proj.name == "latent" else f", placed by {proj.name.upper()}"
            st.caption(f"Showing **{n:,}** of {view.n_test:,} test points · encoder means μ(x) · "
                       f"★ = current z{placed} · hover a point to see its image below, click it to load its μ.",
                       help=proj.help)
            _previews(ckpt, view, n, sel)
            if view.latent_dim == 2:
                _manifold(ckpt)

    # Elements go to the browser in script order. The first run sends the map before the 1.7 MB
    # decoder weights (first paint); later runs (a click) send the sliders' new z first.
    first = not st.session_state.get(P + "painted")
    for panel in ((map_panel, sliders) if first else (sliders, map_panel)):
        panel()
    st.session_state[P + "painted"] = True
    st.divider()
    if sel is not None:
        x = test_targets(ckpt)[sel]
        render_breakdown(ckpt, x, key=P + "bd", collapsed=view.collapsed,
                         title=f"ELBO breakdown · test example #{sel}", original_caption=f"test #{sel} (label "
                         f"{_label_of(view, ckpt, sel)})")
    st.divider()
    _csv_export(ckpt, view, proj, n)


def _label_of(view: ModelView, ckpt: Checkpoint, test_index: int) -> str:
    row = view.row_of(test_index)
    if row is not None:
        return str(int(view.labels[row])) if view.labels[row] >= 0 else "none"
    y = dataset_for(ckpt).y_test
    return str(int(y[test_index])) if y is not None else "none"


def render() -> None:
    ckpt = current_checkpoint()
    if ckpt is None:
        st.title("🧭 Latent explorer")
        return
    view = model_view(ckpt)
    _reset_for(ckpt, view)
    mc, tc = ckpt.model_config, ckpt.train_config
    st.title("🧭 Latent explorer")
    st.caption(f"{tc.dataset} · {mc.arch.upper()} {'-'.join(map(str, mc.hidden)) or 'linear'} · "
               f"latent dim {mc.latent_dim} · {mc.likelihood} · {tc.objective} β={tc.beta:g} · "
               f"test ELBO {ckpt.metrics.get('elbo', float('nan')):.1f} nats")
    c1, c2 = st.columns([1, 1])
    with c1:
        proj = choose_projection(view, ckpt.path, key=P + "projection")
    total = len(view.means)
    with c2:
        caps = [c for c in (100, 200, 500, 1000, 2000, 5000) if c < total] + [total]
        n = total if len(caps) == 1 else st.select_slider(
            "Points on the map", caps, value=min(total, 2000) if min(total, 2000) in caps else total,
            key=P + "cap", help=f"The map holds up to {total:,} test points in a fixed random order (a smaller "
            "cap is a subset of a larger one). Nothing is dropped silently: the count is shown under the map.")
    _body(ckpt, view, proj, n)
