"""Latent sliders whose image is decoded in the browser while a slider is dragged.

Streamlit sliders only rerun on release; this st.components.v2 component runs the MLP decoder in
JS (latent_decoder/decode.mjs) on every slider `input` event, one decode per animation frame,
and reports z to Python on release. Usage from a page:

    weights = browser_weights(ckpt)            # None for conv decoders: decode on the server
    new_z = latent_decoder(weights, z, labels, inactive, key="explorer_decoder")
    if new_z is not None:                       # the user released a slider this run
        st.session_state["explorer_z"] = new_z

The decoder weights (~1.7 MB for 16-400-784) go to the browser once per session and model: later
reruns send only their id; the browser keeps parsed weights per id, and asks again via the
`need_weights` trigger if it lost them.
"""
from __future__ import annotations

import math
import os
from functools import partial
from typing import Callable, Sequence

import streamlit as st

from vae_core.browser import decoder_payload, supports_browser_decoding
from vae_core.checkpoints import Checkpoint

_ASSETS = os.path.join(os.path.dirname(__file__), "latent_decoder")


def _read(name: str) -> str:
    with open(os.path.join(_ASSETS, name), encoding="utf-8") as f:
        return f.read()


# decode.mjs is the same file the node test runs; the component code follows it in one module.
_COMPONENT = st.components.v2.component(
    "vae_latent_decoder",
    html=_read("component.html"),
    css=_read("component.css"),
    js=_read("decode.mjs") + "\n" + _read("component.js"),
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
    z = _as_z(z, k, "z")
    labels, inactive = [str(s) for s in labels], [bool(b) for b in inactive]
    if len(labels) != k or len(inactive) != k:
        raise ValueError(f"labels ({len(labels)}) and inactive ({len(inactive)}) need one entry per "
                         f"latent dim ({k})")
    sent_key = f"{key}__weights_sent"
    send = st.session_state.get(sent_key) != weights["id"]
    sync = st.session_state.setdefault(f"{key}__sync", {"z": None, "rev": 0, "released": []})
    # A release is visible before the mount (callers may already have stored it in a callback):
    # record it first so that z, if it is that release, counts as an echo.
    released = _valid_z(_pending_release(key), k)
    if released is not None:
        sync["released"] = (sync["released"] + [released])[-8:]
    data = {"key": key, "weights_id": weights["id"], "weights": weights if send else None,
            "z": z, "z_rev": _z_revision(sync, z), "labels": labels, "inactive": inactive,
            "height": int(height)}
    result = _COMPONENT(key=key, data=data, on_z_change=on_change or (lambda: None),
                        on_need_weights_change=partial(_forget_sent, sent_key))
    st.session_state[sent_key] = weights["id"]
    return _valid_z(result.get("z"), k)
