"""A tiny app around the latent_decoder component alone, for the browser tests.

Query parameters: ?ckpt=<path> picks the model (default: the shipped checkpoint); ?server=1 decodes
on the server (server_decoder, the fallback; always so for a decoder the browser cannot run),
with ?preview_ms=<ms> between drag previews (0: none, only on release). Buttons set z from Python the
way the Explorer page does (zero, a fixed point); the last released z is printed.
"""
import os

import streamlit as st
import torch

from app.common import load_model
from app.components.latent_decoder import browser_weights, latent_decoder, server_decoder
from vae_core.cache import default_checkpoint_path
from vae_core.images import to_display

path = st.query_params.get("ckpt") or default_checkpoint_path()
ckpt = load_model(path, os.path.getmtime(path))
weights = browser_weights(ckpt)
k = ckpt.model_config.latent_dim
if "t_z" not in st.session_state:
    st.session_state["t_z"] = [0.0] * k

cols = st.columns(3)
if cols[0].button("zero", key="t_zero"):
    st.session_state["t_z"] = [0.0] * k
if cols[1].button("point", key="t_point"):
    st.session_state["t_z"] = torch.linspace(-2, 2, k).tolist()
inactive = [i % 5 == 4 for i in range(k)]
labels = [f"z{i} · test" for i in range(k)]
if st.query_params.get("server") == "1" or weights is None:
    def on_release():  # as the Explorer: the sent z is stored before the image is decoded
        st.session_state["t_z"] = st.session_state["t_decoder"]["z"]

    with torch.no_grad():
        img = to_display(ckpt.model.decode_mean(torch.tensor([st.session_state["t_z"]]))[0],
                         ckpt.model_config.input_shape)
    preview = int(st.query_params.get("preview_ms", 100))
    new_z = server_decoder(img, st.session_state["t_z"], labels, inactive, key="t_decoder", on_change=on_release,
                           preview_ms=preview or None)
else:
    new_z = latent_decoder(weights, st.session_state["t_z"], labels, inactive, key="t_decoder")
if new_z is not None:
    st.session_state["t_z"] = new_z
st.write(f"released: {new_z}")
st.markdown(f"<span data-testid='t-state'>{sum(st.session_state['t_z']):.4f}</span>",
            unsafe_allow_html=True)
