"""Lab 1 · ELBO anatomy: log p(x), the ELBO and the gap between them, live on one test image."""

from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import streamlit as st
import torch

from app.common import current_checkpoint
from app.lab.charts import Line, Rule, line_chart, show
from app.lab.report_store import lab_report
from app.lab.widgets import example_picker, lazy_progress
from vae_core.lab.elbo_anatomy import Anatomy, anatomy

P = "lab1_"  # session-state prefix of this page


@dataclass(frozen=True)
class Sizes:
    """Where the sliders start; tests pass smaller ones to render()."""

    k_max: int = 1000  # largest K of the L_K curves
    repeats: int = 16  # independent L_K curves (error bars)
    k_ref: int = 5000  # draws for the log p(x) reference


def _bound_figure(a) -> alt.LayerChart:
    m, se = a.lk_mean(), a.lk_se()
    return line_chart(
        [Line("L_K (mean over repeats)", a.k, m, err=2 * se)],
        "Importance-weighted bound L_K",
        "K (importance samples)",
        "nats",
        log_x=True,
        subtitle="error bars: ±2 SE over repeats",
        rules=(
            Rule(a.log_px, f"log p(x) ≈ {a.log_px:.2f} (K={a.k_ref})", "green"),
            Rule(a.elbo, f"ELBO = {a.elbo:.2f}", "red"),
        ),
    )


def _gap_figure(a) -> alt.LayerChart:
    gap = a.log_px - a.lk_mean()
    return line_chart(
        [Line("log p(x) − L_K", a.k, gap, err=2 * a.lk_se())],
        "Gap log p(x) − L_K shrinks with K",
        "K",
        "gap (nats)",
        log_x=True,
        rules=(Rule(0.0, "", "grey", dash=False),),
    )


def _controls(ckpt, sizes: Sizes) -> tuple[int, torch.Tensor, int, int, int]:
    idx, x = example_picker(ckpt, P)
    k_max = st.select_slider("Largest K for L_K", [10, 30, 100, 300, 1000, 3000], value=sizes.k_max, key=P + "k_max")
    repeats = st.slider("Repeats (error bars)", 2, 32, value=sizes.repeats, key=P + "repeats")
    k_ref = st.select_slider("K for log p(x)", [100, 500, 1000, 5000, 20000], value=sizes.k_ref, key=P + "k_ref")
    return idx, x, k_max, repeats, k_ref


def _identity_section(a: Anatomy) -> None:
    c1, c2, c3 = st.columns(3)
    c1.metric(
        "log p(x)",
        f"{a.log_px:.2f} nats",
        help=f"Importance-sampled with K={a.k_ref} draws from q(z|x); delta-method SE {a.log_px_se:.3f}",
    )
    c2.metric("ELBO", f"{a.elbo:.2f} nats", help="E_q log p(x|z) (Monte Carlo) − KL(q‖p(z)) (closed form)")
    c3.metric("gap = KL(q(z|x) ‖ p(z|x))", f"{a.gap:.2f} nats", help="log p(x) − ELBO, always ≥ 0")
    st.markdown("**The identity**, with this image's numbers:")
    st.latex(
        r"\log p(x) = \underbrace{\mathbb{E}_{q}[\log p(x|z)] - \mathrm{KL}(q(z|x)\,\|\,p(z))}_{\text{ELBO}}"
        r" + \mathrm{KL}(q(z|x)\,\|\,p(z|x))"
    )
    st.latex(rf"{a.log_px:.2f} = \underbrace{{{a.recon:.2f} - {a.kl_prior:.2f}}}_{{{a.elbo:.2f}}} + {a.gap:.2f}")
    st.markdown(
        "**The ELBO is the mean log importance weight** (Jensen: the log of a mean is at least the mean of the log):"
    )
    st.latex(
        r"w = \frac{p(x|z)\,p(z)}{q(z|x)},\quad z\sim q(z|x):\qquad "
        r"\mathbb{E}_q[\log w] \;\le\; \log \mathbb{E}_q[w] = \log p(x)"
    )
    st.latex(
        rf"\mathbb{{E}}_q[\log w] \approx {a.elbo_logw:.2f} \pm {a.elbo_logw_se:.2f}"
        rf"\;\le\; \log \tfrac{{1}}{{K}}\textstyle\sum_k w_k = {a.log_px:.2f}"
    )
    st.latex(  # a line of its own: one line of all three is wider than a 1024 px projector's column
        rf"\text{{the ELBO as recon}} - \text{{KL}} = {a.elbo:.2f}"
    )
    st.caption(
        f"Both ELBO readings use the same {a.k_ref} draws; they differ only by Monte Carlo error "
        f"(± {a.recon_se:.2f} on the reconstruction term)."
    )


def _bound_section(a: Anatomy) -> None:
    f1, f2 = st.columns(2)
    show(f1, a, "bound", lambda: _bound_figure(a), key=P + "bound_chart")
    show(f2, a, "gap", lambda: _gap_figure(a), key=P + "gap_chart")
    first, last = a.lk_mean()[[0, -1]]
    st.markdown(
        f"Gap at K=1: **{a.log_px - first:.2f} nats** · at K={a.k[-1]}: **{a.log_px - last:.2f} nats**. "
        f"Each of the {len(a.lk)} repeats draws {a.k[-1]} weights and reads L_K off its first K "
        "(so a curve is smooth in K; repeats are independent)."
    )
    with st.expander("Numbers"):
        st.markdown(numbers_table(a))


def numbers_table(a: Anatomy) -> str:
    """The L_K curve as a Markdown table (K, mean, ± SE, gap), numbers only. Not st.table: the first page
    a student opens would also fetch and run the Arrow table code (~0.25 s in Chromium on a 2-core
    machine, bench/lab_pages.py) for a table that stays folded."""
    rows = ["| K | L_K mean | ± SE | log p(x) − L_K |", "|---:|---:|---:|---:|"]
    for k, m, se in zip(a.k.tolist(), a.lk_mean().tolist(), a.lk_se().tolist()):
        rows.append(f"| {int(k)} | {m:.3f} | {se:.3f} | {a.log_px - m:.3f} |")
    return "\n".join(rows)


def render(sizes: Sizes = Sizes()) -> None:
    st.title("ELBO anatomy")
    st.markdown(
        "How far is the ELBO below log p(x) for one image, and what closes the gap? "
        "Every number below is computed from the open model now."
    )
    ckpt = current_checkpoint()
    if ckpt is None:
        return
    left, right = st.columns([1, 3])
    with left:
        idx, x, k_max, repeats, k_ref = _controls(ckpt, sizes)
    # the page's prose is drawn before the numbers arrive; the sections fill in below it
    st.subheader("Tightening the bound with K samples")
    st.latex(
        r"\mathcal{L}_K = \mathbb{E}\Big[\log \tfrac{1}{K}\textstyle\sum_{k=1}^{K} w_k\Big],\qquad "
        r"\text{ELBO} = \mathcal{L}_1 \le \mathcal{L}_2 \le \dots \le \mathcal{L}_K \xrightarrow{K\to\infty}"
        r" \log p(x)"
    )
    bound = st.container()
    slot, report = lazy_progress(right, "Sampling importance weights…")
    params = {"index": idx, "k_max": k_max, "repeats": repeats, "k_ref": k_ref}
    a = lab_report(
        "lab1",
        [ckpt.path],
        params,
        Anatomy,
        lambda: anatomy(ckpt.model, x, k_max=k_max, repeats=repeats, k_ref=k_ref, seed=idx, progress=report),
    )
    slot.empty()
    with right:
        _identity_section(a)
    with bound:
        _bound_section(a)
