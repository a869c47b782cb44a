"""The plotly latent map of the traversal and upload pages: test points by label, plus overlays
(paths, markers, the current z). The explorer draws its map on a canvas instead
(app.components.latent_map), so opening the app does not wait for plotly.js.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from app.components.latent_map import classes_for, equal_aspect
from app.views.latent_data import ModelView
from app.views.latent_map import MapProjection


def map_figure(
    proj: MapProjection,
    view: ModelView,
    n_points: int,
    *,
    current=None,
    paths=(),
    extra=(),
    label_extra: bool = False,
    height: int = 560,
    webgl: bool | None = None,
) -> go.Figure:
    """Scatter of the first n_points map points by label, plus overlays.

    current: (2,) position of the slider z (star). paths: [(name, (T, 2), colour)] lines.
    extra: [(name, (2,), colour, symbol)] single markers (e.g. an uploaded image); label_extra writes
    each one's name beside it on the map, not only in the legend.
    Labels in the colours of every page (app.palette, as the explorer's map); a PCA map or the latent
    plane is equal-aspect (one unit of PC1 as long on screen as one of PC2), a UMAP map fills the box.
    webgl: the label points drawn by WebGL (Scattergl) instead of one SVG element each; None: above
    3,000 points.
    """
    xy, labels, index = proj.xy[:n_points], view.labels[:n_points], view.index[:n_points]
    scatter = go.Scattergl if (n_points > 3000 if webgl is None else webgl) else go.Scatter
    fig = go.Figure()
    for c in classes_for(labels):
        m = labels == c["label"]
        fig.add_trace(
            scatter(
                x=xy[m, 0],
                y=xy[m, 1],
                mode="markers",
                name=c["name"],
                marker=dict(size=6 if n_points <= 3000 else 4, color=c["color"], opacity=0.75),
                customdata=np.stack([index[m], labels[m]], 1).astype(np.int32),
                hovertemplate="<b>label %{customdata[1]}</b><br>test #%{customdata[0]}<extra></extra>",
            )
        )
    for name, pxy, color in paths:
        fig.add_trace(
            go.Scatter(
                x=pxy[:, 0],
                y=pxy[:, 1],
                mode="lines+markers",
                name=name,
                hoverinfo="skip",
                line=dict(color=color, width=3),
                marker=dict(size=5, color=color),
            )
        )
    for name, pt, color, symbol in extra:
        fig.add_trace(
            go.Scatter(
                x=[pt[0]],
                y=[pt[1]],
                mode="markers+text" if label_extra else "markers",
                name=name,
                text=[name] if label_extra else None,
                textposition="top center",
                textfont=dict(color="#111", size=15),
                hoverinfo="skip",
                marker=dict(size=20, color=color, symbol=symbol, line=dict(color="white", width=1.5)),
            )
        )
    if current is not None:
        fig.add_trace(
            go.Scatter(
                x=[current[0]],
                y=[current[1]],
                mode="markers",
                name="current z",
                hoverinfo="skip",
                marker=dict(size=22, color="#111", symbol="star", line=dict(color="white", width=1.5)),
            )
        )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        legend_title_text="label",
        xaxis_title=proj.axes[0],
        yaxis_title=proj.axes[1],
        dragmode="pan",
        clickmode="event+select",
        uirevision="keep",
    )
    if equal_aspect(proj.basis):
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig
