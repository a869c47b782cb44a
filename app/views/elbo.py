"""ELBO breakdown: one test example in detail, the whole test set's averages, the training curves."""

from __future__ import annotations

import os

import streamlit as st

from app.common import current_checkpoint, test_targets
from app.views.breakdown import K_HELP, kl_bar, render_breakdown
from app.views.latent_data import model_view
from app.widgets import training_curves
from vae_core.checkpoints import Checkpoint
from vae_core.constants import ACTIVE_VAR_THRESHOLD, KL_COLLAPSED_NATS
from vae_core.data import target_description
from vae_core.estimators import evaluate

P = "elbo_"


@st.cache_data(max_entries=16, show_spinner=False)
def _recompute(path: str, mtime: float, k: int, _ckpt: Checkpoint) -> dict:
    return evaluate(_ckpt.model, test_targets(_ckpt), iw_samples=k)


def _nats(v) -> str:
    """A stored number, or n/a (checkpoint headers turn a stored NaN or inf into None)."""
    return "n/a" if v is None else f"{v:.2f}"


def _set_metrics(m: dict, note: str) -> None:
    c = st.columns(5)
    c[0].metric("recon E_q log p(x|z)", _nats(m.get("recon")))
    c[1].metric("KL(q(z|x) ‖ p(z))", _nats(m.get("kl")))
    c[2].metric("ELBO", _nats(m.get("elbo")))
    if m.get("log_likelihood") is not None and m.get("elbo") is not None:
        c[3].metric(f"log p(x) (K = {m.get('iw_samples')})", f"{m['log_likelihood']:.2f}", help=K_HELP)
        c[4].metric("gap ≈ KL(q(z|x) ‖ p(z|x))", f"{m['log_likelihood'] - m['elbo']:.2f}")
    st.caption(
        f"{note} Active units: {m.get('active_units', '?')} of {len(m.get('kl_per_dim', []))} "
        f"(Var_x E_q[z_d] > {ACTIVE_VAR_THRESHOLD:g}, Burda et al. 2016)."
    )


def _whole_set(ckpt: Checkpoint) -> None:
    st.subheader("Whole test set (averages per example, nats)")
    m = dict(ckpt.metrics)
    note = f"Stored with the checkpoint at the end of training, over {m.get('n', '?')} test examples."
    c1, c2 = st.columns([1, 3])
    k = c1.select_slider(
        "K for a recomputation",
        [10, 100, 1000],
        value=100,
        key=P + "set_k",
        help="K = 1000 over the whole test set takes a while on a CPU.",
    )
    if c2.button("Recompute now", key=P + "recompute"):
        st.session_state[P + "recomputed_k"] = k
    rk = st.session_state.get(P + "recomputed_k")
    if rk is not None:
        with st.spinner(f"Evaluating the test set with K = {rk}…"):
            m = _recompute(ckpt.path, os.path.getmtime(ckpt.path), rk, ckpt)
        note = f"Recomputed just now with K = {rk} over {m['n']} test examples."
    if m.get("elbo") is None:
        st.info("This checkpoint stores no test metrics; press “Recompute now”.")
        return
    _set_metrics(m, note)
    if m.get("kl_per_dim"):
        view = model_view(ckpt)
        st.plotly_chart(
            kl_bar(
                m["kl_per_dim"],
                view.collapsed,
                title=f"Average KL per latent dim (grey: collapsed, KL < {KL_COLLAPSED_NATS:g} nats or inactive)",
            ),
            key=P + "set_kl",
        )


def render() -> None:
    st.title(":material/functions: ELBO breakdown")
    ckpt = current_checkpoint()
    if ckpt is None:
        return
    st.caption(
        target_description(ckpt.model_config.likelihood, ckpt.train_config.binarize)
        + ". ELBO = recon − KL ≤ log p(x); the gap is KL(q(z|x) ‖ p(z|x))."
    )
    x = test_targets(ckpt)
    view = model_view(ckpt)
    idx = st.number_input("Test example #", 0, len(x) - 1, value=int(view.index[0]), key=P + "index")
    render_breakdown(
        ckpt,
        x[idx],
        key=P + "bd",
        collapsed=view.collapsed,
        title=f"Test example #{idx}",
        original_caption=f"test #{idx}",
    )
    st.divider()
    _whole_set(ckpt)
    st.divider()
    st.subheader("Training curves")
    if not ckpt.history:
        st.info("This checkpoint has no training history.")
        return
    f1, f2 = training_curves(ckpt.history)
    c1, c2 = st.columns(2)
    c1.plotly_chart(f1, key=P + "curve_elbo")
    c2.plotly_chart(f2, key=P + "curve_terms")
