"""The training replay player: every snapshot of a replay (vae_core.replay), drawn on canvases in the
browser (st.components.v2), with Play / Pause and an epoch slider that need no server round trip.

Why not a plotly animation (what the page used before): one frame per snapshot made a ~1.6 MB figure
JSON that the frontend re-themes by string replacement and plotly.js then lays out as four subplots;
on a 2-core machine that was 1.2-2.1 s of a page that should open in well under 1.5 s. Here the
snapshots go once per session as raw bytes, and a frame is four small canvas drawings (~1 ms).

    data = player_data(replay, input_shape)              # once per replay file (shared by sessions)
    replay_player(data, index=i, key="replay_player")     # i: the snapshot the server's scrubber chose

What the browser gets (pack_data): a header with the epochs, the ELBO terms per epoch, the label
classes and the map's data box, and four blobs: the map positions as uint16 over that box (E, P, 2)
(1/65535 of the box: far below a pixel), the labels (P,), KL per dimension (E, k) float32, and the
snapshots' images as one PNG sheet (vae_core.images.sprite_sheet). The blobs are sent once per
session and replay; the browser keeps them in a page-wide cache and asks again (`need_data`) when it
has lost them. `index` seeks the player (and pauses it) whenever it changes. When the player stops
somewhere else (Pause, the last snapshot, a release of its slider, a click on its ELBO chart), it
tells the server (`on_seek`; `seek_index(key)` is where) so the page's own scrubber and numbers follow.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import streamlit as st

from app.components.assets import read_asset
from app.components.latent_map import classes_for, forget_sent, label_dtype, pack_data
from app.settings import debug_hooks
from vae_core.constants import KL_COLLAPSED_NATS
from vae_core.js import js_source
from vae_core.replay import Replay, epoch_mosaic

FRAME_MS = 250  # one snapshot per quarter second while playing
AXES = ("PC 1", "PC 2")

_COMPONENT = st.components.v2.component(
    "vae_replay_player",
    html=read_asset("replay_player", "component.html"),
    css=read_asset("replay_player", "component.css"),
    js="\n".join(
        [
            js_source("project.mjs"),  # ticks
            read_asset("latent_map", "points.mjs"),  # unpack, viewTransform
            read_asset("replay_player", "player.mjs"),
            read_asset("replay_player", "component.js"),
        ]
    ),
)


@dataclass(frozen=True)
class Sheet:
    """Every snapshot's images in one PNG (vae_core.images.sprite_sheet): tile i at row i // cols,
    column i % cols, tiles of tile_w x tile_h pixels, 1 px white gaps between them."""

    png: bytes
    cols: int
    rows: int
    tile_w: int
    tile_h: int


def snapshot_sheet(r: Replay, input_shape: tuple) -> Sheet:
    from vae_core.images import sprite_sheet

    tiles = np.stack([epoch_mosaic(r, i, input_shape) for i in range(len(r.epochs))])  # (E, H, W[, 3])
    png, cols = sprite_sheet(tiles)
    return Sheet(png, cols, math.ceil(len(tiles) / cols), tiles.shape[2], tiles.shape[1])


def map_box(xy: np.ndarray) -> dict:
    """The data box every epoch's map is drawn in: all epochs' positions (E, P, 2), padded by 5 %."""
    out = {}
    for axis, name in ((0, "x"), (1, "y")):
        v = xy[..., axis].astype(np.float64)
        lo, hi = float(v.min()), float(v.max())
        pad = 0.05 * (hi - lo or 1.0)
        out[name + "0"], out[name + "1"] = lo - pad, hi + pad
    return out


def quantize(xy: np.ndarray, box: dict) -> np.ndarray:
    """Positions (E, P, 2) as uint16 over the box: q = round((v - lo) / (hi - lo) * 65535)."""
    lo = np.array([box["x0"], box["y0"]])
    span = np.array([box["x1"], box["y1"]]) - lo
    return np.round((xy.astype(np.float64) - lo) / span * 65535).clip(0, 65535).astype("<u2")


@dataclass(frozen=True)
class PlayerData:
    """What replay_player sends: `header` (JSON-able, small) and `blobs` (raw bytes, sent once per
    session); `id` names their content."""

    id: str
    header: dict
    blobs: dict = field(repr=False)


def _rounded(a: np.ndarray) -> list[float]:
    return [round(float(v), 4) for v in np.asarray(a, np.float64)]


def player_data(r: Replay, input_shape: tuple) -> PlayerData:
    """The player's data for replay r of a model whose inputs have shape input_shape (~0.5 s: the sheet)."""
    sheet = snapshot_sheet(r, input_shape)
    box = map_box(r.xy)
    labels = np.asarray(r.labels)
    dt = label_dtype(labels)
    blobs = {
        "xy": quantize(r.xy, box).tobytes(),
        "labels": labels.astype("<" + dt).tobytes(),
        "index": np.asarray(r.index).astype("<i4").tobytes(),
        "kl_per_dim": np.ascontiguousarray(r.kl_per_dim, "<f4").tobytes(),
        "sheet": sheet.png,
    }
    digest = hashlib.sha1()
    for name, b in blobs.items():
        digest.update(name.encode() + len(b).to_bytes(8, "little") + b)
    header = {
        "epochs": [int(e) for e in r.epochs],
        "elbo": _rounded(r.elbo),
        "recon": _rounded(r.recon_nats),
        "kl": _rounded(r.kl),
        "n_points": int(len(labels)),
        "k": int(r.kl_per_dim.shape[1]),
        "labels_dtype": dt,
        "classes": classes_for(labels),
        "box": box,
        "axes": list(AXES),
        "sheet": {"cols": sheet.cols, "rows": sheet.rows, "tile_w": sheet.tile_w, "tile_h": sheet.tile_h},
        "collapsed": KL_COLLAPSED_NATS,
    }
    return PlayerData(digest.hexdigest()[:16], header, blobs)


def seek_index(key: str, n: int) -> int | None:
    """The snapshot (0..n-1) the player reported stopping at in this run (use inside on_seek), else None."""
    try:
        v = (st.session_state.get(key) or {}).get("epoch_at")
    except Exception:  # no component state yet
        return None
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n else None


def replay_player(
    data: PlayerData,
    index: int,
    *,
    key: str,
    on_seek: Callable[[], None] | None = None,
    frame_ms: int = FRAME_MS,
) -> None:
    """Draw the player at snapshot `index` (seeking it there, paused, whenever `index` changes).
    on_seek: called (before the rerun) when the player stopped at another snapshot: seek_index(key, n)."""
    sent_key = f"{key}__sent"
    send = st.session_state.get(sent_key) != data.id
    header = {
        **({"replay": data.header} if send else {}),
        "key": key,
        "id": data.id,
        "index": int(index),
        "frame_ms": int(frame_ms),
        "debug": debug_hooks(),
    }
    _COMPONENT(
        key=key,
        data=pack_data(header, data.blobs if send else {}),
        on_need_data_change=lambda: forget_sent(sent_key),
        on_epoch_at_change=on_seek or (lambda: None),
    )
    st.session_state[sent_key] = data.id
