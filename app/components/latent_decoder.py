"""Latent sliders (plain HTML range inputs in one st.components.v2 component) and the decoded image.

z is held by a ZSync (app/components/z_sync.py, where the protocol between Python and the browser is
written down); both functions send its {z, rev} and apply the browser's reports to it, in the trigger
callback, before the script reruns.

Browser mode, for MLP and conv decoders: the decoder runs in JS (vae_core/js/decode.mjs) on every
slider `input` event, one decode per animation frame, and z goes to Python on release:

    weights = browser_weights(ckpt)            # None if the browser cannot run it: use server_decoder
    latent_decoder(weights, sync, labels, inactive, key="explorer_decoder")

Server mode, the fallback for decoders the browser cannot run (vae_core.browser says which) and the
Explorer's toggle: the same sliders send z on release (and, while dragging, at most every preview_ms
with one request in flight); Python decodes sync.z and passes the image's pixels back as component
data, so there is no st.image media fetch and no Streamlit slider widgets to re-render:

    server_decoder(to_display(decode(model, sync.z), shape), sync, labels, inactive, key=...)

The decoder weights (~1.7 MB for the MLP 16-400-784, ~7 MB for the default conv decoder) go to the
browser once per session and model: later reruns send only their id; the browser keeps parsed
weights per id, and asks again via the `need_weights` trigger if it lost them.
The slider range and step are vae_core.constants' (the ZSync's range), sent as data.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from functools import partial

import numpy as np
import streamlit as st

from app.components.assets import assets
from app.components.latent_map import forget_sent
from app.components.z_sync import ZSync
from app.settings import debug_hooks
from vae_core.browser import decoder_payload, supports_browser_decoding
from vae_core.checkpoints import Checkpoint
from vae_core.constants import SLIDER_STEP

_COMPONENT = st.components.v2.component(
    "vae_latent_decoder", **assets("latent_decoder", js=["z_sync.mjs", "component.js"], shared=["decode.mjs"])
)


@st.cache_resource(max_entries=8, show_spinner=False)
def _payload(path: str, mtime: float, _ckpt: Checkpoint) -> dict | None:
    model = _ckpt.model
    return decoder_payload(model) if supports_browser_decoding(model) else None


def browser_weights(ckpt: Checkpoint) -> dict | None:
    """The checkpoint's decoder payload (cached per file), or None if it cannot decode in the browser."""
    return _payload(ckpt.path, os.path.getmtime(ckpt.path), ckpt)


def _on_report(key: str, sync: ZSync) -> None:
    """The `z` trigger's callback: the browser's report {z, rev}, applied (or ignored as stale) by the
    ZSync before the script reruns."""
    try:
        msg = (st.session_state.get(key) or {}).get("z")
    except Exception:  # no component state yet
        return
    sync.report(msg)


def _common(sync: ZSync, labels, inactive, key: str, height: int) -> dict:
    """The data both modes send: {z, rev}, the labels, the slider range and step."""
    k = len(sync.z)
    labels, inactive = [str(s) for s in labels], [bool(b) for b in inactive]
    if len(labels) != k or len(inactive) != k:
        raise ValueError(f"labels ({len(labels)}) and inactive ({len(inactive)}) need one entry per latent dim ({k})")
    return {
        "key": key,
        **sync.message(),
        "labels": labels,
        "inactive": inactive,
        "height": int(height),
        "range": [-sync.range, sync.range],
        "step": SLIDER_STEP,
        "debug": debug_hooks(),
    }


def latent_decoder(
    weights: dict, sync: ZSync, labels: Sequence[str], inactive: Sequence[bool], key: str, height: int = 224
) -> None:
    """Render one slider per latent dim and the image decoded in the browser.

    weights: decoder_payload(...) / browser_weights(ckpt). sync: the z to show; a set on it (map click,
    "zero", prior sample) moves the sliders, a slider release is reported into it. labels[i] names
    slider i, e.g. "z3 · KL 2.31"; inactive[i] greys it out. height: image height in CSS pixels.
    """
    k = int(weights["latent_dim"])
    if len(sync.z) != k:
        raise ValueError(f"z has {len(sync.z)} values, the decoder takes latent_dim={k}")
    sent_key = f"{key}__weights_sent"
    send = st.session_state.get(sent_key) != weights["id"]
    data = {
        **_common(sync, labels, inactive, key, height),
        "weights_id": weights["id"],
        "weights": weights if send else None,
    }
    _COMPONENT(
        key=key,
        data=data,
        on_z_change=partial(_on_report, key, sync),
        on_need_weights_change=partial(forget_sent, sent_key),
    )
    st.session_state[sent_key] = weights["id"]


def image_data(img) -> dict:
    """A display image (H, W) grey or (H, W, 3) RGB in [0, 1] -> the component's pixels:
    {height, width, channels, pixels: base64 of uint8 (H, W, C) row-major, round(255 v)}."""
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3):
        raise ValueError(f"image must be (H, W) or (H, W, 3), got shape {np.shape(img)}")
    u8 = (np.clip(np.nan_to_num(a), 0, 1) * 255 + 0.5).astype(np.uint8)
    return {
        "height": int(a.shape[0]),
        "width": int(a.shape[1]),
        "channels": int(a.shape[2]),
        "pixels": base64.b64encode(u8.tobytes()).decode("ascii"),
    }


def server_decoder(
    image,
    sync: ZSync,
    labels: Sequence[str],
    inactive: Sequence[bool],
    key: str,
    height: int = 224,
    preview_ms: int | None = 100,
) -> None:
    """The same sliders as latent_decoder, showing an image decoded on the server.

    image: E[x|z] for sync.z as a display array, (H, W) grey or (H, W, 3) RGB in [0, 1]
    (vae_core.images.to_display). sync, labels, inactive, key, height: as latent_decoder; reports
    come for drag previews too. preview_ms: while a slider is dragged, send z at most this often (one
    request in flight at a time); None: only on release.
    """
    data = {
        **_common(sync, labels, inactive, key, height),
        "image": image_data(image),
        "preview_ms": None if preview_ms is None else int(preview_ms),
    }
    _COMPONENT(key=key, data=data, on_z_change=partial(_on_report, key, sync), on_need_weights_change=lambda: None)
