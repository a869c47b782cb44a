"""Explorer state: z (the truth the sliders and the map star follow) and the callbacks that change it.

Session-state keys, all prefixed explorer_: z (list), clipped (dims clipped to the slider range),
selected (test index or None), index (the number input), z{i} (server sliders), draws (sample
counter), model (open checkpoint). Clicks, buttons and slider releases all go through these
callbacks, which run before the script, so the map star, sliders and image agree within one run.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from app.components.latent_map import selected_index
from app.views.latent_data import ModelView

if TYPE_CHECKING:  # torch is imported only by the callbacks that need it: the map is drawn before it
    import torch

    from vae_core.checkpoints import Checkpoint

P = "explorer_"
SLIDER_RANGE = 3.0


def set_z(z) -> None:
    """Sliders span ±3: a value outside is clipped, and the dims that were are listed under the map."""
    st.session_state[P + "clipped"] = [i for i, v in enumerate(z) if abs(v) > SLIDER_RANGE]
    z = [float(np.clip(v, -SLIDER_RANGE, SLIDER_RANGE)) for v in z]
    st.session_state[P + "z"] = z
    for i, v in enumerate(z):
        st.session_state[f"{P}z{i}"] = v


def select_point(ckpt: Checkpoint, test_index: int) -> None:
    """Load the encoder mean of test example `test_index` into the sliders (number input)."""
    import torch

    from app.common import test_targets
    x = test_targets(ckpt)
    test_index = int(np.clip(test_index, 0, len(x) - 1))
    with torch.no_grad():
        mu, _ = ckpt.model.encode(x[test_index:test_index + 1])
    st.session_state[P + "selected"] = test_index
    st.session_state[P + "index"] = test_index
    set_z(mu[0].tolist())


def select_row(view: ModelView, row: int) -> None:
    """Load map point `row` (its cached encoder mean, the value the browser already moved the
    sliders to) into the sliders: no encoder pass, no torch."""
    test_index = int(view.index[row])
    st.session_state[P + "selected"] = test_index
    st.session_state[P + "index"] = test_index
    set_z(view.means[row].tolist())


def reset_for(path: str, view: ModelView) -> None:
    """A newly opened model starts on its first map point."""
    if st.session_state.get(P + "model") == path and len(st.session_state.get(P + "z", [])) == view.latent_dim:
        return
    for k in [k for k in st.session_state if k.startswith(P + "z")]:
        del st.session_state[k]
    st.session_state[P + "model"] = path
    st.session_state[P + "draws"] = 0
    select_row(view, 0)


def on_map_select(view: ModelView) -> None:
    """The map's click callback (trigger `select`: the clicked test index)."""
    idx = selected_index(P + "map")
    row = view.row_of(idx) if idx is not None else None
    if row is not None:
        select_row(view, row)


def on_index(ckpt: Checkpoint) -> None:
    select_point(ckpt, int(st.session_state[P + "index"]))


def on_slider() -> None:
    k = len(st.session_state[P + "z"])
    st.session_state[P + "z"] = [float(st.session_state[f"{P}z{i}"]) for i in range(k)]


def _next_generator() -> torch.Generator:
    import torch
    st.session_state[P + "draws"] = st.session_state.get(P + "draws", 0) + 1
    return torch.Generator().manual_seed(st.session_state[P + "draws"])


def on_zero() -> None:
    set_z([0.0] * len(st.session_state[P + "z"]))


def on_prior() -> None:
    from vae_core.latent import prior_sample
    set_z(prior_sample(len(st.session_state[P + "z"]), _next_generator()).tolist())


def on_posterior(ckpt: Checkpoint) -> None:
    idx = st.session_state.get(P + "selected")
    if idx is None:
        return
    import torch

    from app.common import test_targets
    from vae_core.latent import posterior_sample
    x = test_targets(ckpt)[idx:idx + 1]
    with torch.no_grad():
        mu, logvar = ckpt.model.encode(x)
    set_z(posterior_sample(mu[0], logvar[0], _next_generator()).tolist())


def on_decoder_release(key: str) -> None:
    z = (st.session_state.get(key) or {}).get("z")
    if z is not None and len(z) == len(st.session_state[P + "z"]):
        set_z(z)
