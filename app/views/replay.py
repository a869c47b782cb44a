"""Training replay: the open model's per-epoch snapshots (vae_core.replay), played in the browser.

All epochs go to the browser once, as a plotly animation (one frame per snapshot): Play / Pause and
the figure's own slider run without a server round trip. The Epoch scrubber above it is the server's:
moving it shows that epoch's numbers and draws the figure at that epoch.

The snapshots' images travel as one PNG sheet from Streamlit's media endpoint, not inside the figure:
the frontend re-themes a plotly figure by ~40 string replacements over its whole JSON, and 100 inline
PNGs made that JSON 4 MB (about 0.6 s of the browser's time on every visit). Each frame moves the
sheet so that its snapshot's tile fills the image subplot, which clips the rest.
"""

from __future__ import annotations

import base64
import math
import os
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app.common import checkpoint_metadata, pick_checkpoint_path
from app.palette import label_colour
from app.plotly_spec import Prebuilt
from app.safe import plain
from vae_core import cache as cache_module
from vae_core.checkpoints import CheckpointError, read_metadata
from vae_core.constants import KL_COLLAPSED_NATS
from vae_core.replay import Replay, ReplayError, epoch_mosaic, load_replay, replay_path, with_replays

_EPOCH = "replay_epoch"  # session-state key of the scrubber
FRAME_MS = 250  # one snapshot per quarter second while playing


@st.cache_data(max_entries=4, show_spinner="Reading the training replay…")
def _load(path: str, mtime: float) -> Replay:
    return load_replay(path)


@st.cache_data(max_entries=4, show_spinner=False)
def _sha256(path: str, mtime: float) -> str:
    from vae_core.model_card import sha256_file

    return sha256_file(path)


@dataclass(frozen=True)
class _Sheet:
    """Every snapshot's images in one PNG (vae_core.images.sprite_sheet): tile i at row i // cols, column
    i % cols, tiles of tile_w x tile_h pixels, 1 px white gaps between them."""

    png: bytes
    cols: int
    rows: int
    tile_w: int
    tile_h: int


def _sheet(r: Replay, input_shape: tuple) -> _Sheet:
    from vae_core.images import sprite_sheet

    tiles = np.stack([epoch_mosaic(r, i, input_shape) for i in range(len(r.epochs))])  # (n, H, W[, 3])
    png, cols = sprite_sheet(tiles)
    return _Sheet(png, cols, math.ceil(len(tiles) / cols), tiles.shape[2], tiles.shape[1])


def _sheet_url(sheet: _Sheet) -> str:
    """Where the browser fetches the sheet: Streamlit's media endpoint, under an address that is the hash
    of the bytes (the same for every session). Registered again on every run, as st.image does, so that
    it is kept while the page shows it. Inline (a data URI) where no server runs."""
    from streamlit import runtime

    if runtime.exists():
        return runtime.get_instance().media_file_mgr.add(sheet.png, "image/png", "replay-snapshot-sheet")
    return "data:image/png;base64," + base64.b64encode(sheet.png).decode()


def _snapshot_image(source: str, sheet: _Sheet, i: int) -> dict:
    """The sheet as a layout image in the image subplot's data units (a tile's width and height = 1), moved
    so that tile i fills [0, 1]²; plotly clips an image placed by axes (not by domain) to its subplot, and
    the 1 px gaps around a tile are white."""
    row, col = divmod(i, sheet.cols)
    sx, sy = (sheet.tile_w + 1) / sheet.tile_w, (sheet.tile_h + 1) / sheet.tile_h  # tile pitch, in tiles
    return {
        "source": source,
        "xref": "x2",
        "yref": "y2",
        "x": -col * sx,
        "y": 1 + row * sy,  # the sheet's top edge; y grows upwards, tile rows downwards
        "sizex": sheet.cols * sx - 1 / sheet.tile_w,  # the sheet's width: cols tiles and cols - 1 gaps
        "sizey": sheet.rows * sy - 1 / sheet.tile_h,
        "sizing": "stretch",
        "xanchor": "left",
        "yanchor": "top",
        "layer": "above",
    }


def _frame_data(r: Replay, i: int, labels: list[int]) -> list[dict]:
    """Snapshot i's animated data as plain JSON, in the figure's trace order: map (one trace per label),
    KL bars, epoch marker. Frame i of the animation, and the figure's own traces when drawn at i."""
    xy = np.round(r.xy[i].astype(np.float64), 3)  # float64 first: 0.123, not float32's 0.12300000339
    data: list[dict] = [{"x": xy[r.labels == lab, 0].tolist(), "y": xy[r.labels == lab, 1].tolist()} for lab in labels]
    kl = r.kl_per_dim[i].astype(np.float64)
    colours = ["#bab0ac" if v < KL_COLLAPSED_NATS else "#4e79a7" for v in kl]
    data.append({"x": list(range(len(kl))), "y": np.maximum(kl, 1e-4).tolist(), "marker": {"color": colours}})
    lo, hi = float(min(r.elbo.min(), r.recon_nats.min())), float(r.kl.max())
    data.append({"x": [int(r.epochs[i])] * 2, "y": [lo, hi]})
    return data


def _limits(a: np.ndarray) -> list[float]:
    lo, hi = float(a.min()), float(a.max())
    pad = 0.05 * (hi - lo or 1.0)
    return [lo - pad, hi + pad]


def _add_traces(fig: go.Figure, r: Replay, labels: list[int]) -> None:
    """The figure's traces at snapshot 0 (map, KL bars, ELBO curves), styled; frames and image come after."""
    first = _frame_data(r, 0, labels)
    for lab, d in zip(labels, first):
        fig.add_trace(
            go.Scatter(
                **d,
                mode="markers",
                name="no label" if lab < 0 else f"label {lab}",
                marker={"size": 4, "color": "#888888" if lab < 0 else label_colour(lab), "opacity": 0.7},
            ),
            row=1,
            col=1,
        )
    fig.add_trace(go.Bar(**first[len(labels)], showlegend=False, name="KL"), row=2, col=1)
    fig.add_trace(
        go.Scatter(
            **first[len(labels) + 1],
            mode="lines",
            line={"color": "#333333", "dash": "dot"},
            showlegend=False,
            name="epoch",
        ),
        row=2,
        col=2,
    )
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="markers", marker={"opacity": 0}, showlegend=False, hoverinfo="skip"),
        row=1,
        col=2,
    )  # gives the image subplot its axes
    for name, ys, colour in (
        ("ELBO", r.elbo, "#4e79a7"),
        ("recon E_q log p(x|z)", r.recon_nats, "#59a14f"),
        ("KL", r.kl, "#e15759"),
    ):
        fig.add_trace(go.Scatter(x=r.epochs, y=ys, mode="lines", name=name, line={"color": colour}), row=2, col=2)


def _frames(r: Replay, labels: list[int]) -> list[dict]:
    """One animation frame per snapshot, as plain JSON: the animated traces' data (its image: `_at`)."""
    animated = list(range(len(labels) + 2))  # the map's traces, the KL bars, the epoch marker
    return [
        {
            "name": str(e),
            "traces": animated,
            "data": _frame_data(r, i, labels),
        }
        for i, e in enumerate(r.epochs)
    ]


def _style_axes(fig: go.Figure, r: Replay, tile_aspect: float) -> None:
    """The four subplots' axes: fixed map limits, hidden image axes (one tile, its own aspect), log KL
    axis, epoch axis."""
    xr, yr = _limits(r.xy[..., 0]), _limits(r.xy[..., 1])
    fig.update_xaxes(range=xr, title_text="PC 1", row=1, col=1)
    fig.update_yaxes(range=yr, title_text="PC 2", scaleanchor="x", scaleratio=1, row=1, col=1)
    # constrain="domain": the subplot shrinks to the tile's aspect (the default widens the range instead,
    # which would show the neighbouring tiles)
    fig.update_xaxes(visible=False, range=[0, 1], constrain="domain", row=1, col=2)
    fig.update_yaxes(
        visible=False, range=[0, 1], scaleanchor="x2", scaleratio=tile_aspect, constrain="domain", row=1, col=2
    )
    kl_max = float(max(r.kl_per_dim.max(), KL_COLLAPSED_NATS * 10))
    fig.update_yaxes(type="log", range=[-4, np.log10(kl_max) + 0.1], row=2, col=1)
    k = r.kl_per_dim.shape[1]
    fig.update_xaxes(
        title_text="latent dimension",
        range=[-0.5, k - 0.5],
        tickmode="array",
        tickvals=list(range(k)),
        ticktext=[f"z{d + 1}" for d in range(k)],
        row=2,
        col=1,
    )
    fig.add_hline(y=KL_COLLAPSED_NATS, line_dash="dash", line_color="#888888", row=2, col=1)
    fig.update_xaxes(title_text="epoch", row=2, col=2)


def _add_controls(fig: go.Figure, r: Replay) -> None:
    """The layout with the browser-side Play / Pause buttons and the epoch slider."""
    play = {"frame": {"duration": FRAME_MS, "redraw": True}, "transition": {"duration": 0}, "fromcurrent": True}
    pause = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate", "transition": {"duration": 0}}
    fig.update_layout(
        height=880,
        margin={"l": 10, "r": 10, "t": 90, "b": 110},
        legend={"orientation": "h", "x": 0, "y": 1.07, "yanchor": "bottom"},
        updatemenus=[
            {
                "type": "buttons",
                "direction": "left",
                "x": 0,
                "y": -0.07,
                "xanchor": "left",
                "yanchor": "top",
                "showactive": False,
                "buttons": [
                    {"label": "Play", "method": "animate", "args": [None, play]},
                    {"label": "Pause", "method": "animate", "args": [[None], pause]},
                ],
            }
        ],
        sliders=[
            {
                "active": 0,
                "x": 0.14,
                "len": 0.86,
                "y": -0.05,
                "yanchor": "top",
                "pad": {"t": 0, "b": 0},
                "currentvalue": {"prefix": "epoch ", "xanchor": "right"},
                "steps": [
                    {
                        "label": str(e),
                        "method": "animate",
                        "args": [
                            [str(e)],
                            {
                                "mode": "immediate",
                                "frame": {"duration": 0, "redraw": True},
                                "transition": {"duration": 0},
                            },
                        ],
                    }
                    for e in r.epochs
                ],
            }
        ],
    )


@st.cache_resource(max_entries=4, show_spinner=False)  # the page's st.spinner: warm() runs it off-script
def _built(path: str, mtime: float, input_shape: tuple) -> tuple[dict, _Sheet]:
    """(the replay figure as plotly JSON: 2×2 subplots at snapshot 0, one frame per snapshot, no image
    yet; the snapshots' image sheet). Built once per replay file (~1 s) and shared by every session,
    unpickled by none: read-only."""
    r = _load(path, mtime)
    labels = sorted({int(v) for v in r.labels})
    sheet = _sheet(r, input_shape)
    fig = make_subplots(
        rows=2,
        cols=2,
        column_widths=[0.55, 0.45],
        vertical_spacing=0.12,
        subplot_titles=(
            "Test-set μ, final epoch's PCA frame",
            "Decoded z · reconstructions",
            f"KL per dimension, nats (grey: < {KL_COLLAPSED_NATS:g}, collapsed)",
            "Test ELBO terms, nats per example",
        ),
    )
    _add_traces(fig, r, labels)
    _style_axes(fig, r, sheet.tile_h / sheet.tile_w)
    _add_controls(fig, r)
    return {**fig.to_dict(), "frames": _frames(r, labels)}, sheet


def _at(spec: dict, sheet: _Sheet, source: str, i: int) -> dict:
    """`spec` drawn at snapshot i, its image sheet at `source`: frame i's data in the animated traces, the
    sheet placed at tile i, the slider at i, and every frame placing the sheet at its own tile.

    New dicts down to what changes; everything else is shared with the cached spec, unchanged.
    """
    frames = spec["frames"]
    data = list(spec["data"])
    for t, d in zip(frames[i]["traces"], frames[i]["data"]):
        data[t] = {**data[t], **d}
    layout = spec["layout"]
    layout = {
        **layout,
        "images": [_snapshot_image(source, sheet, i)],
        "sliders": [{**layout["sliders"][0], "active": i}],
    }
    frames = [{**f, "layout": {"images": [_snapshot_image(source, sheet, k)]}} for k, f in enumerate(frames)]
    return {**spec, "data": data, "layout": layout, "frames": frames}


def warm(path: str) -> None:
    """Build checkpoint `path`'s replay figure into the cache, if it has a readable replay: run in a
    background thread (app/main.py), so the first student to open the page does not wait for it."""
    rpath = replay_path(path)
    if os.path.exists(rpath):
        _built(rpath, os.path.getmtime(rpath), tuple(read_metadata(path)["model_config"]["input_shape"]))


def _provenance(r: Replay, meta: dict, sha: str) -> None:
    """Say whose training this is: this file's, or a re-run of its configs (then with both ELBOs)."""
    mine = (meta.get("metrics") or {}).get("elbo")
    theirs = (r.meta.get("final_metrics") or {}).get("elbo")
    if r.meta.get("checkpoint_sha256") != sha:
        st.warning(
            "This replay was recorded for another file with the same configuration (the checkpoint "
            "has been replaced since): it shows how this configuration trains, not these exact weights."
        )
    elif r.meta["source"] == "rerun":
        nums = (
            f" Its final test ELBO is {theirs:.2f} nats; this checkpoint's is {mine:.2f}."
            if isinstance(mine, (int, float)) and isinstance(theirs, (int, float))
            else ""
        )
        st.info(
            "Recorded by training this configuration again with the same seed: the re-run's weights are "
            "not bit-identical to this checkpoint's (for example, it was trained by an earlier version of the "
            "training loop), so the replay shows how this configuration trains, not these exact weights." + nums
        )
    else:
        st.caption("Recorded while this checkpoint trained.")


def _lab_choices() -> dict[str, str]:
    """{checkpoint path: label} for the lab's models that have a replay (checkpoints/lab/)."""
    out = {}
    for p in with_replays(os.path.join(cache_module.default_cache_dir(), "lab")):
        try:
            tc = read_metadata(p)["train_config"]
        except CheckpointError:
            continue  # an unreadable lab file is the lab pages' business; it is simply not offered here
        extras = "".join(
            [
                f", warm-up {tc['warmup_epochs']:g} epochs" if tc["warmup_epochs"] else "",
                f", free bits {tc['free_bits']:g}" if tc["free_bits"] else "",
            ]
        )
        out[p] = f"Lab model: {tc['objective']} β = {tc['beta']:g}{extras}, {tc['epochs']} epochs"
    return out


def _chosen_path() -> str | None:
    """The checkpoint whose replay is shown: the open model's, or a lab model's picked in "Replay of"."""
    path = pick_checkpoint_path()
    labs = _lab_choices()
    if labs:  # options are the labels themselves (unique), so the widget's value is plain text
        choices = ({"The open model (sidebar)": path} if path is not None else {}) | {v: k for k, v in labs.items()}
        path = choices[st.selectbox("Replay of", list(choices), key="replay_source")]
    return path


def _checked_replay(path: str, meta: dict) -> tuple[str, Replay] | None:
    """(replay file, replay) when the checkpoint has a readable replay of its own configs; else one message."""
    rpath = replay_path(path)
    if not os.path.exists(rpath):
        st.info(
            "This model has no training replay. Models trained with the command line's --replay flag "
            "record one (python -m vae_core train ... --replay); the shipped model and the lab's β = 10 "
            "model have theirs."
        )
        return None
    try:
        r = _load(rpath, os.path.getmtime(rpath))
    except (ReplayError, OSError) as e:
        st.error(f"The training replay of this model cannot be shown: {plain(e)}")
        return None
    if (r.meta.get("model_config"), r.meta.get("train_config")) != (meta["model_config"], meta["train_config"]):
        st.error(
            f"The replay file {plain(os.path.basename(rpath))} was recorded for a different model "
            f"configuration than this checkpoint's, so it is not shown."
        )
        return None
    return rpath, r


def _epoch_numbers(r: Replay, epochs: list[int]) -> int:
    """The Epoch scrubber and that epoch's four numbers; returns the chosen snapshot's index."""
    if st.session_state.get(_EPOCH) not in epochs:
        st.session_state[_EPOCH] = epochs[0]
    e = st.select_slider(
        "Epoch",
        options=epochs,
        key=_EPOCH,
        help="Shows the chosen epoch's numbers and draws the figure at that epoch; "
        "Play and Pause below run in the browser.",
    )
    i = epochs.index(e)
    alive = int((r.kl_per_dim[i] >= KL_COLLAPSED_NATS).sum())
    cols = st.columns(4)
    cols[0].metric(f"Test ELBO, epoch {e}", f"{r.elbo[i]:.2f}")
    cols[1].metric("E_q log p(x|z)", f"{r.recon_nats[i]:.2f}")
    cols[2].metric("KL(q ‖ p)", f"{r.kl[i]:.2f}")
    cols[3].metric(
        "Dims alive",
        f"{alive} of {r.kl_per_dim.shape[1]}",
        help=f"latent dimensions whose KL is at least {KL_COLLAPSED_NATS:g} nats (below: collapsed)",
    )
    return i


def render() -> None:
    """The Training replay page: source, provenance, epoch numbers, then the animated figure."""
    st.title("Training replay")
    path = _chosen_path()
    meta = checkpoint_metadata(path) if path is not None else None
    if meta is None:
        return
    checked = _checked_replay(path, meta)
    if checked is None:
        return
    rpath, r = checked
    _provenance(r, meta, _sha256(path, os.path.getmtime(path)))
    epochs = [int(e) for e in r.epochs]
    i = _epoch_numbers(r, epochs)
    with st.spinner("Building the animation…"):  # shown only past 0.5 s: a build, not a cache hit
        spec, sheet = _built(rpath, os.path.getmtime(rpath), tuple(meta["model_config"]["input_shape"]))
    st.plotly_chart(Prebuilt(_at(spec, sheet, _sheet_url(sheet), i)), width="stretch", key="replay_figure")
    st.caption(
        f"{len(epochs)} snapshots of {len(r.index):,} test points. Each epoch's means are rotated onto "
        "the final epoch's (orthogonal Procrustes) and drawn in the final epoch's PCA frame, so the map "
        "moves only as the encoder learns. Images: the decoder means of the same prior draws z at every "
        "epoch (top) and fixed test images above their reconstructions (bottom)."
    )
