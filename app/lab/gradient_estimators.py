"""Lab 3 · Gradient estimators: reparameterization vs score function (REINFORCE), measured live."""

from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from app.common import current_checkpoint, test_targets
from app.lab.charts import Line, line_chart, show
from app.lab.report_store import lab_report
from app.lab.widgets import lazy_progress
from vae_core.lab.gradients import ESTIMATORS, VarianceCurves, variance_curves

P = "lab3_"
LABELS = {"reparam": "reparameterization", "score": "score function", "score-loo": "score function + LOO baseline"}
COLORS = {"reparam": "#1f77b4", "score": "#d62728", "score-loo": "#ff7f0e"}
SUBSETS = {"last": "last encoder layer", "all": "all encoder parameters"}


@dataclass(frozen=True)
class Sizes:
    """Where the controls start; tests pass smaller ones to render()."""

    batch: int = 8  # test images in the batch
    l_max: int = 32  # largest L (samples of z per example)
    repeats: int = 32  # independent repeats per L
    subset: str = "last"  # a key of SUBSETS
    estimators: tuple = tuple(ESTIMATORS)


def _variance_figure(vc) -> alt.LayerChart:
    lines = []
    for e, v in vc.variance.items():
        ok = ~np.isnan(v)
        n, v = vc.n_samples[ok], v[ok]
        lines.append(Line(LABELS[e], n, v, COLORS[e], width=3))
        # 1/L reference through the estimator's first point: independent samples average down as 1/L
        lines.append(Line(f"{e} 1/L", n, v[0] * n[0] / n, COLORS[e], points=False, dash=True, width=1, legend=False))
    return line_chart(
        lines,
        "Gradient variance vs L (dotted: 1/L)",
        "L (samples of z per example)",
        "mean per-parameter variance",
        log_x=True,
        log_y=True,
        height=420,
    )


def _mean_figure(vc, n_show: int = 16) -> alt.LayerChart:
    """The parameters with the largest reparameterization gradient: each estimator's mean ± 2 SE."""
    ref = "reparam" if "reparam" in vc.mean else next(iter(vc.mean))
    top = np.argsort(-np.abs(vc.mean[ref]))[:n_show]
    lines = [
        Line(LABELS[e], np.arange(n_show) + 0.15 * (j - 1), m[top], COLORS[e], err=2 * vc.mean_se[e][top], line=False)
        for j, (e, m) in enumerate(vc.mean.items())
    ]
    return line_chart(
        lines,
        f"Same mean (L = {vc.n_samples[-1]}, {vc.repeats} repeats)",
        f"the {n_show} parameters with the largest |gradient|",
        "mean gradient ± 2 SE",
        height=420,
    )


def _controls(n_test: int, sizes: Sizes) -> dict:
    c = st.columns([1, 1, 1, 1, 2])
    batch = c[0].slider("Batch (test images)", 1, min(64, n_test), value=min(sizes.batch, 64, n_test), key=P + "batch")
    l_max = c[1].select_slider("Largest L", [2, 4, 8, 16, 32, 64, 128], value=sizes.l_max, key=P + "l_max")
    repeats = c[2].slider("Repeats", 4, 128, value=sizes.repeats, key=P + "repeats")
    subset = c[3].radio(
        "Parameters", list(SUBSETS), index=list(SUBSETS).index(sizes.subset), format_func=SUBSETS.get, key=P + "subset"
    )
    chosen = c[4].multiselect(
        "Estimators", list(ESTIMATORS), default=list(sizes.estimators), format_func=LABELS.get, key=P + "estimators"
    )
    return {
        "batch": batch,
        "l_max": l_max,
        "repeats": repeats,
        "subset": subset,
        "estimators": [e for e in ESTIMATORS if e in chosen],
    }  # in ESTIMATORS order, whatever the clicks


def _ratios(vc: VarianceCurves, subset: str) -> None:
    v = vc.variance
    cols = st.columns(3)
    if "reparam" in v and "score" in v:
        cols[0].metric("score / reparam variance at L=1", f"{v['score'][0] / v['reparam'][0]:,.0f}×")
    if "reparam" in v and "score-loo" in v and len(vc.n_samples) > 1:
        cols[1].metric("score+LOO / reparam at L=2", f"{v['score-loo'][1] / v['reparam'][1]:,.1f}×")
    cols[2].metric("parameters measured", f"{vc.n_params:,}", help=SUBSETS[subset])


def _agreement(vc: VarianceCurves) -> None:
    if "reparam" not in vc.mean or len(vc.mean) < 2:
        return
    rows = []
    for e in vc.mean:
        if e != "reparam":
            a = vc.agreement("reparam", e)
            rows.append(
                {
                    "compared with reparam": LABELS[e],
                    "parameters": a["n"],
                    "share with |z| < 2": f"{a['frac_within_2se']:.1%}",
                    "largest |z|": round(a["max_abs_z"], 2),
                    "mean z": round(a["mean_z"], 3),
                }
            )
    st.markdown(
        f"**Means agree** at L = {vc.n_samples[-1]}: per parameter, z = (difference of means) / "
        "(its standard error). Unbiased estimators give |z| < 2 for about 95% of the parameters "
        "(parameters whose gradient is exactly zero in every repeat, e.g. dead ReLUs, are left out)."
    )
    st.table(pd.DataFrame(rows).set_index("compared with reparam").style.format(precision=3))


def _intro() -> None:
    st.markdown(
        "The encoder is trained through the gradient of an expectation over its own samples. "
        "Two ways to estimate it from L samples; both are unbiased, their variances differ by orders "
        "of magnitude. Measured now on the open model, for f(z) = log p(x|z) (the ELBO's "
        "reconstruction term) and a batch of test images."
    )
    st.latex(
        r"\nabla_\phi\, \mathbb{E}_{q_\phi(z|x)}[f(z)] \approx"
        r"\underbrace{\frac1L\sum_{l}\nabla_\phi f(\mu_\phi + \sigma_\phi\odot\epsilon_l)}_{\text{reparameterization}}"
        r"\quad\text{or}\quad"
        r"\underbrace{\frac1L\sum_{l}\big(f(z_l) - c_l\big)\,\nabla_\phi \log q_\phi(z_l|x)}_{\text{score function}}"
    )
    st.caption(
        "ε_l ~ N(0, I), z_l ~ q(z|x). c_l = 0 is plain REINFORCE; the leave-one-out baseline "
        "c_l = mean of f over the other L−1 samples keeps it unbiased and cuts its variance."
    )


def _notes(vc: VarianceCurves, repeats: int, batch: int) -> None:
    st.caption(
        "Dotted lines fall as 1/L, the rate for an average of independent samples. The "
        "leave-one-out baseline beats it: with more samples its baseline gets better too."
    )
    st.caption(
        f"Variance: each of {repeats} independent repeats draws {vc.n_samples[-1]} samples per "
        "example; its first L give the L-sample estimate. Per-parameter variance over the repeats, "
        f"averaged over the {vc.n_params:,} parameters (trace of the covariance / P). Gradient of the "
        f"batch mean over {batch} test images."
    )


def render(sizes: Sizes = Sizes()) -> None:
    st.title("Gradient estimators")
    _intro()
    ckpt = current_checkpoint()
    if ckpt is None:
        return
    p = _controls(len(test_targets(ckpt)), sizes)
    if not p["estimators"]:
        st.info("Pick at least one estimator.")
        return
    slot, progress = lazy_progress(st, "Sampling gradients…")
    grid = [2**i for i in range(p["l_max"].bit_length())]  # 1, 2, 4, ..., l_max
    vc = lab_report(
        "lab3",
        [ckpt.path],
        p,
        VarianceCurves,
        lambda: variance_curves(
            ckpt.model,
            test_targets(ckpt)[: p["batch"]],
            subset=p["subset"],
            l_grid=grid,
            repeats=p["repeats"],
            estimators=tuple(p["estimators"]),
            progress=progress,
        ),
    )
    slot.empty()
    _ratios(vc, p["subset"])
    f1, f2 = st.columns(2)
    show(f1, vc, "variance", lambda: _variance_figure(vc), key=P + "var_chart")
    show(f2, vc, "mean", lambda: _mean_figure(vc), key=P + "mean_chart")
    _agreement(vc)
    _notes(vc, p["repeats"], p["batch"])
