"""Widgets shared by several pages (a page imports these, never another page)."""

from __future__ import annotations

import plotly.graph_objects as go


def training_curves(history: list, height: int = 320) -> tuple[go.Figure, go.Figure]:
    """ELBO (train, test) and the recon / KL terms per epoch, each line its own colour."""
    history = [h for h in history if "epoch" in h]  # a header's history is checked for types only
    ep = [h["epoch"] for h in history]
    legend = dict(orientation="h", y=1.02, yanchor="bottom", x=0)
    f1 = go.Figure()
    f1.add_trace(go.Scatter(x=ep, y=[h.get("train_elbo") for h in history], name="train ELBO", line_color="#4e79a7"))
    f1.add_trace(go.Scatter(x=ep, y=[h.get("test_elbo") for h in history], name="test ELBO", line_color="#f28e2b"))
    f1.update_layout(
        height=height,
        xaxis_title="epoch",
        yaxis_title="ELBO per example (nats)",
        legend=legend,
        margin=dict(l=10, r=10, t=40, b=10),
    )
    f2 = go.Figure()
    f2.add_trace(
        go.Scatter(
            x=ep, y=[h.get("test_recon") for h in history], name="test recon E_q log p(x|z)", line_color="#59a14f"
        )
    )
    f2.add_trace(
        go.Scatter(
            x=ep, y=[h.get("test_kl") for h in history], name="test KL (right axis)", yaxis="y2", line_color="#e15759"
        )
    )
    f2.update_layout(
        height=height,
        xaxis_title="epoch",
        yaxis=dict(title="recon (nats)"),
        legend=legend,
        yaxis2=dict(title="KL (nats)", overlaying="y", side="right", showgrid=False),
        margin=dict(l=10, r=10, t=40, b=10),
    )
    return f1, f2
