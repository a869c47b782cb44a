"""A tiny app around the latent_decoder component alone, for the browser tests.

Query parameter ?ckpt=<path> picks the model (default: the shipped checkpoint). Buttons set z from
Python the way the Explorer page does (zero, a fixed point); the last released z is printed.
"""
import os

import streamlit as st
import torch

from app.components.latent_decoder import browser_weights, latent_decoder
from app.common import load_model
from vae_core.cache import default_checkpoint_path

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
new_z = latent_decoder(weights, st.session_state["t_z"], [f"z{i} · test" for i in range(k)], inactive,
                       key="t_decoder")
if new_z is not None:
    st.session_state["t_z"] = new_z
st.write(f"released: {new_z}")
st.markdown(f"<span data-testid='t-state'>{sum(st.session_state['t_z']):.4f}</span>",
            unsafe_allow_html=True)
