"""Lab 6 · Autoencoder vs VAE: same architecture, data and seed; only the objective differs."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from app.common import current_checkpoint, dataset_for, test_targets
from app.lab.sweep_ui import base_caption, image_grid, open_runs
from vae_core.data import eval_targets
from vae_core.lab.alignment import aligned_maps
from vae_core.lab.compare import (fit_code_gaussian, knn_label_agreement, nearest_distance, reconstruction_error,
                                  sample_gaussian)
from vae_core.latent import lerp
from vae_core.lab.sweeps import objective_runs, summarize

N_SAMPLES = 300   # prior draws scored per sampler
N_SHOW = 10       # decoded draws shown per row
STEPS = 10        # interpolation steps
KNN = 10          # neighbours for the label-agreement realism proxy


@st.cache_data(max_entries=4, show_spinner="Comparing the autoencoder and the VAE on the test set…")
def _numbers(key: tuple, _vae, _ae, _x: torch.Tensor, _x_train: torch.Tensor, _grey_train: torch.Tensor,
             _grey_test: torch.Tensor, _y_train, seed: int = 0) -> dict:
    """Live numbers for both models; key = ((path, mtime), (path, mtime))."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    with torch.no_grad():
        z0 = torch.randn(N_SAMPLES, _vae.cfg.latent_dim, generator=g)  # the same N(0, I) draws for both
        for name, m in (("vae", _vae), ("ae", _ae)):
            codes = m.encode(_x)[0]
            train_codes = m.encode(_x_train)[0]
            r = reconstruction_error(m, _x)
            samplers = {"N(0, I)": z0}
            if name == "ae":
                mean, cov = fit_code_gaussian(train_codes)
                samplers["N(m, C) fitted to codes"] = sample_gaussian(mean, cov, N_SAMPLES, g)
            samp = {}
            for s_name, z in samplers.items():
                imgs = m.decode_mean(z)
                samp[s_name] = {"images": imgs[:N_SHOW],
                                "knn": _agreement(imgs, _grey_train, _y_train),
                                "pixel_nn": float(nearest_distance(imgs, _grey_train).mean())}
            out[name] = {"codes": codes.numpy(), "mse": r.mse, "log_px_z": r.log_px_z,
                         "stats": summarize(m, _x, seed=seed), "code_std": codes.std(0).numpy(),
                         "samplers": samp}
        real = _grey_test[:N_SAMPLES]
        out["data"] = {"knn": _agreement(real, _grey_train, _y_train),
                       "pixel_nn": float(nearest_distance(real, _grey_train).mean())}
    return out


def _agreement(imgs, reference, labels) -> float | None:
    return None if labels is None else knn_label_agreement(imgs, reference, labels, k=KNN)


def _map_figure(xy: np.ndarray, prior_xy: np.ndarray, y, title: str) -> go.Figure:
    fig = go.Figure()
    fig.add_scattergl(x=prior_xy[:, 0], y=prior_xy[:, 1], mode="markers", name="z ~ N(0, I)",
                      marker=dict(size=4, color="rgba(0,0,0,0.35)", symbol="x"))
    labels = y.numpy() if y is not None else np.zeros(len(xy), int)
    fig.add_scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers", name="test codes μ(x)",
                      marker=dict(size=4, color=labels, colorscale="Turbo", opacity=0.7),
                      text=[f"label {int(v)}" for v in labels], hoverinfo="text")
    fig.update_layout(title=title, height=380, margin=dict(l=10, r=10, t=70, b=10), xaxis_title="PC 1",
                      yaxis_title="PC 2", legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"))
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def render() -> None:
    st.title("Autoencoder vs VAE")
    ckpt = current_checkpoint()
    if ckpt is None:
        return
    data = dataset_for(ckpt)
    x = test_targets(ckpt)
    st.latex(r"\text{AE: } \max_{\phi,\theta}\ \log p_\theta\big(x\,|\,z = \mu_\phi(x)\big) \qquad"
             r"\text{VAE: } \max_{\phi,\theta}\ \mathbb{E}_{q_\phi(z|x)}[\log p_\theta(x|z)] - "
             r"\mathrm{KL}\big(q_\phi(z|x)\,\|\,\mathcal{N}(0, I)\big)")
    st.markdown("The autoencoder never pays for where its codes sit, so nothing makes them fill N(0, I): "
                "decoding prior draws asks its decoder about places it was never trained on.")
    runs = objective_runs(ckpt.model_config, ckpt.train_config)
    pair = [runs["vae"], runs["ae"]]
    st.caption(base_caption(ckpt, pair))
    ckpts = open_runs(pair, data, "lab6")
    if ckpts is None:
        return
    vae, ae = (c.model for c in ckpts)
    tc = ckpt.train_config
    key = tuple((c.path, os.path.getmtime(c.path)) for c in ckpts)
    num = _numbers(key, vae, ae, x, eval_targets(data.x_train, tc.binarize), data.x_train, data.x_test,
                   data.y_train)
    v, a = num["vae"], num["ae"]

    st.subheader("Reconstruction error (test set, z = μ(x))")
    st.dataframe(pd.DataFrame({
        "model": [pair[0].name, pair[1].name],
        "MSE per pixel of E[x|z=μ]": [f"{v['mse']:.5f}", f"{a['mse']:.5f}"],
        "log p(x|z=μ) (nats)": [f"{v['log_px_z']:.2f}", f"{a['log_px_z']:.2f}"],
        "KL(q‖p) (nats)": [f"{v['stats']['kl']:.2f}", "— (not trained; σ meaningless)"],
        "code std per dim (mean)": [f"{v['code_std'].mean():.2f}", f"{a['code_std'].mean():.2f}"],
    }).set_index("model"))
    st.markdown(f"The AE reconstructs {'better' if a['log_px_z'] > v['log_px_z'] else 'no better'} "
                f"(log p(x|z=μ) {a['log_px_z']:.1f} vs {v['log_px_z']:.1f} nats): it spends nothing on KL. "
                f"Its codes have a mean per-dim std of {a['code_std'].mean():.2f} against the prior's 1, so N(0, I) "
                "draws (crosses on the maps) crowd into the middle of its code cloud.")

    st.subheader("Latent maps")
    maps = aligned_maps({"vae": v["codes"], "ae": a["codes"]}, reference="vae")
    z0 = torch.randn(N_SAMPLES, vae.cfg.latent_dim, generator=torch.Generator().manual_seed(0)).numpy()
    c1, c2 = st.columns(2)
    c1.plotly_chart(_map_figure(maps["vae"].project(v["codes"]), maps["vae"].project(z0), data.y_test,
                                f"{pair[0].name}: PCA of test means"), key="lab6_map_vae")
    c2.plotly_chart(_map_figure(maps["ae"].project(a["codes"]), maps["ae"].project(z0), data.y_test,
                                f"{pair[1].name}: PCA of codes, rotated onto the VAE map"), key="lab6_map_ae")

    st.subheader("Decoded prior samples")
    rows = [("VAE, z ~ N(0, I)", v["samplers"]["N(0, I)"])] + \
           [(f"AE, z ~ {k}", s) for k, s in a["samplers"].items()]
    shape = ckpt.model_config.input_shape
    st.image(image_grid([s["images"] for _, s in rows], shape, 64), clamp=True,
             caption="Rows: " + " · ".join(name for name, _ in rows))
    rows.append(("real test images (reference)", num["data"]))
    fmt = lambda q: "— (no labels)" if q is None else f"{q:.3f}"
    st.dataframe(pd.DataFrame({
        "images": [name for name, _ in rows],
        f"{KNN}-NN label agreement": [fmt(s["knn"]) for _, s in rows],
        "RMS distance to nearest training image": [f"{s['pixel_nn']:.3f}" for _, s in rows],
    }).set_index("images"))
    st.caption(f"Scored on {N_SAMPLES} draws per sampler. Label agreement: the share of a sample's {KNN} "
               "nearest training images (pixel distance) that carry their majority label; a clear digit "
               "scores high, a blend of classes low. The distance alone favours blurry averages.")

    st.subheader("Interpolations")
    n = len(x)
    c1, c2 = st.columns(2)
    i = c1.number_input("from test image", 0, n - 1, 0, key="lab6_from")
    j = c2.number_input("to test image", 0, n - 1, min(1, n - 1), key="lab6_to")
    with torch.no_grad():
        lines = [m.decode_mean(lerp(m.encode(x[[i]])[0][0], m.encode(x[[j]])[0][0], torch.linspace(0, 1, STEPS)))
                 for m in (vae, ae)]
    st.image(image_grid(lines, shape, 64), clamp=True,
             caption=f"Straight lines between the two codes, {STEPS} steps: top VAE, bottom AE")
