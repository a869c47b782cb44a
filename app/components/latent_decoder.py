"""Latent sliders (plain HTML range inputs in one st.components.v2 component) and the decoded image.

Browser mode, for MLP and conv decoders: the decoder runs in JS (vae_core/js/decode.mjs) on every
slider `input` event, one decode per animation frame, and z goes to Python on release:

    weights = browser_weights(ckpt)            # None if the browser cannot run it: use server_decoder
    new_z = latent_decoder(weights, z, labels, inactive, key="explorer_decoder")
    if new_z is not None:                       # the user released a slider this run
        st.session_state["explorer_z"] = new_z

Server mode, the fallback for decoders the browser cannot run (vae_core.browser says which) and the
Explorer's toggle: the same sliders send z on release (and, while dragging, at most every preview_ms
with one request in flight); Python decodes that z and passes the image's pixels back as component
data, so there is no st.image media fetch and no Streamlit slider widgets to re-render:

    new_z = server_decoder(to_display(decode(model, z), shape), z, labels, inactive, key=...)

The decoder weights (~1.7 MB for the MLP 16-400-784, ~7 MB for the default conv decoder) go to the
browser once per session and model: later reruns send only their id; the browser keeps parsed
weights per id, and asks again via the `need_weights` trigger if it lost them.
"""
from __future__ import annotations

import base64
import math
import os
from functools import partial
from typing import Callable, Sequence

import numpy as np
import streamlit as st

from vae_core.browser import decoder_payload, supports_browser_decoding
from vae_core.checkpoints import Checkpoint
from vae_core.js import js_source

_ASSETS = os.path.join(os.path.dirname(__file__), "latent_decoder")


def _read(name: str) -> str:
    with open(os.path.join(_ASSETS, name), encoding="utf-8") as f:
        return f.read()


# vae_core/js/decode.mjs (the reader of vae_core.browser's payload, run by the node test and the static
# export too); the component code follows it in one module.
_COMPONENT = st.components.v2.component(
    "vae_latent_decoder",
    html=_read("component.html"),
    css=_read("component.css"),
    js=js_source("decode.mjs") + "\n" + _read("component.js"),
)


@st.cache_resource(max_entries=8, show_spinner=False)
def _payload(path: str, mtime: float, _ckpt: Checkpoint) -> dict | None:
    model = _ckpt.model
    return decoder_payload(model) if supports_browser_decoding(model) else None


def browser_weights(ckpt: Checkpoint) -> dict | None:
    """The checkpoint's decoder payload (cached per file), or None if it cannot decode in the browser."""
    return _payload(ckpt.path, os.path.getmtime(ckpt.path), ckpt)


def _forget_sent(sent_key: str) -> None:
    st.session_state.pop(sent_key, None)


def _z_revision(sync: dict, z: list[float]) -> int:
    """Bump the revision when z is a new value from Python; the browser moves its sliders only then.

    A z the browser itself released comes back one run later (the caller stores the return value
    and passes it in again). Such echoes, even of an older release while a newer one is in flight,
    must not move the sliders back, so they keep the revision.
    """
    if z != sync["z"]:
        if z in sync["released"]:
            sync["released"] = sync["released"][sync["released"].index(z) + 1:]
        else:
            sync["rev"] += 1
            sync["released"] = []
        sync["z"] = z
    return sync["rev"]


def _pending_release(key: str):
    try:
        return (st.session_state.get(key) or {}).get("z")
    except Exception:  # no component state yet
        return None


def _valid_z(z, k: int) -> list[float] | None:
    """z from the browser, or None if absent or malformed (ignored rather than shown as an error)."""
    try:
        return _as_z(z, k, "released z") if z is not None else None
    except (TypeError, ValueError):
        return None


def _as_z(z, k: int, what: str) -> list[float]:
    vals = [float(v) for v in (z.tolist() if hasattr(z, "tolist") else z)]
    if len(vals) != k:
        raise ValueError(f"{what} has {len(vals)} values, the decoder takes latent_dim={k}")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{what} contains NaN or inf")
    return vals


def _checked(z, labels, inactive, k: int) -> tuple[list[float], list[str], list[bool]]:
    z = _as_z(z, k, "z")
    labels, inactive = [str(s) for s in labels], [bool(b) for b in inactive]
    if len(labels) != k or len(inactive) != k:
        raise ValueError(f"labels ({len(labels)}) and inactive ({len(inactive)}) need one entry per "
                         f"latent dim ({k})")
    return z, labels, inactive


def _z_rev(key: str, z: list[float], k: int) -> int:
    """The slider revision for z (see _z_revision), after recording this run's release if any.

    A release is visible before the mount (callers may already have stored it in a callback):
    it is recorded first so that z, if it is that release, counts as an echo.
    """
    sync = st.session_state.setdefault(f"{key}__sync", {"z": None, "rev": 0, "released": []})
    released = _valid_z(_pending_release(key), k)
    if released is not None:
        sync["released"] = (sync["released"] + [released])[-8:]
    return _z_revision(sync, z)


def latent_decoder(weights: dict, z: Sequence[float], labels: Sequence[str], inactive: Sequence[bool],
                   key: str, height: int = 224, on_change: Callable[[], None] | None = None
                   ) -> list[float] | None:
    """Render one slider per latent dim (-3..3) and the image decoded in the browser.

    weights: decoder_payload(...) / browser_weights(ckpt). z: the z to show; a z that differs from
    the last one passed moves the sliders (map click, "zero", prior sample). labels[i] names slider
    i, e.g. "z3 · KL 2.31"; inactive[i] greys it out. height: image height in CSS pixels.
    on_change runs as a callback when a slider is released; in it, st.session_state[key]["z"] is
    the released z.
    Returns the z the user released a slider at during this run, else None.
    """
    k = int(weights["latent_dim"])
    z, labels, inactive = _checked(z, labels, inactive, k)
    sent_key = f"{key}__weights_sent"
    send = st.session_state.get(sent_key) != weights["id"]
    data = {"key": key, "weights_id": weights["id"], "weights": weights if send else None,
            "z": z, "z_rev": _z_rev(key, z, k), "labels": labels, "inactive": inactive,
            "height": int(height)}
    result = _COMPONENT(key=key, data=data, on_z_change=on_change or (lambda: None),
                        on_need_weights_change=partial(_forget_sent, sent_key))
    st.session_state[sent_key] = weights["id"]
    return _valid_z(result.get("z"), k)


def image_data(img) -> dict:
    """A display image (H, W) grey or (H, W, 3) RGB in [0, 1] -> the component's pixels:
    {height, width, channels, pixels: base64 of uint8 (H, W, C) row-major, round(255 v)}."""
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3):
        raise ValueError(f"image must be (H, W) or (H, W, 3), got shape {np.shape(img)}")
    u8 = (np.clip(np.nan_to_num(a), 0, 1) * 255 + 0.5).astype(np.uint8)
    return {"height": int(a.shape[0]), "width": int(a.shape[1]), "channels": int(a.shape[2]),
            "pixels": base64.b64encode(u8.tobytes()).decode("ascii")}


def server_decoder(image, z: Sequence[float], labels: Sequence[str], inactive: Sequence[bool], key: str,
                   height: int = 224, on_change: Callable[[], None] | None = None,
                   preview_ms: int | None = 100) -> list[float] | None:
    """The same sliders as latent_decoder, showing an image decoded on the server.

    image: E[x|z] for this z as a display array, (H, W) grey or (H, W, 3) RGB in [0, 1]
    (vae_core.images.to_display). z, labels, inactive, key, height, on_change: as latent_decoder;
    on_change also runs for drag previews. preview_ms: while a slider is dragged, send z at most
    this often (one request in flight at a time); None: only on release.
    Returns the z the browser sent during this run, else None.
    """
    k = len(z)
    z, labels, inactive = _checked(z, labels, inactive, k)
    data = {"key": key, "image": image_data(image), "z": z, "z_rev": _z_rev(key, z, k), "labels": labels,
            "inactive": inactive, "height": int(height),
            "preview_ms": None if preview_ms is None else int(preview_ms)}
    result = _COMPONENT(key=key, data=data, on_z_change=on_change or (lambda: None),
                        on_need_weights_change=lambda: None)
    return _valid_z(result.get("z"), k)
