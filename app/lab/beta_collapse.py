"""Lab 4 · β and KL vanishing: a β sweep, a collapse case and its fixes, sum-vs-mean loss scaling."""

from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import pandas as pd
import streamlit as st

from app.common import current_checkpoint, dataset_for, test_targets
from app.lab.charts import SERIES_COLOURS, Line, bar_chart, label_points, line_chart, show, square_domains
from app.lab.report_store import lab_report, view
from app.lab.widgets import LabModel, base_caption, dim_names, image_grid, open_runs
from vae_core.checkpoints import Checkpoint
from vae_core.constants import ACTIVE_VAR_THRESHOLD
from vae_core.lab.beta_report import SweepReport, sweep_report
from vae_core.lab.sweeps import FREE_BITS, ModelStats, beta_runs, collapse_runs, effective_beta, mean_loss_run


@dataclass(frozen=True)
class Sizes:
    n_show: int = 10  # reconstructions / prior samples per model
    seed: int = 0


def _report(section: str, ckpts: list[LabModel], x, sizes: Sizes, reference: int = 0) -> SweepReport:
    def compute() -> SweepReport:  # a spinner only while computing: a stored report shows at once
        with st.spinner(f"Evaluating {len(ckpts)} model(s) on the {len(x)} test images…"):
            return sweep_report([c.model for c in ckpts], x, reference=reference, n_show=sizes.n_show, seed=sizes.seed)

    params = {"n_show": sizes.n_show, "seed": sizes.seed, "reference": reference}
    return lab_report(f"lab4-{section}", [c.path for c in ckpts], params, SweepReport, compute)


def _table(labels, stats: tuple[ModelStats, ...]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": labels,
            "test ELBO": [s.elbo for s in stats],
            "E_q log p(x|z)": [s.recon for s in stats],
            "KL": [s.kl for s in stats],
            f"active units (of {len(stats[0].kl_per_dim)})": [s.active_units for s in stats],
        }
    ).set_index("model")


def _rounded(labels, stats):
    """The table shown to 2 decimals (a static st.table: lab pages load no data-grid code)."""
    return _table(labels, stats).style.format(precision=2)


def per_dim_figure(labels, values: list, title: str, log: bool = False, threshold=None) -> alt.LayerChart:
    """Grouped bars of one per-dim statistic, dims named z1..zk; the threshold is a dashed rule named in
    the subtitle, not a label drawn over the bars."""
    limit = None if threshold is None else (threshold, f"active-unit threshold {threshold:g}")
    names = dim_names(len(values[0]))
    return bar_chart(list(labels), [list(v) for v in values], names, title, "latent dim", log=log, threshold=limit)


def _maps_figure(labels, maps, y) -> alt.ConcatChart:
    """One map per model side by side, coloured by label with the explorer's colours, equal aspect."""
    xd, yd = square_domains(*maps)
    x = alt.X("x:Q", title="PC 1", scale=alt.Scale(domain=xd, nice=False))
    yy = alt.Y("y:Q", title="PC 2", scale=alt.Scale(domain=yd, nice=False))
    charts = []
    for lab, xy in zip(labels, maps):
        df, colour = label_points(xy, y, "label {}")
        chart = alt.Chart(df).mark_circle(size=10, opacity=0.6).encode(x=x, y=yy, color=colour, tooltip=["series:N"])
        charts.append(chart.properties(title=lab, width=230, height=230))
    return alt.concat(*charts, columns=2)  # 2 x 2: four maps side by side do not fit 1024 px


def _sweep_section(ckpt: Checkpoint, data, x, sizes: Sizes) -> None:
    st.subheader("The β sweep")
    # two lines, not one: on one line the formula is wider than a 1024 px projector's column
    st.latex(
        r"\mathcal{L}_\beta(x) = \mathbb{E}_{q(z|x)}[\log p(x|z)] - \beta\,"
        r"\mathrm{KL}\big(q(z|x)\,\|\,p(z)\big)"
    )
    st.latex(
        r"\mathrm{KL} = \sum_{d=1}^{k}\mathrm{KL}_d,\quad "
        r"\mathrm{KL}_d = \tfrac12\big(\mu_d^2 + \sigma_d^2 - 1 - \log\sigma_d^2\big)"
    )
    st.latex(
        r"\text{unit } d \text{ is active} \iff A_d = \mathrm{Cov}_x\big(\mathbb{E}_{q(z|x)}[z_d]\big) "
        rf"> {ACTIVE_VAR_THRESHOLD:g}"
    )
    runs = beta_runs(ckpt.model_config, ckpt.train_config)
    st.caption(
        base_caption(ckpt, runs) + " All numbers below are computed on the "
        f"{len(x)} test images (ELBO terms in nats per image, one z sample)."
    )
    ckpts = open_runs(runs, data, "lab4_sweep")
    if ckpts is None:
        return
    labels = [r.name for r in runs]
    ref = next((i for i, r in enumerate(runs) if r.train.beta == 1.0), 0)
    rep = _report("sweep", ckpts, x, sizes, reference=ref)
    stats = rep.stats
    st.table(_rounded(labels, stats))
    au = [s.active_units for s in stats]
    st.markdown(
        "Active units per β: "
        + ", ".join(f"**{lab}: {a}**" for lab, a in zip(labels, au))
        + f". KL falls from {stats[0].kl:.1f} to {stats[-1].kl:.1f} nats as β grows."
    )
    _sweep_pictures(labels, rep, data, ckpt.model_config.input_shape, labels[ref], sizes)


def _sweep_pictures(labels: list[str], rep: SweepReport, data, shape, ref: str, sizes: Sizes) -> None:
    stats = rep.stats
    c1, c2 = st.columns(2)
    show(
        c1,
        rep,
        "kl",
        lambda: per_dim_figure(labels, [s.kl_per_dim for s in stats], "KL per latent dim (nats)"),
        key="lab4_kl_dims",
    )
    show(
        c2,
        rep,
        "au",
        lambda: per_dim_figure(
            labels,
            [s.mu_var for s in stats],
            "A_d = Var_x(μ_d) (log scale)",
            log=True,
            threshold=ACTIVE_VAR_THRESHOLD,
        ),
        key="lab4_au_dims",
    )
    st.markdown(
        f"**Latent maps** — PCA of each model's test means μ, rotated (orthogonal Procrustes) onto "
        f"the {ref} map; no rescaling, so a shrinking map is real."
    )
    show(st, rep, "maps", lambda: _maps_figure(labels, rep.maps, data.y_test), key="lab4_maps")
    c1, c2 = st.columns(2)
    c1.image(
        view(rep, "recons", lambda: image_grid([data.x_test[: sizes.n_show]] + list(rep.recons), shape, 40)),
        caption=f"Reconstructions E[x|z=μ(x)]: top row the test images, then one row per β ({', '.join(labels)})",
        clamp=True,
    )
    c2.image(
        view(rep, "samples", lambda: image_grid(list(rep.samples), shape, 40)),
        caption=f"Prior samples E[x|z], the same z ~ N(0, I) for every row ({', '.join(labels)})",
        clamp=True,
    )


def _history_figure(labels, ckpts, field: str, title: str) -> alt.LayerChart:
    lines = [
        Line(lab, [h["epoch"] for h in c.history], [h[field] for h in c.history], colour, points=False)
        for lab, c, colour in zip(labels, ckpts, SERIES_COLOURS)
    ]
    return line_chart(lines, title, "epoch", field, height=320)


def _collapse_section(ckpt: Checkpoint, data, x, sizes: Sizes) -> None:
    st.subheader("KL vanishing, and two fixes")
    runs = collapse_runs(ckpt.model_config, ckpt.train_config)
    beta = runs[0].train.beta
    st.markdown(
        f"A large β (here β = {beta:g}) makes a unit's KL cost more than the reconstruction it buys: "
        "the optimiser sets q(z_d|x) = p(z_d) and the unit carries nothing (KL_d → 0). Same config, "
        f"two fixes: **KL warm-up** (β ramps 0 → {beta:g} over the first "
        f"{runs[1].train.warmup_epochs:g} epochs, Bowman et al. 2016) and **free bits** "
        f"(λ = {FREE_BITS:g} nats per dim are free, Kingma et al. 2016):"
    )
    st.latex(
        r"\text{warm-up: } \beta_t = \beta\,\min(1, t/T) \qquad "
        r"\text{free bits: } \sum_d \max\big(\lambda,\ \tfrac1B\textstyle\sum_b \mathrm{KL}_{b,d}\big)"
    )
    ckpts = open_runs(runs, data, "lab4_collapse")
    if ckpts is None:
        return
    labels = [r.name for r in runs]
    rep = _report("collapse", ckpts, x, sizes)
    stats = rep.stats
    st.table(_rounded(labels, stats))
    kl = [s.kl for s in stats]
    au = [s.active_units for s in stats]
    st.markdown(
        f"Measured now: KL {kl[0]:.2f} nats / {au[0]} active units with plain β = {beta:g}; "
        f"{kl[1]:.2f} / {au[1]} with warm-up; {kl[2]:.2f} / {au[2]} with free bits. "
        + (
            "Warm-up only delays the pressure: once β reaches its final value the same optimum pulls "
            "KL back down, so it helps little here; free bits change the objective and keep every "
            "unit's KL near λ."
            if kl[1] < 0.5 * kl[2]
            else "Both fixes keep more information in the code than plain β."
        )
    )
    c1, c2 = st.columns(2)
    show(
        c1,
        rep,
        "kl",
        lambda: per_dim_figure(labels, [s.kl_per_dim for s in stats], "KL per latent dim (nats)"),
        key="lab4_collapse_dims",
    )
    show(
        c2,
        rep,
        "history",
        lambda: _history_figure(labels, ckpts, "test_kl", "Test KL during training (recorded per epoch)"),
        key="lab4_collapse_hist",
    )


@st.fragment
def _effective_beta(d: int, k: int) -> None:
    """β' and the KL reduction -> β_eff: reruns alone, the measured model below stays as it is."""
    c1, c2 = st.columns(2)
    b = c1.number_input("β' written in the code", min_value=0.0, value=1.0, step=0.5, key="lab4_beta_prime")
    red = c2.radio(
        "KL reduction in that code",
        ["sum", "mean"],
        horizontal=True,
        key="lab4_kl_red",
        format_func=lambda r: {"sum": "sum over dims", "mean": "mean over dims"}[r],
    )
    st.metric(f"Effective β for this model (D = {d}, k = {k})", f"{effective_beta(d, k, b, red):g}")


def _mean_vs_sum_section(ckpt: Checkpoint, data, x, sizes: Sizes) -> None:
    st.subheader("Sum vs mean: the hidden β of a per-pixel mean loss")
    d, k = ckpt.model_config.input_dim, ckpt.model_config.latent_dim
    st.markdown(
        "The ELBO sums log p(x|z) over all D pixels. Many implementations average the "
        "reconstruction loss over pixels (`reduction='mean'`) but keep KL as is. Multiplying the loss "
        "by D changes no minimiser, so:"
    )
    st.latex(
        r"\frac1D\sum_{i=1}^{D}\mathrm{BCE}_i + \beta'\,\mathrm{KL}"
        r"\;\propto\; \sum_{i=1}^{D}\mathrm{BCE}_i + \underbrace{\beta' D}_{\beta_{\mathrm{eff}}}\,\mathrm{KL}"
        r"\qquad\Big(\text{KL averaged over the } k \text{ dims too: } \beta_{\mathrm{eff}} = \beta' D/k\Big)"
    )
    _effective_beta(d, k)
    run = mean_loss_run(ckpt.model_config, ckpt.train_config)
    st.markdown(
        f"What that does, measured: a model trained with β = {run.train.beta:g} (mean-BCE, summed KL, "
        "β' = 1), same architecture, data and seed:"
    )
    ckpts = open_runs([run], data, "lab4_meanloss")
    if ckpts is None:
        return
    rep = _report("meanloss", ckpts, x, sizes)
    st0 = rep.stats[0]
    c1, c2, c3 = st.columns(3)
    c1.metric("test KL (nats)", f"{st0.kl:.3f}")
    c2.metric("active units", f"{st0.active_units} of {k}")
    c3.metric("test ELBO (nats)", f"{st0.elbo:.1f}")
    st.image(
        view(
            rep,
            "images",
            lambda: image_grid(
                [data.x_test[: sizes.n_show], rep.recons[0], rep.samples[0]], ckpt.model_config.input_shape, 40
            ),
        ),
        caption="Test images, their reconstructions, prior samples: with the code unused the decoder "
        "can only draw an average digit.",
        clamp=True,
    )


def render(sizes: Sizes = Sizes()) -> None:
    st.title("β and KL vanishing")
    ckpt = current_checkpoint()
    if ckpt is None:
        return
    data = dataset_for(ckpt)
    x = test_targets(ckpt)
    _sweep_section(ckpt, data, x, sizes)
    _collapse_section(ckpt, data, x, sizes)
    _mean_vs_sum_section(ckpt, data, x, sizes)
