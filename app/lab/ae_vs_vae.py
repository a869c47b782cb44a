"""Lab 6 · Autoencoder vs VAE: same architecture, data and seed; only the objective differs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import altair as alt
import pandas as pd
import streamlit as st

from app.common import current_checkpoint, dataset_for, test_targets
from app.lab.charts import heading, label_points, show, square_domains
from app.lab.report_store import lab_report, view
from app.lab.widgets import LabModel, base_caption, image_grid, open_runs
from vae_core.data import eval_targets
from vae_core.lab.ae_report import PRIOR, AEReport, ModelSide, SampleScore, ae_report, interpolation
from vae_core.lab.sweeps import objective_runs


@dataclass(frozen=True)
class Sizes:
    n_samples: int = 300  # prior draws scored per sampler
    n_show: int = 10  # decoded draws shown per row
    steps: int = 10  # interpolation steps
    knn: int = 10  # neighbours for the label-agreement realism proxy
    seed: int = 0


def _formulas() -> None:
    st.latex(
        r"\text{AE: } \max_{\phi,\theta}\ \log p_\theta\big(x\,|\,z = \mu_\phi(x)\big) \qquad"
        r"\text{VAE: } \max_{\phi,\theta}\ \mathbb{E}_{q_\phi(z|x)}[\log p_\theta(x|z)] - "
        r"\mathrm{KL}\big(q_\phi(z|x)\,\|\,\mathcal{N}(0, I)\big)"
    )
    st.markdown(
        "The autoencoder never pays for where its codes sit, so nothing makes them fill N(0, I): "
        "decoding prior draws asks its decoder about places it was never trained on."
    )


def map_figure(side: ModelSide, y, title: str) -> alt.LayerChart:
    """Test codes coloured by label (app.palette, one legend entry per label) over the prior draws;
    equal aspect (same span on both axes, square plot)."""
    xd, yd = square_domains(side.map, side.prior_map)
    x = alt.X("x:Q", title="PC 1", scale=alt.Scale(domain=xd, nice=False))
    yy = alt.Y("y:Q", title="PC 2", scale=alt.Scale(domain=yd, nice=False))
    codes, colour = label_points(side.map, y)
    prior = pd.DataFrame({"x": side.prior_map[:, 0], "y": side.prior_map[:, 1], "series": "z ~ N(0, I)"})
    return alt.layer(
        alt.Chart(prior).mark_point(shape="cross", size=20, color="black", opacity=0.35).encode(x=x, y=yy),
        alt.Chart(codes).mark_circle(size=14, opacity=0.7).encode(x=x, y=yy, color=colour, tooltip=["series:N"]),
    ).properties(
        title=heading(title, "crosses: z ~ N(0, I)"),
        height=260,
        width=260,
        autosize=alt.AutoSizeParams(type="pad"),  # the plot itself square; title and legend around it
    )


def _recon_section(names: list[str], r: AEReport) -> None:
    v, a = r.vae, r.ae
    st.subheader("Reconstruction error (test set, z = μ(x))")
    st.table(
        pd.DataFrame(
            {
                "model": names,
                "MSE per pixel of E[x|z=μ]": [f"{v.mse:.5f}", f"{a.mse:.5f}"],
                "log p(x|z=μ) (nats)": [f"{v.log_px_z:.2f}", f"{a.log_px_z:.2f}"],
                "KL(q‖p) (nats)": [f"{v.stats.kl:.2f}", "— (not trained; σ meaningless)"],
                "code std per dim (mean)": [f"{v.code_std.mean():.2f}", f"{a.code_std.mean():.2f}"],
            }
        ).set_index("model")
    )
    st.markdown(
        f"The AE reconstructs {'better' if a.log_px_z > v.log_px_z else 'no better'} "
        f"(log p(x|z=μ) {a.log_px_z:.1f} vs {v.log_px_z:.1f} nats): it spends nothing on KL. "
        f"Its codes have a mean per-dim std of {a.code_std.mean():.2f} against the prior's 1, so N(0, I) "
        "draws (crosses on the maps) crowd into the middle of its code cloud."
    )


def _maps_section(names: list[str], r: AEReport, y) -> None:
    st.subheader("Latent maps")
    c1, c2 = st.columns(2)
    show(
        c1,
        r,
        "vae map",
        lambda: map_figure(r.vae, y, f"{names[0]}: PCA of test means"),
        key="lab6_map_vae",
        width="content",  # a square plot: equal aspect
    )
    show(
        c2,
        r,
        "ae map",
        lambda: map_figure(r.ae, y, f"{names[1]}: PCA of codes"),
        key="lab6_map_ae",
        width="content",  # a square plot: equal aspect
    )
    st.caption("The autoencoder's codes are rotated onto the VAE map (orthogonal Procrustes).")


def _samples_section(names: list[str], r: AEReport, input_shape, sizes: Sizes) -> None:
    st.subheader("Decoded prior samples")
    rows: list[tuple[str, SampleScore]] = [(f"VAE, z ~ {PRIOR}", r.vae.samplers[PRIOR])] + [
        (f"AE, z ~ {k}", s) for k, s in r.ae.samplers.items()
    ]
    st.image(
        view(r, "samples", lambda: image_grid([s.images for _, s in rows], input_shape, 64)),
        clamp=True,
        caption="Rows: " + " · ".join(name for name, _ in rows),
    )
    rows.append(("real test images (reference)", r.data))
    st.table(
        pd.DataFrame(
            {
                "images": [name for name, _ in rows],
                f"{sizes.knn}-NN label agreement": [
                    "— (no labels)" if math.isnan(s.knn) else f"{s.knn:.3f}" for _, s in rows
                ],
                "RMS distance to nearest training image": [f"{s.pixel_nn:.3f}" for _, s in rows],
            }
        ).set_index("images")
    )
    st.caption(
        f"Scored on {sizes.n_samples} draws per sampler. Label agreement: the share of a sample's "
        f"{sizes.knn} nearest training images (pixel distance) that carry their majority label; a clear "
        "digit scores high, a blend of classes low. The distance alone favours blurry averages."
    )


@st.fragment
def _interpolations(ckpts: list[LabModel], x, input_shape, steps: int) -> None:
    """Reruns alone when its inputs change: the rest of the page keeps its report."""
    st.subheader("Interpolations")
    n = len(x)
    c1, c2 = st.columns(2)
    i = c1.number_input("from test image", 0, n - 1, 0, key="lab6_from")
    j = c2.number_input("to test image", 0, n - 1, min(1, n - 1), key="lab6_to")
    lines = [interpolation(c.model, x[i], x[j], steps) for c in ckpts]
    st.image(
        image_grid(lines, input_shape, 64),
        clamp=True,
        caption=f"Straight lines between the two codes, {steps} steps: top VAE, bottom AE",
    )


def render(sizes: Sizes = Sizes()) -> None:
    st.title("Autoencoder vs VAE")
    ckpt = current_checkpoint()
    if ckpt is None:
        return
    _formulas()
    data = dataset_for(ckpt)
    x = test_targets(ckpt)
    runs = objective_runs(ckpt.model_config, ckpt.train_config)
    pair = [runs["vae"], runs["ae"]]
    st.caption(base_caption(ckpt, pair))
    ckpts = open_runs(pair, data, "lab6")
    if ckpts is None:
        return
    names = [r.name for r in pair]
    params = {k: getattr(sizes, k) for k in ("n_samples", "n_show", "knn", "seed")}

    def compute() -> AEReport:  # a spinner only while computing: a stored report shows at once
        with st.spinner("Comparing the autoencoder and the VAE on the test set…"):
            x_train = eval_targets(data.x_train, ckpt.train_config.binarize)
            return ae_report(
                ckpts[0].model,
                ckpts[1].model,
                x,
                x_train,
                data.x_train,
                data.x_test,
                data.y_train,
                n_samples=sizes.n_samples,
                n_show=sizes.n_show,
                knn=sizes.knn,
                seed=sizes.seed,
            )

    r = lab_report("lab6", [c.path for c in ckpts], params, AEReport, compute)
    _recon_section(names, r)
    _maps_section(names, r, data.y_test)
    shape = ckpt.model_config.input_shape
    _samples_section(names, r, shape, sizes)
    _interpolations(ckpts, x, shape, sizes.steps)
