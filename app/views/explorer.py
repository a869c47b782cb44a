"""Explorer page: the latent map of the test set, the decoder panel, and the selected point's ELBO.

First paint comes before torch: the map is drawn from the checkpoint's metadata and its projection
cache (`<ckpt>.proj.npz`, numpy only) and sent to the browser; only then does the page import torch,
load the model and add the panels (app.views.explorer_panels). Without a projection cache the model
is loaded first to encode the test set. A map of more than MAP_ALONE_ABOVE points goes alone (without
the controls above it) on the session's first run; the rest follows once the browser reports it drawn.
z (its state, the callbacks that set it, the sliders and the image): app.views.explorer_z.
"""

from __future__ import annotations

import functools
import sys
import time

import streamlit as st

from app.common import checkpoint_metadata, pick_checkpoint_path
from app.components.latent_map import classes_for, file_scope, latent_map, projection_spec
from app.safe import plain
from app.views.explorer_z import P, on_map_select, reset_for, z_sync
from app.views.latent_data import ModelView, map_view_from_cache
from app.views.latent_map import MapProjection, current_projection, map_payload, projection_picker
from app.views.map_extras import colour_options, hover_thumbs, map_colour
from vae_core.constants import SLIDER_RANGE

# A map of more points than this is sent alone on a session's first run, without the controls above it
# or the panels (torch, the decoder, the hover images, the breakdown): they follow once the browser
# reports the map drawn (its `drawn` trigger reruns the body fragment, which reruns the page), so the
# browser's one thread and the server's GIL draw the map first.
MAP_ALONE_ABOVE = 20_000


def _map_alone(path: str, n: int) -> bool:
    """Whether this run sends the map alone: a big map, shown for the first time in this session."""
    return n > MAP_ALONE_ABOVE and st.session_state.get(P + "map_alone") != path


def _let_the_map_out() -> None:
    """Once per server process, before torch is first imported: importing it holds the GIL for 2-3 s,
    and the server's event-loop thread needs the GIL to send the map and serve the component's
    script. Half a second of sleep here measured first paint 3.2-3.8 s -> 2.7-2.9 s after navigation."""
    if "torch" not in sys.modules:
        time.sleep(0.5)


def _open(path: str):
    """The loaded checkpoint (torch), or None with the reason shown."""
    from app.common import open_checkpoint

    return open_checkpoint(path)


@st.fragment
def _body(path: str, view: ModelView, proj: MapProjection, n: int) -> None:
    """Map, decoder column, previews and breakdown. A map click reruns this fragment (the sliders
    have already moved in the browser); a slider release reruns only the decoder column."""
    alone = _map_alone(path, n)
    if not alone and st.session_state.pop(P + "controls_later", False):
        st.rerun(scope="app")  # the map is drawn (its trigger reran this fragment): now the whole page
    left, right = st.columns([3, 2], gap="medium")
    with left:
        latent_map(
            map_payload(proj, view, path),
            n,
            projection_spec(proj.basis, view.latent_dim),
            classes_for(view.labels[:n]),
            proj.axes,
            key=P + "map",
            selected=st.session_state.get(P + "selected"),
            z=z_sync().z,
            z_range=SLIDER_RANGE,
            on_select=functools.partial(on_map_select, view),
            colour=map_colour(view, st.session_state.get(P + "colour", "label"), path),
            thumbs=functools.partial(hover_thumbs, path),
            thumbs_scope=file_scope(path),
            report_drawn=alone,
            highlight=st.session_state.get(P + "find_label"),  # app.views.find's label box, drawn under the map
        )
        placed = " (drawn directly)" if proj.name == "latent" else f", placed by {proj.name.upper()}"
        total = f"{view.n_test:,}" if view.n_test else "?"
        st.caption(
            f"Showing **{n:,}** of {total} test points · encoder means μ(x) · ★ = current z{placed} · "
            "hover a point to see its image, click it to load its μ · scroll to zoom, drag to pan, "
            "double-click to reset, click a label to hide it.",
            help=proj.help,
        )
    if alone:
        st.session_state[P + "map_alone"] = path
        st.caption("Loading the decoder…")
        return
    if n <= MAP_ALONE_ABOVE:
        _let_the_map_out()
    ckpt = _open(path)  # torch from here on: the map is already on its way to the browser
    if ckpt is None:
        return
    from app.views.explorer_panels import render_panels

    render_panels(ckpt, view, proj, n, left, right)


def _caption(meta: dict) -> str:
    mc, tc, metrics = meta["model_config"], meta["train_config"], meta.get("metrics") or {}
    hidden = "-".join(map(str, mc.get("hidden") or ())) or "linear"
    return (
        f"{plain(tc['dataset'])} · {mc['arch'].upper()} {hidden} · latent dim {mc['latent_dim']} · "
        f"{mc['likelihood']} · {tc['objective']} β={tc['beta']:g} · "
        + (f"test ELBO {metrics['elbo']:.1f} nats" if metrics.get("elbo") is not None else "no test ELBO")
    )


def render() -> None:
    st.title(":material/explore: Latent explorer")
    path = pick_checkpoint_path()
    meta = checkpoint_metadata(path) if path is not None else None
    if meta is None:
        return
    view = map_view_from_cache(path)
    if view is None:  # no usable projection cache beside the checkpoint: encode the test set (needs the model)
        from app.views.latent_data import model_view, rebuild_bad_cache

        ckpt = _open(path)
        if ckpt is None:
            return
        rebuild_bad_cache(ckpt)
        view = model_view(ckpt)
    reset_for(path, view)
    st.caption(_caption(meta))
    controls = st.container()
    total = len(view.means)
    caps = [c for c in (100, 1000, 10_000, 50_000, 100_000) if c < total] + [total]
    n = st.session_state.get(P + "cap", total)  # the slider's value, read before it is drawn
    n = n if n in caps else total
    if _map_alone(path, n):  # the controls come with the panels, on the full rerun the map's `drawn` asks for
        st.session_state[P + "controls_later"] = True
    else:
        _controls(controls, view, path, caps)
        st.session_state.pop(P + "controls_later", None)
    _body(path, view, current_projection(view, path, P + "projection"), n)


def _controls(box, view: ModelView, path: str, caps: list[int]) -> None:
    """The projection picker, the number of points and the colouring, in a row in `box`."""
    c1, c2, c3 = box.columns([2, 2, 1])
    with c1:
        projection_picker(view, path, key=P + "projection")
    if len(caps) > 1:
        c2.select_slider(
            "Points on the map",
            caps,
            value=caps[-1],
            key=P + "cap",
            help=f"All {caps[-1]:,} cached test points by default, in a fixed random order (a smaller cap is a "
            "subset of a larger one). Above 100,000 in view the map shows their density until you zoom in.",
        )
    c3.selectbox(
        "Colour by",
        colour_options(view),
        key=P + "colour",
        help="label, ‖μ‖ (distance of the encoder mean from 0), each point's ELBO, KL or "
        "importance-sampled log p(x) (computed once per model when first chosen), or one coordinate of μ",
    )
