"""The explorer's latent map, drawn on a canvas in the browser (st.components.v2).

Why not st.plotly_chart: plotly.js is a ~4 MB bundle the browser must load and compile before the
first map appears (about 4 s of the 10 s first paint on a 2-core machine), and a click had to go
through a Streamlit rerun before the sliders moved. Here a click rings the point, moves the star and
tells the in-browser decoder (window event `vae:select`) at once, then Python follows (the `select`
trigger). The star follows the decoder's sliders while they move (`vae:z` events), placed by the same
projection as on the server (vae_core/js/project.mjs mirrors vae_core.projection). Import-light on
purpose (numpy only): the page draws the map before torch is imported.

    latent_map(payload, n=2000, projection=projection_spec(basis, k), classes=..., axes=(..),
               selected=12, z=[...], key="explorer_map", on_select=callback)

In on_select, `selected_index(key)` is the clicked test index.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Callable

import numpy as np
import streamlit as st

from vae_core.js import js_source

# Tableau-10: distinguishable classes, readable on a projector
COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
          "#9c755f", "#bab0ac"]
MAP_META = "vae-latent-map"  # names the explorer map in browser events and the sprite registry
_ASSETS = os.path.join(os.path.dirname(__file__), "latent_map")


def _read(name: str) -> str:
    with open(os.path.join(_ASSETS, name), encoding="utf-8") as f:
        return f.read()


# vae_core/js/project.mjs is the file the node test (and the static export) runs; the component code
# follows it in one module.
_COMPONENT = st.components.v2.component(
    "vae_latent_map", html=_read("component.html"), css=_read("component.css"),
    js=js_source("project.mjs") + "\n" + _read("component.js"))


def _b64(a: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype).tobytes()).decode("ascii")


def points_payload(xy: np.ndarray, labels: np.ndarray, index: np.ndarray, means: np.ndarray) -> dict:
    """All N map points (the page shows the first n): positions (N, 2), labels (N,) (-1: none), test
    indices (N,), encoder means (N, k), as base64 little-endian float32 / int32. `id` hashes them."""
    n, k = means.shape
    if xy.shape != (n, 2) or labels.shape != (n,) or index.shape != (n,):
        raise ValueError(f"map points disagree: xy {xy.shape}, labels {labels.shape}, index {index.shape}, "
                         f"means {means.shape}")
    p = {"n_total": int(n), "k": int(k), "xy": _b64(xy, "<f4"), "labels": _b64(labels, "<i4"),
         "index": _b64(index, "<i4"), "means": _b64(means, "<f4")}
    p["id"] = hashlib.sha1("|".join(p[f] for f in ("xy", "labels", "index", "means")).encode()).hexdigest()[:16]
    return p


def projection_spec(basis, latent_dim: int) -> dict:
    """What the browser needs to place a z as the server does: vae_core.projection's LatentPlane,
    PCAProjection (center, components) or KNNProjection (its means/embedding are the map points)."""
    kind = type(basis).__name__
    if kind == "LatentPlane":
        return {"kind": "plane", "k": latent_dim}
    if kind == "PCAProjection":
        return {"kind": "pca", "k": latent_dim, "center": [float(v) for v in basis.center],
                "components": [float(v) for v in np.asarray(basis.components, np.float64).ravel()]}
    if kind == "KNNProjection":
        return {"kind": "knn", "k": latent_dim, "nNeighbors": int(basis.n_neighbors)}
    raise TypeError(f"no browser projection for {kind}")


def classes_for(labels: np.ndarray) -> list[dict]:
    """Legend entries in label order, coloured as the plotly maps on the other pages."""
    return [{"label": int(lab), "name": str(int(lab)) if lab >= 0 else "points", "color": COLORS[i % len(COLORS)]}
            for i, lab in enumerate(sorted(set(np.asarray(labels).tolist())))]


def selected_index(key: str) -> int | None:
    """The test index clicked on the map in this run (use inside on_select), else None."""
    try:
        v = (st.session_state.get(key) or {}).get("select")
    except Exception:  # no component state yet
        return None
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def _forget_sent(sent_key: str) -> None:
    st.session_state.pop(sent_key, None)


def latent_map(payload: dict, n: int, projection: dict, classes: list[dict], axes: tuple[str, str], *,
               key: str, selected: int | None = None, z=None, z_range: float = 3.0, height: int = 560,
               on_select: Callable[[], None] | None = None) -> None:
    """Draw the first n of the payload's points. selected: ringed test index; z: where the star goes.
    z_range: a clicked mean is clipped to ±z_range before it moves the sliders (their range)."""
    sent_key = f"{key}__points_sent"
    send = st.session_state.get(sent_key) != payload["id"]
    data = {"key": key, "meta": MAP_META, "points_id": payload["id"], "points": payload if send else None,
            "n": int(min(n, payload["n_total"])), "proj": projection, "classes": classes, "axes": list(axes),
            "selected": None if selected is None else int(selected),
            "z": None if z is None else [float(v) for v in z], "z_range": float(z_range), "height": int(height)}
    # One JSON string, not a dict of lists: Streamlit checks every non-scalar top-level value for a
    # dataframe, which imports pandas (~0.5 s) on the first paint.
    _COMPONENT(key=key, data={"json": json.dumps(data)}, on_select_change=on_select or (lambda: None),
               on_need_points_change=lambda: _forget_sent(sent_key))
    st.session_state[sent_key] = payload["id"]
