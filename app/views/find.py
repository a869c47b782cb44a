"""Explorer: find and compare test points (Embedding Projector style), under the map.

- The least likely test examples: the map points with the lowest importance-sampled log p(x)
  (vae_core.point_stats, computed on request, then cached beside the checkpoint), a gallery.
- The selected point's nearest neighbours in latent space, by Euclidean distance between encoder
  means μ, among the points on the map (vae_core.point_stats.nearest_neighbours).
- The map points with a given label, by test index; the map highlights that label (app.views.explorer).
Every shown point has a button that selects it (app.views.explorer_z.select_point: its μ goes into
the sliders). Needs torch (images, select_point): called from app.views.explorer_panels.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from app.common import test_targets
from app.safe import plain
from app.views.explorer_z import P, select_point
from app.views.latent_data import ModelView
from app.views.map_extras import STAT_OPTIONS, point_stats_for
from vae_core.checkpoints import Checkpoint
from vae_core.images import to_display, upscale
from vae_core.point_stats import MAP_IW_SAMPLES, least_likely, nearest_neighbours

GALLERY = 16  # least likely examples shown
NEIGHBOURS = 8  # nearest neighbours shown
PER_ROW = 8
LISTED = 60  # test indices listed for a label


def _label(view: ModelView, row: int) -> str:
    return str(int(view.labels[row])) if view.labels[row] >= 0 else "none"


def _tiles(ckpt: Checkpoint, view: ModelView, rows: np.ndarray, captions: list[str], key: str) -> None:
    """Each map row's test image with its caption and a button that selects it, PER_ROW a line."""
    idx = view.index[rows]
    imgs = to_display(test_targets(ckpt)[torch.from_numpy(idx)], ckpt.model_config.input_shape)
    for start in range(0, len(rows), PER_ROW):
        cols = st.columns(PER_ROW)
        for c, j in zip(cols, range(start, min(start + PER_ROW, len(rows)))):
            c.image(upscale(imgs[j], 84), clamp=True, width="stretch")
            c.caption(plain(captions[j]))
            c.button(
                "select",
                key=f"{key}_{int(idx[j])}",
                on_click=select_point,
                args=(ckpt, int(idx[j])),
                help=plain(f"load the μ of test #{int(idx[j])} into the sliders"),
            )


def least_likely_rows(view: ModelView, n: int, stats: dict, count: int = GALLERY) -> np.ndarray:
    """Rows, among the first n map points, of the `count` lowest log p(x), lowest first."""
    return least_likely(stats["log_px"][:n], count)


def _want_stats() -> None:
    st.session_state[P + "find_stats"] = True


def _gallery(ckpt: Checkpoint, view: ModelView, n: int) -> None:
    with st.expander(f"Least likely test examples (lowest log p(x), K = {MAP_IW_SAMPLES})", expanded=False):
        if not st.session_state.get(P + "find_stats") and st.session_state.get(P + "colour") not in STAT_OPTIONS:
            st.caption(
                "Each map point's importance-sampled log p(x) is computed once per model (a 60k map takes "
                "minutes on a laptop CPU), then kept beside the checkpoint."
            )
            st.button("Find the least likely examples", key=P + "find_go", on_click=_want_stats)
            return
        stats = point_stats_for(view, ckpt.path)
        if stats is None:
            return
        rows = least_likely_rows(view, n, stats)
        st.caption(
            f"The {len(rows)} of the {n:,} map points the model finds least likely: outliers, odd "
            "writing, or what it models worst."
        )
        _tiles(
            ckpt,
            view,
            rows,
            [f"#{int(view.index[r])} · label {_label(view, r)} · log p(x) {stats['log_px'][r]:.1f}" for r in rows],
            P + "find_ll",
        )


def _neighbours(ckpt: Checkpoint, view: ModelView, n: int, sel: int | None) -> None:
    # Off until asked for: eight images and buttons on every click would cost each map click ~200 ms of
    # server time on 2 cores (bench/browser_latency.py, "server caught up").
    if sel is None or not st.toggle(
        "Nearest neighbours of the selected point",
        key=P + "find_nn_on",
        help="its 8 nearest map points by distance between encoder means μ",
    ):
        return
    row = view.row_of(sel)
    if row is None or row >= n:
        st.caption(f"Test #{sel} is not among the {n:,} map points: no neighbours to show.")
        return
    rows, dist = nearest_neighbours(view.means[:n], row, NEIGHBOURS)
    st.markdown(
        plain(
            f"Nearest neighbours of test #{sel} (label {_label(view, row)}) in latent space: "
            "Euclidean distance between encoder means μ, among the map points"
        )
    )
    _tiles(
        ckpt,
        view,
        rows,
        [f"#{int(view.index[r])} · label {_label(view, r)} · d {d:.2f}" for r, d in zip(rows, dist)],
        P + "find_nn",
    )


def _by_label(view: ModelView, n: int) -> None:
    labels = sorted({int(v) for v in view.labels[:n] if v >= 0})
    if not labels:
        return
    with st.expander("Map points by label"):
        # read by app.views.explorer before it draws the map (this box is drawn under it): the map
        # shows the picked label in full colour and fades the others
        lab = st.selectbox(
            "Label",
            [None, *labels],
            format_func=lambda v: "none (all labels in colour)" if v is None else str(v),
            key=P + "find_label",
            help="highlight one label on the map: its points in full colour, the others faded",
        )
        if lab is None:
            st.caption("Pick a label to highlight its points on the map and list their test indices.")
            return
        rows = np.flatnonzero(view.labels[:n] == lab)
        shown = ", ".join(f"#{int(t)}" for t in np.sort(view.index[rows])[:LISTED])
        more = f" … and {len(rows) - LISTED:,} more" if len(rows) > LISTED else ""
        st.caption(
            plain(
                f"{len(rows):,} map points with label {lab}: {shown}{more}. The map shows them in colour and "
                "fades the other labels. Type one into “Test example #” to select it."
            )
        )


def render_find(ckpt: Checkpoint, view: ModelView, n: int) -> None:
    """Under the map: the selected point's neighbours, the least likely gallery, points by label."""
    _neighbours(ckpt, view, n, st.session_state.get(P + "selected"))
    _gallery(ckpt, view, n)
    _by_label(view, n)
