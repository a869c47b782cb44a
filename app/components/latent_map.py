"""The explorer's latent map, drawn with WebGL in the browser (st.components.v2; a 2-D canvas fallback).

Why not st.plotly_chart: plotly.js is a ~4 MB bundle the browser must load and compile before the
first map appears (about 4 s of the 10 s first paint on a 2-core machine), and a click had to go
through a Streamlit rerun before the sliders moved. Here a click rings the point, moves the star and
tells the in-browser decoder (window event `vae:select`) at once, then Python follows (the `select`
trigger). The star follows the decoder's sliders while they move (`vae:z` events), placed by the same
projection as on the server (vae_core/js/project.mjs mirrors vae_core.projection). Import-light on
purpose (numpy only): the page draws the map before torch is imported.

    latent_map(payload, n=2000, projection=projection_spec(basis, k), classes=..., axes=(..),
               selected=12, z=[...], key="explorer_map", on_select=callback,
               colour=value_colour("‖μ‖", values), thumbs=lambda test_indices: hover_sprite(...),
               highlight=3)
    map_cloud(z_samples, points_id, test_index, key="explorer_cloud")  # later, once the model is loaded

In on_select, `selected_index(key)` is the clicked test index. Points go as raw binary (float32
positions and means, uint8/int16 labels, int32 test indices; pack_data), once per session and content hash;
the browser keeps them in a page-wide cache (latent_map/component.js). Hover images the page's
sprite sheet lacks are asked for by the browser (`need_thumbs`) and answered by `thumbs`.
`highlight` (a label) fades the other labels; `map_cloud` (a second, tiny component) gives the map the
selected point's posterior samples z, which the browser places and draws as dots around it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from collections.abc import Callable

import numpy as np
import streamlit as st

from app.components.assets import assets, read_asset
from app.palette import LABEL_COLOURS, label_colour
from app.settings import debug_hooks

POINT_FIELDS = ("xy", "labels", "index", "means")
MAP_META = "vae-latent-map"  # names the explorer map in browser events and the sprite registry
DENSITY_ABOVE = 100_000  # more points than this in view: a density image instead of points
THUMBS_MAX = 256  # hover images one browser request may ask for
RENDERERS = ("auto", "webgl", "canvas")  # see pointLayer in latent_map/gl.js

# vae_core/js/project.mjs is the file the node test (and the static export) runs; the component code
# follows it in one module.
_COMPONENT = st.components.v2.component(
    "vae_latent_map", **assets("latent_map", js=["points.mjs", "gl.js", "component.js"], shared=["project.mjs"])
)
# No element of its own: it hands the samples to the map (latent_map/cloud.js; points.mjs for unpack)
_CLOUD = st.components.v2.component(
    "vae_map_cloud", js=read_asset("latent_map", "points.mjs") + "\n" + read_asset("latent_map", "cloud.js")
)


def _b64(a: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype).tobytes()).decode("ascii")


def label_dtype(labels: np.ndarray) -> str:
    """The smallest of uint8 / int16 / int32 (numpy codes u1, i2, i4) that holds every label."""
    lo, hi = (int(labels.min()), int(labels.max())) if len(labels) else (0, 0)
    if lo >= 0 and hi <= 255:
        return "u1"
    return "i2" if -(2**15) <= lo and hi < 2**15 else "i4"


def points_payload(xy: np.ndarray, labels: np.ndarray, index: np.ndarray, means: np.ndarray) -> dict:
    """All N map points (the page shows the first n): positions (N, 2), labels (N,) (-1: none), test
    indices (N,), encoder means (N, k), as base64 little-endian float32 / labels_dtype / int32.
    `id` hashes them."""
    n, k = means.shape
    if xy.shape != (n, 2) or labels.shape != (n,) or index.shape != (n,):
        raise ValueError(
            f"map points disagree: xy {xy.shape}, labels {labels.shape}, index {index.shape}, means {means.shape}"
        )
    dt = label_dtype(labels)
    p = {
        "n_total": int(n),
        "k": int(k),
        "xy": _b64(xy, "<f4"),
        "labels": _b64(labels, "<" + dt),
        "labels_dtype": dt,
        "index": _b64(index, "<i4"),
        "means": _b64(means, "<f4"),
    }
    p["id"] = hashlib.sha1("|".join(p[f] for f in POINT_FIELDS).encode()).hexdigest()[:16]
    return p


def value_colour(name: str, values: np.ndarray, lo_hi: tuple[float, float] | None = None) -> dict:
    """Colour the points by a value each (N,) on a viridis ramp over lo_hi (default: its 1st-99th
    percentile, so that a few outliers do not wash out the rest). The colour bar is labelled `name`."""
    v = np.asarray(values, np.float32)
    finite = v[np.isfinite(v)]
    lo, hi = lo_hi if lo_hi is not None else (np.percentile(finite, [1, 99]) if len(finite) else (0.0, 1.0))
    data = _b64(v, "<f4")
    return {
        "mode": "value",
        "name": name,
        "range": [float(lo), float(hi)],
        "values": data,
        "values_id": hashlib.sha1(data.encode()).hexdigest()[:16],
    }


LABEL_COLOUR = {"mode": "label"}


def equal_aspect(basis) -> bool:
    """Whether a map by this projection is drawn equal-aspect (one unit as long across as up): the
    latent plane and PCA are linear, so their two axes share a unit and a stretched axis misleads
    (a PC2 of +-0.2 drawn as tall as a PC1 of +-4); UMAP's axes have no unit and fill the box."""
    return type(basis).__name__ in ("LatentPlane", "PCAProjection")


def projection_spec(basis, latent_dim: int) -> dict:
    """What the browser needs to place a z as the server does: vae_core.projection's LatentPlane,
    PCAProjection (center, components) or KNNProjection (its means/embedding are the map points),
    and whether to draw the map equal-aspect."""
    kind = type(basis).__name__
    if kind == "LatentPlane":
        spec = {"kind": "plane", "k": latent_dim}
    elif kind == "PCAProjection":
        spec = {
            "kind": "pca",
            "k": latent_dim,
            "center": [float(v) for v in basis.center],
            "components": [float(v) for v in np.asarray(basis.components, np.float64).ravel()],
        }
    elif kind == "KNNProjection":
        spec = {"kind": "knn", "k": latent_dim, "nNeighbors": int(basis.n_neighbors)}
    else:
        raise TypeError(f"no browser projection for {kind}")
    return {**spec, "equal_aspect": equal_aspect(basis)}


def file_scope(path: str) -> str:
    """A thumbs_scope for hover images read from the checkpoint `path`: changes with the file, and
    does not show the browser the server's path."""
    try:
        mtime = os.path.getmtime(path)
    except OSError:
        mtime = 0.0
    return hashlib.sha1(f"{path}|{mtime!r}".encode()).hexdigest()[:16]


def points_only(equal: bool) -> dict:
    """The projection of a map that places no z: no star, no posterior cloud (the compare page's maps,
    whose B is aligned onto A and so has no projection of its own). equal: draw it equal-aspect."""
    return {"kind": "none", "k": 0, "equal_aspect": bool(equal)}


MARK_SYMBOLS = ("circle", "diamond", "square")


def overlay_path(name: str, xy, color: str) -> dict:
    """A line over the map through the points xy (T, 2), in data units (e.g. an interpolation path)."""
    a = np.asarray(xy, np.float64).reshape(-1, 2)
    return {"name": str(name), "color": str(color), "xy": [[round(float(x), 6), round(float(y), 6)] for x, y in a]}


def overlay_mark(name: str, xy, color: str, symbol: str = "circle", text: str = "") -> dict:
    """A single marker over the map at xy (2,), with `text` written beside it (e.g. "start")."""
    if symbol not in MARK_SYMBOLS:
        raise ValueError(f"symbol must be one of {MARK_SYMBOLS}, got {symbol!r}")
    x, y = (float(v) for v in np.asarray(xy, np.float64).reshape(2))
    return {
        "name": str(name),
        "color": str(color),
        "symbol": symbol,
        "text": str(text),
        "xy": [round(x, 6), round(y, 6)],
    }


def classes_for(labels: np.ndarray) -> list[dict]:
    """Legend entries in label order, in the colours every page gives these labels (app.palette);
    unlabelled points (-1) are one class in the palette's first colour."""
    return [
        {
            "label": int(lab),
            "name": str(int(lab)) if lab >= 0 else "points",
            "color": label_colour(lab) if lab >= 0 else LABEL_COLOURS[0],
        }
        for lab in sorted(set(np.asarray(labels).tolist()))
    ]


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


def pack_data(header: dict, blobs: dict[str, bytes]) -> bytes:
    """The component's data as one byte string, unpacked by `unpack` in latent_map/points.mjs:
    uint32 LE n, n bytes of header JSON (with header["blobs"][name] = [offset, length] from the
    start of the blob area), zero padding to a multiple of 8, then each blob at an 8-aligned offset."""
    offsets, parts, pos = {}, [], 0
    for name, b in blobs.items():
        offsets[name] = [pos, len(b)]
        pad = -len(b) % 8
        parts += [b, b"\0" * pad]
        pos += len(b) + pad
    head = json.dumps({**header, "blobs": offsets}).encode()
    return struct.pack("<I", len(head)) + head + b"\0" * (-(4 + len(head)) % 8) + b"".join(parts)


@st.cache_resource(max_entries=8, show_spinner=False)
def _point_blobs(points_id: str, _payload: dict) -> dict[str, bytes]:
    """The payload's arrays as raw bytes, decoded once per point set for all sessions."""
    return {f"points.{f}": base64.b64decode(_payload[f]) for f in POINT_FIELDS}


def forget_sent(sent_key: str) -> None:
    """A component's `need_...` trigger: the browser lost what this session marked as sent under
    sent_key, so the next run sends it again."""
    st.session_state.pop(sent_key, None)


def _want_thumbs(key: str) -> None:
    """need_thumbs: the browser asks for hover images (test indices); answered on this rerun."""
    want = (st.session_state.get(key) or {}).get("need_thumbs")
    if isinstance(want, list):
        st.session_state[f"{key}__thumbs_want"] = [int(t) for t in want[:THUMBS_MAX] if isinstance(t, int)]


def latent_map(
    payload: dict,
    n: int,
    projection: dict,
    classes: list[dict],
    axes: tuple[str, str],
    *,
    key: str,
    selected: int | None = None,
    z=None,
    z_range: float = 3.0,
    height: int = 560,
    on_select: Callable[[], None] | None = None,
    colour: dict | None = None,
    thumbs: Callable[[list[int]], dict] | None = None,
    renderer: str = "auto",
    report_drawn: bool = False,
    highlight: int | None = None,
    meta: str = MAP_META,
    view: tuple[tuple[float, float], tuple[float, float]] | None = None,
    thumbs_scope: str = "",
    overlays: tuple[list[dict], list[dict]] | None = None,
) -> None:
    """Draw the first n of the payload's points. selected: ringed test index; z: where the star goes.
    z_range: a clicked mean is clipped to ±z_range before it moves the sliders (their range).
    colour: LABEL_COLOUR (default) or value_colour(...). thumbs(test_indices) -> a hover_sprite dict of
    those points' images, for hovered points the page's sprite sheet lacks (None: no images on demand).
    renderer: "auto" (WebGL on a GPU, else the CPU canvas path), "webgl" (whenever present) or
    "canvas" (the CPU fallback, always). report_drawn: the browser reruns the page (the `drawn` trigger)
    once it has drawn its first frame of a new point set, so the page can send what comes after the map
    then. highlight: a label drawn in full colour while the others are faded (None: no label singled
    out); a small parameter, so changing it does not resend the points. meta: names the map in browser
    events and hover-image caches (MAP_META: the explorer's, which the decoder and previews listen to).
    view: ((x0, x1), (y0, y1)), the data rectangle shown first and on "reset view" (None: fit the points),
    e.g. one box for two maps. thumbs_scope: what the hover images belong to (e.g. the checkpoint file):
    a test index's image cached in the browser is reused only within one scope. overlays: (paths, marks)
    drawn over the points and named in the legend (overlay_path, overlay_mark; small: they travel with
    every rerun, the points do not). The measurement hooks
    (window.__vaeMap for MAP_META, window.__vaeMaps[key]) are installed when app.settings.debug_hooks()."""
    if renderer not in RENDERERS:
        raise ValueError(f"renderer must be one of {RENDERERS}, got {renderer!r}")
    colour = colour or LABEL_COLOUR
    sent_key, values_key = f"{key}__points_sent", f"{key}__values_sent"
    send = st.session_state.get(sent_key) != payload["id"]
    values = None
    if colour["mode"] == "value":
        values = (
            {"id": colour["values_id"], "values": colour["values"]}
            if st.session_state.get(values_key) != colour["values_id"]
            else None
        )
        colour = {k: v for k, v in colour.items() if k != "values"}
    want = st.session_state.pop(f"{key}__thumbs_want", None)
    blobs = {}
    if send:  # the arrays go as raw bytes; the header keeps their shapes
        blobs.update(_point_blobs(payload["id"], payload))
    if values is not None:
        blobs["values"] = base64.b64decode(values["values"])
    data = {
        "key": key,
        "meta": meta,
        "points_id": payload["id"],
        "points": {f: payload[f] for f in ("n_total", "k", "labels_dtype")} if send else None,
        "n": int(min(n, payload["n_total"])),
        "proj": projection,
        "classes": classes,
        "axes": list(axes),
        "selected": None if selected is None else int(selected),
        "z": None if z is None else [float(v) for v in z],
        "z_range": float(z_range),
        "height": int(height),
        "colour": colour,
        "values": {"id": values["id"]} if values is not None else None,
        "density_above": DENSITY_ABOVE,
        "renderer": renderer,
        "thumbs_on_demand": thumbs is not None,
        "thumbs": thumbs(want) if want and thumbs is not None else None,
        "report_drawn": bool(report_drawn),
        "highlight": None if highlight is None else int(highlight),
        "view": None
        if view is None
        else {"x0": float(view[0][0]), "x1": float(view[0][1]), "y0": float(view[1][0]), "y1": float(view[1][1])},
        "thumbs_scope": str(thumbs_scope),
        "overlays": None if overlays is None else {"paths": list(overlays[0]), "marks": list(overlays[1])},
        "debug": debug_hooks(),
    }
    # Raw bytes (pack_data), not JSON: no base64 to inflate and decode, and Streamlit does not look
    # for dataframes in it (a dict of lists would make it import pandas on the first paint).
    _COMPONENT(
        key=key,
        data=pack_data(data, blobs),
        on_select_change=on_select or (lambda: None),
        on_need_points_change=lambda: forget_sent(sent_key),
        on_need_values_change=lambda: forget_sent(values_key),
        on_need_thumbs_change=lambda: _want_thumbs(key),
        on_drawn_change=lambda: None,
    )
    st.session_state[sent_key] = payload["id"]
    if colour["mode"] == "value":
        st.session_state[values_key] = colour["values_id"]


def map_cloud(z: np.ndarray | None, points_id: str, test_index: int | None, *, key: str) -> None:
    """Give the map (MAP_META) the selected point's posterior samples z (S, k), drawn as small dots
    around it; None draws none. The browser places them as it places the star (project.mjs, the map's
    own projection: exact for the latent plane and PCA, UMAP's kNN transform otherwise). The map draws
    them only while test_index is its selected point and points_id (points_payload's id) its point set,
    so a cloud sent for an earlier click or another projection is not shown. Call it after latent_map:
    the samples need the model, and the map does not wait for them."""
    rows = None if z is None else [[round(float(v), 5) for v in row] for row in np.asarray(z, np.float64)]
    cloud = {
        "meta": MAP_META,
        "points_id": points_id,
        "testIndex": None if test_index is None else int(test_index),
        "z": rows,
    }
    _CLOUD(key=key, data=pack_data(cloud, {}))  # bytes, as the map's data: no dataframe sniffing of lists
