"""A tiny app around the latent_map component alone, for browser tests and bench/map_scale.py.

Query parameters: ?points=<file.npz> with arrays xy (N, 2), labels (N,), means (N, k) and images
(N, H, W) in [0, 1] (tests.harness.map_bench.write_points); ?n= points shown (default all);
?renderer=canvas forces the 2-D canvas fallback; ?colour=value colours by the first mean's
value. The map is the PCA-like "plane" projection, equal-aspect. Hover images come only on demand (no sprite sheet
up front). The clicked test index is printed.
"""

import functools

import numpy as np
import streamlit as st

from app.components.hover_preview import hover_sprite
from app.components.latent_map import classes_for, latent_map, points_payload, selected_index, value_colour


@st.cache_resource(max_entries=4)
def _points(path: str) -> dict:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@st.cache_resource(max_entries=4)
def _payload(path: str) -> dict:
    p = _points(path)
    return points_payload(p["xy"], p["labels"], np.arange(len(p["xy"])), p["means"])


def _thumbs(path: str, test_indices: list[int]) -> dict:
    images = _points(path)["images"]
    idx = [t for t in test_indices if 0 <= t < len(images)]
    return hover_sprite(images[idx], np.array(idx))


def _on_select() -> None:
    st.session_state["m_selected"] = selected_index("m_map")


path = st.query_params["points"]
pts = _points(path)
n = int(st.query_params.get("n", len(pts["xy"])))
colour = value_colour("mean 1", pts["means"][:, 0]) if st.query_params.get("colour") == "value" else None
k = pts["means"].shape[1]
latent_map(
    _payload(path),
    n,
    {"kind": "plane", "k": k, "equal_aspect": True},
    classes_for(pts["labels"][:n]),
    ("x", "y"),
    key="m_map",
    selected=st.session_state.get("m_selected"),
    z=None,
    on_select=_on_select,
    colour=colour,
    thumbs=functools.partial(_thumbs, path),
    renderer=st.query_params.get("renderer", "auto"),
)
st.markdown(
    f"<span data-testid='m-selected'>selected #{st.session_state.get('m_selected')}</span>", unsafe_allow_html=True
)
