"""Explorer: the decoder panel (z buttons, one slider per latent dim, the decoded image) and z downloads.

Both modes use the sliders of app.components.latent_decoder. MLP and conv decoders run in the browser,
so the image follows a drag frame by frame with no server work; a decoder the browser cannot run (or
the toggle off) decodes on the server: the component sends z on release and, while dragging, at most
every PREVIEW_MS with one request in flight; the _decoder fragment, rerun alone by that, decodes z and
hands the pixels to the component (no st.image media fetch, no Streamlit slider widgets).
"""
from __future__ import annotations

import functools
import json
import os

import streamlit as st
import torch

from app.common import one_thread
from app.components.latent_decoder import browser_weights, latent_decoder, server_decoder
from app.views.explorer_state import P, on_decoder_release, on_posterior, on_prior, on_zero
from app.views.latent_data import ModelView
from vae_core.checkpoints import Checkpoint
from vae_core.images import png_bytes, to_display
from vae_core.latent import decode

PREVIEW_MS = 100  # server decoding: at most one z per this many ms while a slider is dragged


def _download_box() -> dict:
    """{"z": ...} read by the download buttons when clicked: a release reruns only _decoder, not the
    buttons, so they must not keep the z they were drawn with."""
    return st.session_state.setdefault(P + "download_z", {})


def z_downloads(ckpt: Checkpoint, z: list) -> None:
    """Made only when clicked (deferred data): a release does not pay for an 8x PNG."""
    box = _download_box()
    box["z"] = list(z)

    def png() -> bytes:
        x = decode(ckpt.model, torch.tensor(box["z"]))
        return png_bytes(to_display(x, ckpt.model_config.input_shape), scale=8)
    cols = st.container(horizontal=True, gap="small")
    cols.download_button("image (PNG)", png, "decoded.png", "image/png", icon=":material/download:",
                         on_click="ignore", key=P + "dl_png", help="the decoded image, 8× enlarged")
    cols.download_button("z (JSON)",
                         lambda: json.dumps({"checkpoint": os.path.basename(ckpt.path or ""), "z": box["z"]}, indent=1),
                         "z.json", "application/json", icon=":material/download:", on_click="ignore", key=P + "dl_z",
                         help="the sliders' z, to share or load back")


@st.fragment
def _decoder(ckpt: Checkpoint, view: ModelView, weights: dict | None) -> None:
    """The sliders and the image alone: a release (or a drag preview) reruns only this fragment,
    a few ms of server work and one element for the browser to update. weights: decode in the
    browser (vae_core.browser payload), or None: decode here."""
    z = st.session_state[P + "z"]
    labels, flags = view.slider_labels(), view.collapsed
    release = functools.partial(on_decoder_release, P + "decoder")
    if weights is not None:
        latent_decoder(weights, z, labels, flags, key=P + "decoder", height=224, on_change=release)
    else:
        with torch.no_grad(), one_thread():
            img = to_display(decode(ckpt.model, torch.tensor(z)), ckpt.model_config.input_shape)  # (H, W[, 3])
        server_decoder(img, z, labels, flags, key=P + "decoder", height=224, on_change=release,
                       preview_ms=PREVIEW_MS)
    _download_box()["z"] = list(z)


def decoder_panel(ckpt: Checkpoint, view: ModelView) -> None:
    b = st.container(horizontal=True, gap="small")  # a narrow column wraps the buttons instead of cutting "p…"
    b.button("z = 0", on_click=on_zero, key=P + "btn_zero", help="z = 0: the prior's mean")
    b.button("prior", icon=":material/casino:", on_click=on_prior, key=P + "btn_prior",
             help="a prior sample: z ~ p(z) = N(0, I)")
    sel = st.session_state.get(P + "selected")
    b.button("posterior", icon=":material/target:", on_click=on_posterior, args=(ckpt,), key=P + "btn_post",
             disabled=sel is None,
             help=f"a posterior sample: z ~ q(z|x) of test #{sel}" if sel is not None else "select a point first")
    weights = browser_weights(ckpt)
    live = weights is not None and st.toggle(
        "Decode in the browser while dragging", value=True, key=P + "live",
        help="The decoder runs in your browser, so the image follows the slider as you drag. "
             "Off: the server decodes each z instead.")
    _decoder(ckpt, view, weights if live else None)
    if not live:
        st.caption("Decoded on the server: while you drag, the image follows at the server's pace (one "
                   f"decode at a time, at most every {PREVIEW_MS} ms); on release it shows the final z.")
    n_coll = sum(view.collapsed)
    if n_coll:
        st.caption(f"{n_coll} of {view.latent_dim} dims are collapsed (average KL < 0.01 nats or inactive): "
                   "moving them changes little.")
