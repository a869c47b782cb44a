"""Lab 4 · β and KL vanishing: a β sweep, a collapse case and its fixes, sum-vs-mean loss scaling."""
from __future__ import annotations

import os

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
import torch

from app.common import current_checkpoint, dataset_for, test_targets
from app.lab.sweep_ui import base_caption, image_grid, open_runs
from vae_core.checkpoints import Checkpoint
from vae_core.lab.alignment import aligned_maps
from vae_core.lab.sweeps import (FREE_BITS, beta_runs, collapse_runs, effective_beta, mean_loss_run,
                                 summarize)

N_SHOW = 10          # reconstructions / prior samples per model
AU_THRESHOLD = 0.01  # Burda et al. 2016


@st.cache_data(max_entries=8, show_spinner="Evaluating the sweep on the test set…")
def _sweep_numbers(key: tuple, _models: list, _x: torch.Tensor, seed: int = 0) -> dict:
    """Live test-set numbers, maps, reconstructions and prior samples for each model. key = (path, mtime)s."""
    names = [k[0] for k in key]
    with torch.no_grad():
        stats = [summarize(m, _x, seed=seed) for m in _models]
        mus = {n: m.encode(_x)[0] for n, m in zip(names, _models)}
        z = torch.randn(N_SHOW, _models[0].cfg.latent_dim, generator=torch.Generator().manual_seed(seed))
        recons = [m.decode_mean(mus[n][:N_SHOW]) for n, m in zip(names, _models)]
        samples = [m.decode_mean(z) for m in _models]
    return {"stats": stats, "mus": {n: v.numpy() for n, v in mus.items()}, "recons": recons, "samples": samples}


def _key(ckpts: list[Checkpoint], labels: list[str]) -> tuple:
    return tuple((lab, c.path, os.path.getmtime(c.path)) for lab, c in zip(labels, ckpts))


def _table(labels, stats) -> pd.DataFrame:
    return pd.DataFrame({
        "model": labels,
        "test ELBO": [s["elbo"] for s in stats],
        "E_q log p(x|z)": [s["recon"] for s in stats],
        "KL": [s["kl"] for s in stats],
        f"active units (of {len(stats[0]['kl_per_dim'])})": [s["active_units"] for s in stats],
    }).set_index("model")


def _per_dim_figure(labels, stats, field: str, title: str, log: bool = False, threshold=None) -> go.Figure:
    fig = go.Figure()
    k = len(stats[0][field])
    for lab, s in zip(labels, stats):
        fig.add_bar(x=list(range(k)), y=s[field], name=lab)
    if threshold is not None:
        fig.add_hline(y=threshold, line_dash="dash", annotation_text=f"active-unit threshold {threshold}")
    fig.update_layout(barmode="group", title=title, height=320, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis_title="latent dim d", legend=dict(orientation="h", y=-0.3))
    if log:
        fig.update_yaxes(type="log")
    return fig


def _maps_figure(labels, mus: dict, y, reference: str) -> go.Figure:
    maps = aligned_maps(mus, reference)
    frames = []
    for lab in labels:
        xy = maps[lab].project(mus[lab])
        frames.append(pd.DataFrame({"PC 1": xy[:, 0], "PC 2": xy[:, 1], "model": lab,
                                    "label": [str(int(v)) for v in y] if y is not None else "?"}))
    df = pd.concat(frames)
    fig = px.scatter(df, x="PC 1", y="PC 2", color="label", facet_col="model", opacity=0.6,
                     category_orders={"label": [str(i) for i in range(10)], "model": labels}, height=330)
    fig.update_traces(marker=dict(size=4))
    fig.update_layout(margin=dict(l=10, r=10, t=30, b=10))
    return fig


def _sweep_section(ckpt: Checkpoint, data, x) -> None:
    st.subheader("The β sweep")
    st.latex(r"\mathcal{L}_\beta(x) = \mathbb{E}_{q(z|x)}[\log p(x|z)] - \beta\,"
             r"\mathrm{KL}\big(q(z|x)\,\|\,p(z)\big),\qquad "
             r"\mathrm{KL} = \sum_{d=1}^{k}\mathrm{KL}_d,\quad "
             r"\mathrm{KL}_d = \tfrac12\big(\mu_d^2 + \sigma_d^2 - 1 - \log\sigma_d^2\big)")
    st.latex(r"\text{unit } d \text{ is active} \iff A_d = \mathrm{Cov}_x\big(\mathbb{E}_{q(z|x)}[z_d]\big) "
             rf"> {AU_THRESHOLD}")
    runs = beta_runs(ckpt.model_config, ckpt.train_config)
    st.caption(base_caption(ckpt, runs) + " All numbers below are computed now on the "
               f"{len(x)} test images (ELBO terms in nats per image, one z sample).")
    ckpts = open_runs(runs, data, "lab4_sweep")
    if ckpts is None:
        return
    labels = [r.name for r in runs]
    num = _sweep_numbers(_key(ckpts, labels), [c.model for c in ckpts], x)
    stats = num["stats"]
    st.dataframe(_table(labels, stats).style.format("{:.2f}", subset=["test ELBO", "E_q log p(x|z)", "KL"]))
    au = [s["active_units"] for s in stats]
    st.markdown("Active units per β: " + ", ".join(f"**{lab}: {a}**" for lab, a in zip(labels, au))
                + f". KL falls from {stats[0]['kl']:.1f} to {stats[-1]['kl']:.1f} nats as β grows.")
    c1, c2 = st.columns(2)
    c1.plotly_chart(_per_dim_figure(labels, stats, "kl_per_dim", "KL per latent dim (nats)"),
                    key="lab4_kl_dims")
    c2.plotly_chart(_per_dim_figure(labels, stats, "mu_var", "A_d = Var_x(μ_d) (log scale)", log=True,
                                    threshold=AU_THRESHOLD), key="lab4_au_dims")
    ref = next((lab for lab, r in zip(labels, runs) if r.train.beta == 1.0), labels[0])
    st.markdown(f"**Latent maps** — PCA of each model's test means μ, rotated (orthogonal Procrustes) onto "
                f"the {ref} map; no rescaling, so a shrinking map is real.")
    st.plotly_chart(_maps_figure(labels, num["mus"], data.y_test, ref), key="lab4_maps")
    shape = ckpt.model_config.input_shape
    c1, c2 = st.columns(2)
    c1.image(image_grid([data.x_test[:N_SHOW]] + num["recons"], shape, 40),
             caption="Reconstructions E[x|z=μ(x)]: top row the test images, then one row per β "
                     f"({', '.join(labels)})", clamp=True)
    c2.image(image_grid(num["samples"], shape, 40),
             caption=f"Prior samples E[x|z], the same z ~ N(0, I) for every row ({', '.join(labels)})",
             clamp=True)


def _history_figure(labels, ckpts, field: str, title: str) -> go.Figure:
    fig = go.Figure()
    for lab, c in zip(labels, ckpts):
        fig.add_scatter(x=[h["epoch"] for h in c.history], y=[h[field] for h in c.history], name=lab,
                        mode="lines")
    fig.update_layout(title=title, height=320, margin=dict(l=10, r=10, t=40, b=10), xaxis_title="epoch",
                      legend=dict(orientation="h", y=-0.3))
    return fig


def _collapse_section(ckpt: Checkpoint, data, x) -> None:
    st.subheader("KL vanishing, and two fixes")
    runs = collapse_runs(ckpt.model_config, ckpt.train_config)
    beta = runs[0].train.beta
    st.markdown(f"A large β (here β = {beta:g}) makes a unit's KL cost more than the reconstruction it buys: "
                "the optimiser sets q(z_d|x) = p(z_d) and the unit carries nothing (KL_d → 0). Same config, "
                f"two fixes: **KL warm-up** (β ramps 0 → {beta:g} over the first "
                f"{runs[1].train.warmup_epochs:g} epochs, Bowman et al. 2016) and **free bits** "
                f"(λ = {FREE_BITS:g} nats per dim are free, Kingma et al. 2016):")
    st.latex(r"\text{warm-up: } \beta_t = \beta\,\min(1, t/T) \qquad "
             r"\text{free bits: } \sum_d \max\big(\lambda,\ \tfrac1B\textstyle\sum_b \mathrm{KL}_{b,d}\big)")
    ckpts = open_runs(runs, data, "lab4_collapse")
    if ckpts is None:
        return
    labels = [r.name for r in runs]
    stats = _sweep_numbers(_key(ckpts, labels), [c.model for c in ckpts], x)["stats"]
    st.dataframe(_table(labels, stats).style.format("{:.2f}", subset=["test ELBO", "E_q log p(x|z)", "KL"]))
    kl = [s["kl"] for s in stats]
    au = [s["active_units"] for s in stats]
    st.markdown(f"Measured now: KL {kl[0]:.2f} nats / {au[0]} active units with plain β = {beta:g}; "
                f"{kl[1]:.2f} / {au[1]} with warm-up; {kl[2]:.2f} / {au[2]} with free bits. "
                + ("Warm-up only delays the pressure: once β reaches its final value the same optimum pulls "
                   "KL back down, so it helps little here; free bits change the objective and keep every "
                   "unit's KL near λ." if kl[1] < 0.5 * kl[2] else
                   "Both fixes keep more information in the code than plain β."))
    c1, c2 = st.columns(2)
    c1.plotly_chart(_per_dim_figure(labels, stats, "kl_per_dim", "KL per latent dim (nats)"),
                    key="lab4_collapse_dims")
    c2.plotly_chart(_history_figure(labels, ckpts, "test_kl", "Test KL during training (recorded per epoch)"),
                    key="lab4_collapse_hist")


def _mean_vs_sum_section(ckpt: Checkpoint, data, x) -> None:
    st.subheader("Sum vs mean: the hidden β of a per-pixel mean loss")
    d, k = ckpt.model_config.input_dim, ckpt.model_config.latent_dim
    st.markdown("The ELBO sums log p(x|z) over all D pixels. Many implementations average the "
                "reconstruction loss over pixels (`reduction='mean'`) but keep KL as is. Multiplying the loss "
                "by D changes no minimiser, so:")
    st.latex(r"\frac1D\sum_{i=1}^{D}\mathrm{BCE}_i + \beta'\,\mathrm{KL}"
             r"\;\propto\; \sum_{i=1}^{D}\mathrm{BCE}_i + \underbrace{\beta' D}_{\beta_{\mathrm{eff}}}\,\mathrm{KL}"
             r"\qquad\Big(\text{KL averaged over the } k \text{ dims too: } \beta_{\mathrm{eff}} = \beta' D/k\Big)")
    c1, c2 = st.columns(2)
    b = c1.number_input("β' written in the code", min_value=0.0, value=1.0, step=0.5, key="lab4_beta_prime")
    red = c2.radio("KL reduction in that code", ["sum", "mean"], horizontal=True, key="lab4_kl_red",
                   format_func=lambda r: {"sum": "sum over dims", "mean": "mean over dims"}[r])
    be = effective_beta(d, k, b, red)
    st.metric(f"Effective β for this model (D = {d}, k = {k})", f"{be:g}")
    run = mean_loss_run(ckpt.model_config, ckpt.train_config)
    st.markdown(f"What that does, measured: a model trained with β = {run.train.beta:g} (mean-BCE, summed KL, "
                "β' = 1), same architecture, data and seed:")
    ckpts = open_runs([run], data, "lab4_meanloss")
    if ckpts is None:
        return
    s = _sweep_numbers(_key(ckpts, [run.name]), [ckpts[0].model], x)
    st0 = s["stats"][0]
    c1, c2, c3 = st.columns(3)
    c1.metric("test KL (nats)", f"{st0['kl']:.3f}")
    c2.metric("active units", f"{st0['active_units']} of {k}")
    c3.metric("test ELBO (nats)", f"{st0['elbo']:.1f}")
    st.image(image_grid([data.x_test[:N_SHOW], s["recons"][0], s["samples"][0]], ckpt.model_config.input_shape, 40),
             caption="Test images, their reconstructions, prior samples: with the code unused the decoder "
                     "can only draw an average digit.", clamp=True)


def render() -> None:
    st.title("β and KL vanishing")
    ckpt = current_checkpoint()
    if ckpt is None:
        return
    data = dataset_for(ckpt)
    x = test_targets(ckpt)
    _sweep_section(ckpt, data, x)
    _collapse_section(ckpt, data, x)
    _mean_vs_sum_section(ckpt, data, x)
