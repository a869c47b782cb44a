"""Latent arithmetic (White 2016; the plat tool): class-mean vectors, a slider along an attribute
direction m_A - m_B, and analogies a - b + c. The maths is vae_core.arithmetic; this page decodes.

Means are over the map points of the test set (app.views.latent_data.ModelView: encoder means mu
and labels). Each result can go to the explorer's sliders (app.views.explorer_z.open_in_explorer).
Session-state keys are prefixed arith_; the shown results' z are kept under arith_dir_z and
arith_analogy_z (lists of floats), the numbers the captions print.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from app.common import current_checkpoint, one_thread, test_targets
from app.safe import plain
from app.views.explorer_z import open_in_explorer
from app.views.latent_data import model_view
from vae_core.arithmetic import ClassMeans, along, analogy, class_means, direction
from vae_core.gif import gif_bytes, grid_frames
from vae_core.images import tile, to_display, upscale
from vae_core.latent import decode, encode_mean

P = "arith_"
ALPHA_MAX = 3.0  # the slider and the strip run over alpha in [-ALPHA_MAX, ALPHA_MAX]
IMAGE_PX = 112  # one decoded image on screen (nearest-neighbour upscaled, no blur)
GIF_SCALE = 4  # GIF pixels per model pixel
TEST, CLASS = "test example", "class mean"  # what an analogy operand is


def _decoded(ckpt, z: np.ndarray) -> np.ndarray:
    """(..., k) latents -> display images (..., H, W[, 3]) of E[x|z]."""
    with one_thread():
        x = decode(ckpt.model, torch.as_tensor(np.asarray(z), dtype=torch.float32))
    return to_display(x, ckpt.model_config.input_shape)


def _mu(ckpt, test_index: int) -> np.ndarray:
    """Encoder mean of test example `test_index`, (k,)."""
    with one_thread():
        return encode_mean(ckpt.model, test_targets(ckpt)[test_index : test_index + 1])[0].double().numpy()


def _fmt(z: np.ndarray, most: int = 8) -> str:
    """(k,) -> "(0.12, -1.30, …)" for captions, the first `most` values."""
    vals = ", ".join(f"{v:.2f}" for v in z[:most])
    return f"({vals}{', …' if len(z) > most else ''})"


def _open_button(ckpt, z: np.ndarray, origin: str, key: str) -> None:
    if st.button(
        "Open in the explorer", icon=":material/explore:", key=key, help="Put this z into the explorer's sliders"
    ):
        open_in_explorer(ckpt.path, [float(v) for v in z], origin)


def _no_labels() -> None:
    st.info(
        "This dataset has no labels, so there are no class means or directions between classes. "
        "Analogies from test examples work below.",
        icon=":material/info:",
    )


def _class_means(ckpt, cm: ClassMeans) -> None:
    st.subheader("Class means")
    st.caption("m_c: the mean of the encoder means μ(x) over the test points with label c, decoded.")
    if not len(cm.labels):
        _no_labels()
        return
    imgs = _decoded(ckpt, cm.means)
    per_line = 10
    for start in range(0, len(cm.labels), per_line):
        cols = st.columns(per_line)
        for col, c, img in zip(cols, cm.labels[start:], imgs[start : start + per_line]):
            col.image(upscale(img, IMAGE_PX), clamp=True, width="stretch", caption=str(c))
    st.caption("points per class: " + ", ".join(f"{c}: {n}" for c, n in zip(cm.labels, cm.counts)))
    c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
    pick = c1.selectbox("Class mean", cm.labels.tolist(), key=P + "mean_pick")
    with c2:
        _open_button(ckpt, cm.of(pick), f"the mean of class {pick}", P + "open_mean")


def _base(ckpt, view, cm: ClassMeans, b: int) -> tuple[np.ndarray, str]:
    c = st.columns([2, 1])
    kind = c[0].radio(
        "Base z", ["z = 0", "a class mean", "a test example's μ"], index=1, key=P + "base", horizontal=True
    )
    if kind == "z = 0":
        return np.zeros(view.latent_dim), "0"
    if kind == "a class mean":
        labels = cm.labels.tolist()
        label = c[1].selectbox("Base class", labels, index=labels.index(b), key=P + "base_class")
        return cm.of(label), f"m_{label}"
    i = int(c[1].number_input("Base test example #", 0, view.n_test - 1, int(view.index[0]), key=P + "base_index"))
    return _mu(ckpt, i), f"μ(#{i})"


def _direction(ckpt, view, cm: ClassMeans) -> None:
    st.subheader("Attribute direction")
    if not len(cm.labels):
        _no_labels()
        return
    labels = cm.labels.tolist()
    c = st.columns(3)
    a = c[0].selectbox("Class A", labels, index=min(1, len(labels) - 1), key=P + "a")
    b = c[1].selectbox("Class B", labels, index=0, key=P + "b")
    unit = c[2].toggle("Unit direction", key=P + "unit", help="α·d/|d|: α is then a distance in z-space")
    d = direction(cm.of(a), cm.of(b))
    base, base_name = _base(ckpt, view, cm, b)
    alpha = st.slider("α", -ALPHA_MAX, ALPHA_MAX, 1.0, 0.25, key=P + "alpha")
    z = along(base, d, [alpha], unit=unit)[0]
    step = "α·d/|d|" if unit else "α·d"
    st.session_state[P + "dir_z"] = z.tolist()
    st.caption(
        plain(
            f"z = {base_name} + {step}, d = m_{a} − m_{b}: |d| = {np.linalg.norm(d):.3f}, α = {alpha:g}, z = {_fmt(z)}"
        )
    )
    c1, c2 = st.columns([1, 3], vertical_alignment="center")
    c1.image(upscale(_decoded(ckpt, z), IMAGE_PX * 3 // 2), clamp=True, caption=f"α = {alpha:g}")
    with c2:
        st.caption(
            plain(f"α = 1 adds exactly m_{a} − m_{b}: from the base m_{b} it lands on m_{a} (unit direction off).")
        )
        _open_button(ckpt, z, f"{base_name} + {alpha:g}·(m_{a} − m_{b})", P + "open_dir")
    steps = st.slider("Strip steps", 3, 13, 9, 2, key=P + "steps")
    alphas = np.linspace(-ALPHA_MAX, ALPHA_MAX, steps)
    strip = _decoded(ckpt, along(base, d, alphas, unit=unit))  # (steps, H, W[, 3])
    mosaic = tile(strip[None], pad=1)
    st.image(
        upscale(mosaic, IMAGE_PX * max(mosaic.shape[:2]) // strip.shape[1]),
        clamp=True,
        width="stretch",
        caption=f"α = −{ALPHA_MAX:g} … +{ALPHA_MAX:g} in {steps} steps",
    )
    st.download_button(
        "α sweep (GIF)",
        gif_bytes(grid_frames(strip[None]), scale=GIF_SCALE),
        "alpha_sweep.gif",
        "image/gif",
        icon=":material/download:",
        on_click="ignore",
        key=P + "dl_gif",
        help="One frame per α of the strip",
    )


def _operand(ckpt, view, cm: ClassMeans, col, name: str, default) -> tuple[np.ndarray, str]:
    """One of a, b, c: a test example's μ or a class mean. default: (TEST, index) or (CLASS, label)."""
    kinds = [TEST, CLASS] if len(cm.labels) else [TEST]
    kind = col.selectbox(f"{name} is a", kinds, index=kinds.index(default[0]), key=P + name + "_kind")
    if kind == CLASS:
        labels = cm.labels.tolist()
        label = col.selectbox(f"{name}: class", labels, index=labels.index(default[1]), key=P + name + "_class")
        z, text = cm.of(label), f"m_{label}"
    else:
        start = default[1] if default[0] == TEST else int(view.index[0])
        i = int(col.number_input(f"{name}: test example #", 0, view.n_test - 1, start, key=P + name + "_index"))
        z, text = _mu(ckpt, i), f"μ(#{i})"
    col.image(upscale(_decoded(ckpt, z), IMAGE_PX), clamp=True, caption=text)
    return z, text


def _analogy(ckpt, view, cm: ClassMeans) -> None:
    st.subheader("Analogy a − b + c")
    st.caption("“a is to b as the result is to c”: c moved by a − b. Images show E[x|z] of each z.")
    if len(cm.labels) >= 2:  # a digit's style onto another class: #i − m_(its label) + m_(another)
        own = int(view.labels[0]) if int(view.labels[0]) in cm.labels else int(cm.labels[0])
        other = next(c for c in cm.labels.tolist() if c != own)
        defaults = [(TEST, int(view.index[0])), (CLASS, own), (CLASS, other)]
    else:
        defaults = [(TEST, int(view.index[min(i, len(view.index) - 1)])) for i in range(3)]
    cols = st.columns(4)
    (za, ta), (zb, tb), (zc, tc) = (_operand(ckpt, view, cm, cols[i], n, defaults[i]) for i, n in enumerate("abc"))
    z = analogy(za, zb, zc)
    st.session_state[P + "analogy_z"] = z.tolist()
    with cols[3]:
        st.markdown("**result**")
        st.image(upscale(_decoded(ckpt, z), IMAGE_PX), clamp=True, caption=plain(f"{ta} − {tb} + {tc}"))
    st.caption(plain(f"z = {ta} − {tb} + {tc} = {_fmt(z)}"))
    _open_button(ckpt, z, f"{ta} − {tb} + {tc}", P + "open_analogy")


def render() -> None:
    st.title(":material/calculate: Latent arithmetic")
    ckpt = current_checkpoint()
    if ckpt is None:
        return
    view = model_view(ckpt)
    cm = class_means(view.means, view.labels)
    _class_means(ckpt, cm)
    st.divider()
    _direction(ckpt, view, cm)
    st.divider()
    _analogy(ckpt, view, cm)
