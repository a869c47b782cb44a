"""Lab 5 · Aggregate posterior vs prior, and the MMD-VAE (InfoVAE) against the KL objective."""

from __future__ import annotations

import math
from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from app.common import current_checkpoint, dataset_for, test_targets
from app.lab.charts import heading, show
from app.lab.report_store import lab_report, view
from app.lab.widgets import base_caption, dim_names, image_grid, open_runs
from vae_core.lab.aggregate import AggregateReport, aggregate_report
from vae_core.lab.sweeps import objective_runs

MAX_DIMS = 16  # histograms shown
COLORS = ("#1f77b4", "#d62728")


@dataclass(frozen=True)
class Sizes:
    n_prior: int = 1000  # prior draws projected onto the map and scored for holes
    n_show: int = 10  # decoded prior samples shown per row
    seed: int = 0


def _table(labels, reps: list[AggregateReport], n: int) -> pd.DataFrame:
    """Quantities as rows, the two models as columns: long names wrap instead of being cut off."""
    rows = {
        "KL(Q‖p) (nats)": [f"{r.agg.kl_q_p:.2f} ± {r.agg.kl_q_p_se:.2f}" for r in reps],
        "Σ_d KL(Q_d‖N(0,1)) over the 1-D marginals": [f"{r.marginal.sum():.3f}" for r in reps],
        "MMD²(Q, p)": [f"{r.mmd:.4f}" for r in reps],
        f"I(n; z) (≤ log N = {math.log(n):.2f})": [f"{r.agg.mutual_info:.2f}" for r in reps],
        "mean KL(q(z|x)‖p)": [f"{r.agg.mean_kl:.2f}" for r in reps],
        "mean σ of q(z|x)": [f"{r.sigma_mean:.3f}" for r in reps],
        "test ELBO": [f"{r.stats.elbo:.1f}" for r in reps],
        "E_q log p(x|z)": [f"{r.stats.recon:.1f}" for r in reps],
    }
    return pd.DataFrame(rows, index=labels).T.rename_axis("quantity")


def _histograms(labels, reps: list[AggregateReport]) -> alt.FacetChart:
    """Per latent dim: each model's histogram of z ~ Q (density, bins of 0.25 on [-4.5, 4.5], values
    clipped into it) over the N(0, 1) density, 4 dims a row.

    The N(0, 1) curve is one small table of its own, drawn in every cell (a layer with its own data
    is not faceted), not 16 copies filtered out of the bars' table: the browser evaluates no filter
    expression per row, and the page sends half the rows."""
    k = min(reps[0].zq.shape[1], MAX_DIMS)
    names = dim_names(k)
    edges = np.arange(-4.5, 4.5 + 0.125, 0.25)  # 36 bins
    grid = np.linspace(-4, 4, 81)
    frames = []
    for d in range(k):
        for lab, r_ in zip(labels, reps):
            h, _ = np.histogram(np.clip(r_.zq[:, d], -4.5, 4.5), bins=edges, density=True)
            frames.append(pd.DataFrame({"dim": names[d], "series": lab, "x": edges[:-1], "x2": edges[1:], "y": h}))
    prior = pd.DataFrame({"series": "N(0, 1)", "x": grid, "y": np.exp(-0.5 * grid**2) / math.sqrt(2 * math.pi)})
    colour = alt.Color(
        "series:N",
        scale=alt.Scale(domain=[*labels, "N(0, 1)"], range=[*COLORS[: len(labels)], "black"]),
        legend=alt.Legend(orient="top", title=None),
    )
    x = alt.X("x:Q", title=None, scale=alt.Scale(domain=[-4.5, 4.5], nice=False))
    bars = (
        alt.Chart()
        .mark_bar(opacity=0.55, binSpacing=0)
        .encode(x=x, x2="x2:Q", y=alt.Y("y:Q", title=None, stack=None), y2=alt.datum(0), color=colour)
    )
    curve = alt.Chart(prior).mark_line(strokeWidth=1.5).encode(x=x, y="y:Q", color=colour)
    return (
        alt.layer(bars, curve, data=pd.concat(frames, ignore_index=True))
        .properties(width=150, height=110)
        .facet(facet=alt.Facet("dim:N", sort=names, title=None), columns=4)
    )


def _hole_map(v: AggregateReport, title: str) -> alt.LayerChart:
    means = pd.DataFrame({"x": v.map_mu[:, 0], "y": v.map_mu[:, 1]})
    s = np.clip(v.score, np.quantile(v.score, 0.02), None)
    prior = pd.DataFrame({"x": v.map_prior[:, 0], "y": v.map_prior[:, 1], "score": s})
    x, y = alt.X("x:Q", title="PC 1"), alt.Y("y:Q", title="PC 2")
    return alt.layer(
        alt.Chart(means).mark_circle(size=12, color="grey", opacity=0.45).encode(x=x, y=y),
        alt.Chart(prior)
        .mark_circle(size=22)
        .encode(
            x=x,
            y=y,
            color=alt.Color("score:Q", scale=alt.Scale(scheme="redblue"), title="log Q/p"),
            tooltip=[alt.Tooltip("score:Q", title="log Q/p", format=".1f")],
        ),
    ).properties(title=heading(title, "grey: test means μ(x); coloured: z ~ p(z)"), height=420)


def _formulas() -> None:
    # each formula on its own line and the citations as text: at 1024 px (a projector) a display
    # formula wider than the column is cut off, not wrapped
    st.latex(
        r"Q(z) = \frac1N\sum_{n=1}^{N} q(z|x_n) \qquad "
        r"\mathrm{KL}(Q\,\|\,p) = \mathbb{E}_{z\sim Q}\big[\log Q(z) - \log p(z)\big]"
    )
    st.latex(r"\log Q(z) = \operatorname{logsumexp}_n \log\mathcal{N}(z;\mu_n,\sigma_n^2) - \log N")
    st.latex(
        r"\underbrace{\frac1N\sum_n \mathrm{KL}\big(q(z|x_n)\,\|\,p\big)}_{\text{the ELBO's KL}} "
        r"= \underbrace{I_q(n; z)}_{\le \log N} + \mathrm{KL}(Q\,\|\,p)"
    )
    st.caption("ELBO surgery (Hoffman & Johnson 2016).")
    st.latex(
        r"\mathrm{MMD}^2(Q, p) = \mathbb{E}\,k(z,z') + \mathbb{E}\,k(\tilde z,\tilde z') - 2\,\mathbb{E}\,k(z,\tilde z)"
    )
    st.latex(r"z\sim Q,\ \tilde z\sim p,\quad k(a,b) = e^{-\|a-b\|^2/k}")
    st.latex(r"\mathcal{L}_{\text{MMD-VAE}} = \mathbb{E}_q[\log p(x|z)] - \lambda\,\mathrm{MMD}^2(Q, p)")
    st.caption("InfoVAE (Zhao et al. 2019): no per-example KL.")


def _measured(reps: list[AggregateReport], n: int) -> None:
    a, b = reps
    st.markdown(
        f"Measured now: MMD²(Q, p) = **{a.mmd:.4f}** for the KL-VAE vs **{b.mmd:.4f}** for the MMD-VAE "
        f"(noise floor of the estimator with N = {n}: two prior samples give {a.noise_floor:+.4f}). "
        f"KL(Q‖p) = **{a.agg.kl_q_p:.1f}** vs **{b.agg.kl_q_p:.1f}** nats. The MMD-VAE has no per-example "
        f"KL, so its posteriors shrink (mean σ {b.sigma_mean:.3f} vs {a.sigma_mean:.3f}): Q becomes "
        "N narrow spikes. Any density comparison sees the spikes, in the joint KL and in each 1-D marginal alike "
        f"(Σ_d marginal KL {a.marginal.sum():.2f} vs {b.marginal.sum():.2f}), even where their *spread* matches "
        "N(0, I); that spread is what MMD with its wide kernel, and the histograms' 0.25-wide bins, measure. "
        "With N test points, KL(Q‖p) ≥ mean KL − log N, and the KL-VAE's I(n; z) is near that ceiling."
    )


def _holes(labels, reps: list[AggregateReport], input_shape, sizes: Sizes) -> None:
    st.subheader("Holes: where the prior puts mass and Q does not")
    st.markdown(
        f"{sizes.n_prior} draws z ~ N(0, I) projected by the same PCA as the test means, coloured by "
        "log Q(z) − log p(z) computed in the full latent space (red = hole: the decoder never saw a "
        "code there)."
    )
    cols = st.columns(2)
    for i, (lab, v) in enumerate(zip(labels, reps)):
        with cols[i]:
            show(st, v, "holes", lambda: _hole_map(v, lab), key=f"lab5_holes_{i}")  # noqa: B023
            st.image(
                view(v, "images", lambda: image_grid([v.holes, v.dense], input_shape, 36)),  # noqa: B023
                clamp=True,
                caption=f"Top: the {len(v.holes)} prior draws deepest in holes (log Q/p from "
                f"{v.hole_scores[0]:.0f} to {v.hole_scores[-1]:.0f}); bottom: the {len(v.dense)} "
                f"best covered (log Q/p {v.dense_scores[0]:.1f} to {v.dense_scores[-1]:.1f}).",
            )


def render(sizes: Sizes = Sizes()) -> None:
    st.title("Aggregate posterior vs prior, and the MMD-VAE")
    ckpt = current_checkpoint()
    if ckpt is None:
        return
    data = dataset_for(ckpt)
    x = test_targets(ckpt)
    _formulas()
    base = ckpt.train_config
    lam = st.select_slider(
        "MMD-VAE weight λ (another λ trains a new model through the cache)",
        options=sorted({10.0, 100.0, 1000.0, float(base.mmd_weight)}),
        value=float(base.mmd_weight),
        key="lab5_lambda",
    )
    runs = objective_runs(ckpt.model_config, base, mmd_weight=lam)
    pair = [runs["vae"], runs["mmd"]]
    st.caption(
        base_caption(ckpt, pair) + f" Q is the mixture of the {len(x)} test posteriors; "
        "KL(Q‖p) uses 2 draws per posterior, MMD one z per test image against as many prior draws."
    )
    ckpts = open_runs(pair, data, "lab5")
    if ckpts is None:
        return
    labels = [r.name for r in pair]
    params = {"n_prior": sizes.n_prior, "n_show": sizes.n_show, "seed": sizes.seed}

    def compute(model) -> AggregateReport:  # a spinner only while computing
        with st.spinner("Estimating KL(Q‖p) and MMD(Q, p) on the test set…"):
            return aggregate_report(model, x, n_prior=sizes.n_prior, n_show=sizes.n_show, seed=sizes.seed)

    reps = [lab_report("lab5", [c.path], params, AggregateReport, lambda c=c: compute(c.model)) for c in ckpts]
    st.table(_table(labels, reps, len(x)))
    _measured(reps, len(x))
    st.subheader("Per-dimension histograms of z ~ Q against N(0, 1)")
    show(st, reps[1], "histograms with " + labels[0], lambda: _histograms(labels, reps), key="lab5_hist")
    _holes(labels, reps, ckpt.model_config.input_shape, sizes)
