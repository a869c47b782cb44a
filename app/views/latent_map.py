"""The latent map: which projection is in use, the plotly figure, and reading a clicked point.

Every test point carries customdata [test index, label]; hovering shows them, clicking selects
the point (st.plotly_chart on_select) and the page shows its images in a preview panel (plotly
hover labels cannot hold images).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app.components.hover_preview import MAP_META
from app.views.latent_data import ModelView, start_umap, umap_projection, umap_status
from vae_core.projection import LatentPlane

# Tableau-10: distinguishable classes, readable on a projector
COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
          "#9c755f", "#bab0ac"]
UMAP_HELP = ("UMAP is fit once on the test-set means (in a background process, cached beside the "
             "checkpoint). A new z is placed by UMAP's own transform initialisation: the weighted mean "
             "of the map positions of its 15 nearest means (weights exp(-d/σ) as in UMAP), so it is an "
             "approximation; a z equal to a plotted mean lands exactly on that point.")
PCA_HELP = "PCA: the exact linear projection of z onto the top two principal axes of the test-set means."


@dataclass(frozen=True)
class MapProjection:
    name: str            # "latent" | "pca" | "umap"
    transform: object    # (M, k) -> (M, 2)
    xy: np.ndarray       # (N, 2) positions of the map points
    axes: tuple[str, str]
    help: str


def choose_projection(view: ModelView, ckpt_path: str, key: str) -> MapProjection:
    """Latent plane for k <= 2; else a PCA / UMAP radio. Picking UMAP starts its background job."""
    k = view.latent_dim
    if k <= 2:
        plane = LatentPlane(k)
        st.markdown(f"**Map: the latent plane itself** (k = {k}, no projection needed)")
        return MapProjection("latent", plane.transform, plane.transform(view.means),
                             ("z1", "z2" if k == 2 else "(k = 1)"), "The latent plane itself (k ≤ 2).")
    umap = umap_projection(ckpt_path)
    options = ["PCA", "UMAP"]
    if key not in st.session_state:
        st.session_state[key] = "UMAP" if umap is not None else "PCA"
    choice = st.radio("Projection", options, key=key, horizontal=True,
                      help=UMAP_HELP if umap is not None else PCA_HELP)
    if choice == "UMAP" and umap is None:
        if umap_status(ckpt_path)[0] == "idle":  # a failed run is retried only on request
            start_umap(ckpt_path)
        _poll_umap(ckpt_path, key)
    if choice == "UMAP" and umap is not None:
        return MapProjection("umap", umap.transform, umap.embedding[: len(view.means)].astype(np.float64),
                             ("UMAP 1", "UMAP 2"), UMAP_HELP)
    ev = view.pca.explained
    return MapProjection("pca", view.pca.transform, view.pca.transform(view.means),
                         (f"PC1 ({ev[0]:.0%} of variance)", f"PC2 ({ev[1]:.0%})"), PCA_HELP)


@st.fragment(run_every=2.0)
def _poll_umap(ckpt_path: str, key: str) -> None:
    """Shows PCA meanwhile; reruns the page once the UMAP cache is on disk."""
    status, msg = umap_status(ckpt_path)
    if status == "ready":
        st.rerun()
    elif status == "failed":
        st.error(msg + " Showing PCA instead.")
        if st.button("Retry UMAP", key=key + "_retry"):
            start_umap(ckpt_path)
    else:
        st.info(f"⏳ {msg}. Showing PCA until it is ready.")


def map_figure(proj: MapProjection, view: ModelView, n_points: int, *, current=None, selected_row=None,
               paths=(), extra=(), height: int = 560) -> go.Figure:
    """Scatter of the first n_points map points by label, plus overlays.

    current: (2,) position of the slider z (star). paths: [(name, (T, 2), colour)] lines.
    extra: [(name, (2,), colour, symbol)] single markers (e.g. an uploaded image).
    """
    xy, labels, index = proj.xy[:n_points], view.labels[:n_points], view.index[:n_points]
    scatter = go.Scattergl if n_points > 3000 else go.Scatter
    fig = go.Figure()
    for i, lab in enumerate(sorted(set(labels.tolist()))):
        m = labels == lab
        name = f"{lab}" if lab >= 0 else "points"
        fig.add_trace(scatter(
            x=xy[m, 0], y=xy[m, 1], mode="markers", name=name,
            marker=dict(size=6 if n_points <= 3000 else 4, color=COLORS[i % len(COLORS)], opacity=0.75),
            customdata=np.stack([index[m], labels[m]], 1).astype(np.int32),
            hovertemplate="<b>label %{customdata[1]}</b><br>test #%{customdata[0]}<extra></extra>"))
    if selected_row is not None and selected_row < n_points:
        fig.add_trace(go.Scatter(x=[xy[selected_row, 0]], y=[xy[selected_row, 1]], mode="markers",
                                 name="selected", hoverinfo="skip",
                                 marker=dict(size=18, color="rgba(0,0,0,0)", line=dict(color="black", width=2.5))))
    for name, pxy, color in paths:
        fig.add_trace(go.Scatter(x=pxy[:, 0], y=pxy[:, 1], mode="lines+markers", name=name, hoverinfo="skip",
                                 line=dict(color=color, width=3), marker=dict(size=5, color=color)))
    for name, pt, color, symbol in extra:
        fig.add_trace(go.Scatter(x=[pt[0]], y=[pt[1]], mode="markers", name=name, hoverinfo="skip",
                                 marker=dict(size=20, color=color, symbol=symbol, line=dict(color="white", width=1.5))))
    if current is not None:
        fig.add_trace(go.Scatter(x=[current[0]], y=[current[1]], mode="markers", name="current z",
                                 hoverinfo="skip", marker=dict(size=22, color="#111", symbol="star",
                                                               line=dict(color="white", width=1.5))))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), legend_title_text="label",
                      xaxis_title=proj.axes[0], yaxis_title=proj.axes[1], dragmode="pan",
                      clickmode="event+select", uirevision="keep", meta=MAP_META)
    return fig


# Overlay traces of the explorer's map that the browser moves (map_marks): names -> marker style
MARKS = {"selected": dict(size=18, color="rgba(0,0,0,0)", line=dict(color="black", width=2.5)),
         "current z": dict(size=22, color="#111", symbol="star", line=dict(color="white", width=1.5))}


@st.cache_resource(max_entries=16, show_spinner=False)
def _static_map(xy_key: str, n_points: int, _proj: MapProjection, _view: ModelView) -> go.Figure:
    fig = map_figure(_proj, _view, n_points)
    for name, marker in MARKS.items():  # empty here: map_marks places them in the browser
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name=name, hoverinfo="skip", marker=marker))
    return fig


def static_map_figure(proj: MapProjection, view: ModelView, n_points: int) -> go.Figure:
    """The map with empty "selected"/"current z" traces, cached per point set: the same figure on
    every rerun, so the browser keeps its drawn chart (a new spec costs a full plotly.js redraw of
    all points) and only map_marks moves the two markers. Read-only: shared by sessions."""
    key = hashlib.sha1(np.ascontiguousarray(proj.xy[:n_points]).tobytes()
                       + np.ascontiguousarray(view.labels[:n_points]).tobytes()
                       + np.ascontiguousarray(view.index[:n_points]).tobytes()).hexdigest()
    return _static_map(f"{proj.name}:{proj.axes}:{key}", n_points, proj, view)


_MARKS_JS = """
const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);

export default function (component) {
  const { data, parentElement } = component;
  if (!data) return;
  const apply = () => {  // restyle only the two marker traces: no redraw of the data points
    const P = window.Plotly;
    if (!P) return;
    for (const gd of document.querySelectorAll(".js-plotly-plot")) {
      if (!gd.layout || gd.layout.meta !== data.meta || !Array.isArray(gd.data)) continue;
      const ids = [], xs = [], ys = [];
      gd.data.forEach((t, i) => {
        if (!Object.prototype.hasOwnProperty.call(data.marks, t.name)) return;
        const p = data.marks[t.name], x = p ? [p[0]] : [], y = p ? [p[1]] : [];
        if (same(Array.from(t.x || []), x) && same(Array.from(t.y || []), y)) return;
        ids.push(i); xs.push(x); ys.push(y);
      });
      if (ids.length) P.restyle(gd, { x: xs, y: ys }, ids);
    }
  };
  apply();
  // the chart may (re)draw after this run (first load, new projection): keep the marks in place
  clearInterval(parentElement.__vaeMarksTimer);
  parentElement.__vaeMarksTimer = setInterval(apply, 150);
}
"""

_MARKS = st.components.v2.component("vae_map_marks", html="<span></span>", js=_MARKS_JS)


def map_marks(current, selected, key: str) -> None:
    """Place the star (current z) and the ring (selected point) on the static map, in the browser.
    current, selected: (2,) map positions or None."""
    pos = lambda p: None if p is None else [float(p[0]), float(p[1])]  # noqa: E731
    _MARKS(key=key, data={"meta": MAP_META, "marks": {"current z": pos(current), "selected": pos(selected)}})


def point_from_event(event) -> int | None:
    """Test index of the clicked map point from a plotly_chart selection event, else None.
    Overlay traces (current z, paths) carry no customdata and are ignored."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for p in points:
        cd = p.get("customdata") if hasattr(p, "get") else None
        if isinstance(cd, dict):  # a typed-array row from plotly.js arrives as {"0": index, "1": label}
            cd = [cd[k] for k in sorted(cd, key=int)]
        if cd is not None and len(cd) >= 1:
            return int(cd[0])
    return None
