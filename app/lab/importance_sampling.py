"""Lab 2 · Importance sampling: p(x) from prior draws vs from q(z|x) draws, and their spread."""

from __future__ import annotations

import math
from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
import torch

from app.common import current_checkpoint
from app.lab.charts import Line, Rule, line_chart, show
from app.lab.report_store import lab_report
from app.lab.widgets import example_picker, lazy_progress
from vae_core.lab.importance_report import ImportanceReport, ToyReport, importance_report, toy_report

P = "lab2_"
NAMES = {"prior": "z ~ p(z):  (1/N) Σ p(x|z)", "posterior": "z ~ q(z|x):  (1/N) Σ p(x|z)p(z)/q(z|x)"}
COLORS = {"prior": "#d62728", "posterior": "#1f77b4"}
N_TABLE = 1000  # the table's first row: N where the q-based estimate has settled


@dataclass(frozen=True)
class Sizes:
    """Where the controls start; tests pass smaller ones to render()."""

    n_max: int = 10000  # largest N
    repeats: int = 5  # independent runs per proposal
    toy: bool = True  # show the linear-Gaussian toy


def _estimate_figure(curves: dict, reference: float, ref_label: str, title: str) -> alt.LayerChart:
    lines = []
    for prop, c in curves.items():
        for r, row in enumerate(c.log_px):  # each repeat, thin
            lines.append(Line(f"{prop} {r}", c.n, row, COLORS[prop], points=False, width=1, opacity=0.25, legend=False))
        lines.append(Line(NAMES[prop], c.n, c.log_px.mean(0), COLORS[prop], err=c.spread(), width=3))
    return line_chart(
        lines,
        title,
        "N (samples)",
        "log p̂(x) (nats)",
        log_x=True,
        rules=(Rule(reference, ref_label, "green"),),
        height=400,
    )


def _ess_figure(curves: dict, title: str) -> alt.LayerChart:
    n = next(iter(curves.values())).n
    lines = [Line("ESS = N (ideal)", n, n, "grey", points=False, dash=True, width=1.5)]
    lines += [Line(prop, c.n, c.ess.mean(0), COLORS[prop]) for prop, c in curves.items()]
    return line_chart(lines, title, "N", "effective sample size", log_x=True, log_y=True, height=400)


def _summary(curves: dict, n: int) -> list[dict]:
    rows = []
    for prop, c in curves.items():
        j = int(np.searchsorted(c.n, n))
        rows.append(
            {
                "proposal": prop,
                "N": int(c.n[j]),
                "mean log p̂": round(float(c.log_px[:, j].mean()), 3),
                "spread (sd over repeats)": round(float(c.spread()[j]), 3),
                "mean ESS": round(float(c.ess[:, j].mean()), 1),
            }
        )
    return rows


def _shown(rows: list[dict]):
    """_summary's rows as a static table (lab pages load no data-grid code), one proposal a row."""
    return pd.DataFrame(rows).set_index("proposal").style.format({"mean ESS": "{:.1f}"}, precision=3)


def table_heading(n_max: int, repeats: int) -> tuple[str, list[int]]:
    """The table's heading and its sample sizes: N_TABLE and n_max, or n_max alone when they meet."""
    ns = [N_TABLE, n_max] if n_max > N_TABLE else [n_max]
    at = " and ".join(f"**N = {n}**" for n in ns)
    return f"At {at} ({repeats} repeats each):", ns


def _controls(ckpt, sizes: Sizes) -> tuple[int, torch.Tensor, int, int]:
    idx, x = example_picker(ckpt, P)
    n_max = st.select_slider("Largest N", [100, 1000, 3000, 10000, 30000, 100000], value=sizes.n_max, key=P + "n_max")
    repeats = st.slider("Repeats (spread)", 2, 20, value=sizes.repeats, key=P + "repeats")
    return idx, x, n_max, repeats


def _model_section(r: ImportanceReport, n_max: int, repeats: int) -> None:
    c1, c2 = st.columns(2)
    show(
        c1,
        r,
        "estimates",
        lambda: _estimate_figure(r.curves, r.reference, f"q-based, pooled: {r.reference:.2f}", "log p̂(x) as N grows"),
        key=P + "est_chart",
    )
    show(c2, r, "ess", lambda: _ess_figure(r.curves, "How many draws carry the estimate"), key=P + "ess_chart")
    st.caption(
        f"Thin lines: each repeat; bars: ±1 sd over repeats. Green: the q-based estimate with all "
        f"{repeats}×{n_max} draws pooled."
    )
    heading, ns = table_heading(n_max, repeats)
    st.markdown(heading)
    st.table(_shown([row for n in ns for row in _summary(r.curves, n)]))


def _why_prior_fails(r: ImportanceReport, n_max: int) -> None:
    q, prior, kl = r.curves["posterior"], r.curves["prior"], r.kl_prior
    j = int(np.searchsorted(q.n, min(100, n_max)))
    p_ess, p_below = prior.ess[:, -1].mean(), r.reference - prior.log_px[:, -1].mean()
    st.markdown(
        f"Why the prior fails: q(z|x) sits far inside p(z). KL(q(z|x) ‖ p(z)) = **{kl:.1f} nats**, and "
        f"sampling from p(z) needs roughly $e^{{\\mathrm{{KL}}}} \\approx 10^{{{kl / math.log(10):.1f}}}$ draws "
        "before the estimate settles (Chatterjee & Diaconis 2018, with q standing in for the true "
        f"posterior). At N = {n_max} the prior estimate has ESS **{p_ess:.1f}** and sits **{p_below:.1f} nats** "
        "below the pooled q-based value: unbiased in p(x), but its log is biased low (Jensen) and noisy. "
        f"The q-based estimate is {abs(q.log_px[:, j].mean() - r.reference):.2f} nats from that value already "
        f"at N = {q.n[j]} (spread {q.spread()[j]:.2f})."
    )


def _toy_section(path: str, n_max: int, repeats: int) -> None:
    # the toy does not depend on the open model; its file just lives beside that model's reports
    t = lab_report(
        "lab2-toy", [path], {"n_max": n_max, "repeats": repeats}, ToyReport, lambda: toy_report(n_max, repeats)
    )
    st.markdown(
        "p(z) = N(0, I₂), p(x|z) = N(Wz + b, 0.5² I₄), so p(x) = N(b, WWᵀ + 0.5² I) in closed "
        "form. q(z|x) is deliberately a bit off (shrunk mean, inflated variance). In two "
        "dimensions prior draws land near the posterior often enough, and both estimators "
        "converge to the exact value."
    )
    t1, t2 = st.columns(2)
    show(
        t1,
        t,
        "estimates",
        lambda: _estimate_figure(t.curves, t.exact, f"exact log p(x) = {t.exact:.3f}", "Toy: log p̂(x)"),
        key=P + "toy_est_chart",
    )
    show(t2, t, "ess", lambda: _ess_figure(t.curves, "Toy: effective sample size"), key=P + "toy_ess_chart")
    st.table(_shown(_summary(t.curves, n_max)))


def render(sizes: Sizes = Sizes()) -> None:
    st.title("Importance sampling")
    st.markdown(
        "Two unbiased estimators of the same number p(x). Drawing z from the prior almost never "
        "hits the small region that explains x; drawing from the encoder's q(z|x) does."
    )
    st.latex(
        r"p(x) = \mathbb{E}_{p(z)}\big[p(x|z)\big] \approx \frac1N\sum_{n} p(x|z_n),\ z_n\sim p(z)"
        r"\qquad\quad p(x) = \mathbb{E}_{q(z|x)}\Big[\frac{p(x|z)\,p(z)}{q(z|x)}\Big]"
        r" \approx \frac1N\sum_n w_n,\ z_n\sim q(z|x)"
    )
    st.latex(
        r"\log \hat p = \operatorname{logsumexp}_n(\log w_n) - \log N,\qquad "
        r"\mathrm{ESS} = \frac{(\sum_n w_n)^2}{\sum_n w_n^2}\in[1, N]"
    )
    ckpt = current_checkpoint()
    if ckpt is None:
        return
    left, right = st.columns([1, 3])
    with left:
        idx, x, n_max, repeats = _controls(ckpt, sizes)
    st.subheader("A 2-D toy where both work")
    toy = st.toggle("Show the linear-Gaussian toy (z ∈ ℝ², exact log p(x) known)", value=sizes.toy, key=P + "toy")
    toy_box = st.container()
    slot, progress = lazy_progress(right, "Drawing from both proposals…")
    params = {"index": idx, "n_max": n_max, "repeats": repeats}
    r = lab_report(
        "lab2",
        [ckpt.path],
        params,
        ImportanceReport,
        lambda: importance_report(ckpt.model, x, n_max=n_max, repeats=repeats, seed=idx, progress=progress),
    )
    slot.empty()
    with right:
        _model_section(r, n_max, repeats)
        _why_prior_fails(r, n_max)
    if toy:
        with toy_box:
            _toy_section(ckpt.path, n_max, repeats)
