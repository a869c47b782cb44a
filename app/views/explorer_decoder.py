"""Explorer: the decoder panel (z buttons, one slider per latent dim, the decoded image) and z downloads.

MLP decoders run in the browser (app.components.latent_decoder) so the image follows a drag;
other decoders decode on the server when a slider is released.
"""
from __future__ import annotations

import functools
import json

import streamlit as st
import torch

from app.views.breakdown import show_image
from app.views.explorer_state import (P, SLIDER_RANGE, on_decoder_release, on_posterior, on_prior, on_slider,
                                      on_zero)
from app.views.latent_data import ModelView
from vae_core.checkpoints import Checkpoint
from vae_core.images import png_bytes, to_display
from vae_core.latent import decode


def _browser_decoder():
    """(latent_decoder, browser_weights) when the in-browser component is available, else None."""
    try:
        from app.components.latent_decoder import browser_weights, latent_decoder
    except Exception:  # the component is optional: fall back to server-side sliders
        return None
    return latent_decoder, browser_weights


def z_downloads(ckpt: Checkpoint, z: list) -> None:
    """Made only when clicked (deferred data): a release does not pay for an 8x PNG."""
    def png() -> bytes:
        return png_bytes(to_display(decode(ckpt.model, torch.tensor(z)), ckpt.model_config.input_shape), scale=8)
    cols = st.columns(2)
    cols[0].download_button("⬇ decoded image (PNG)", png, "decoded.png", "image/png",
                            on_click="ignore", key=P + "dl_png", width="stretch")
    cols[1].download_button("⬇ z (JSON)", lambda: json.dumps({"checkpoint": ckpt.path, "z": z}, indent=1),
                            "z.json", "application/json", on_click="ignore", key=P + "dl_z", width="stretch")


def decoder_panel(ckpt: Checkpoint, view: ModelView) -> None:
    z = st.session_state[P + "z"]
    labels, flags = view.slider_labels(), view.collapsed
    b = st.columns(3)
    b[0].button("z = 0", on_click=on_zero, key=P + "btn_zero", width="stretch",
                help="the prior's mean")
    b[1].button("🎲 prior sample", on_click=on_prior, key=P + "btn_prior", width="stretch",
                help="z ~ p(z) = N(0, I)")
    sel = st.session_state.get(P + "selected")
    b[2].button("🎯 posterior sample", on_click=on_posterior, args=(ckpt,), key=P + "btn_post",
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
                on_change=functools.partial(on_decoder_release, P + "decoder"))
    else:
        img = decode(ckpt.model, torch.tensor(z))
        show_image(img, ckpt, "decoded E[x|z]", 224)
        cols = st.columns(2)
        for i in range(view.latent_dim):
            if f"{P}z{i}" not in st.session_state:
                st.session_state[f"{P}z{i}"] = z[i]
            cols[i % 2].slider(labels[i], -SLIDER_RANGE, SLIDER_RANGE, step=0.05, key=f"{P}z{i}",
                               on_change=on_slider,
                               help="collapsed: this dim's KL < 0.01 nats or its mean barely varies, "
                                    "so the decoder ignores it" if flags[i] else None)
    n_coll = sum(flags)
    if n_coll:
        st.caption(f"{n_coll} of {view.latent_dim} dims are collapsed (average KL < 0.01 nats or inactive): "
                   "moving them changes little.")
