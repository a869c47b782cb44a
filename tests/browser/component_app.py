"""A tiny app around the latent_decoder component alone, for the browser tests.

Query parameters: ?ckpt=<path> picks the model (default: the shipped checkpoint); ?server=1 decodes
on the server (server_decoder, the fallback; always so for a decoder the browser cannot run),
with ?preview_ms=<ms> between drag previews (0: none, only on release). Buttons set z from Python the
way the Explorer page does (zero, a fixed point); the z Python holds is printed (t-state: its sum).
Every fifth dim is inactive, with the Explorer's longest label ("… · collapsed").
"""

import os

import streamlit as st
import torch

from app.common import load_model
from app.components.latent_decoder import browser_weights, latent_decoder, server_decoder
from app.components.z_sync import ZSync
from vae_core.cache import default_checkpoint_path
from vae_core.images import to_display
from vae_core.latent import decode

path = st.query_params.get("ckpt") or default_checkpoint_path()
ckpt = load_model(path, os.path.getmtime(path))
weights = browser_weights(ckpt)
k = ckpt.model_config.latent_dim
sync = st.session_state.setdefault("t_z", ZSync([0.0] * k))

cols = st.columns(3)
if cols[0].button("zero", key="t_zero"):
    sync.set([0.0] * k, "zero")
if cols[1].button("point", key="t_point"):
    sync.set(torch.linspace(-2, 2, k), "point")
inactive = [i % 5 == 4 for i in range(k)]
labels = [f"z{i + 1} · KL 0.06 · collapsed" if off else f"z{i + 1} · KL 2.31" for i, off in enumerate(inactive)]
if st.query_params.get("server") == "1" or weights is None:
    img = to_display(decode(ckpt.model, sync.z), ckpt.model_config.input_shape)
    preview = int(st.query_params.get("preview_ms", 100))
    server_decoder(img, sync, labels, inactive, key="t_decoder", preview_ms=preview or None)
else:
    latent_decoder(weights, sync, labels, inactive, key="t_decoder")
st.markdown(f"<span data-testid='t-state'>{sum(sync.z):.4f}</span>", unsafe_allow_html=True)
