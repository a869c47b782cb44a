"""The explorer map's colouring and its hover images on demand.

Colour by: the label (default), ‖μ‖ (distance of the encoder mean from the prior's mean: large
means atypical inputs), one mean coordinate μ_d (numpy only, from the map's ModelView: the map is
drawn before torch is imported), or each point's ELBO, KL or importance-sampled log p(x)
(vae_core.point_stats: computed with the model when first chosen, then cached beside the checkpoint).

Hover images: the page sends a sprite sheet of the first HOVER_MAX points' images up front
(app.views.explorer_panels); the others are asked for by the browser when hovered, with their map
neighbours, and answered here (app.components.latent_map's `thumbs`).
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import streamlit as st

from app.components.latent_map import value_colour
from app.views.latent_data import ModelView

LABEL = "label"
NORM = "‖μ‖"
STAT_OPTIONS = {"ELBO": "elbo", "KL": "kl", "log p(x)": "log_px"}  # colour option -> point_stats key


def colour_options(view: ModelView) -> list[str]:
    return [LABEL, NORM, *STAT_OPTIONS] + [f"μ{d + 1}" for d in range(view.latent_dim)]


class _Unavailable(Exception):
    """The checkpoint did not open (open_checkpoint has shown why)."""


@st.cache_resource(max_entries=4, show_spinner=False)
def _point_stats(path: str, mtime: float, index_digest: str, _view: ModelView) -> dict:
    """elbo, kl, log_px (N,) of the map points, in map order: from the disk cache (numpy only) or
    computed with the model; _Unavailable if the checkpoint cannot be opened now (the reason is shown)."""
    from vae_core.point_stats import MAP_IW_SAMPLES, read_point_stats

    cached = read_point_stats(path, _view.index)
    if cached is not None:
        return cached
    from app.common import open_checkpoint, test_targets
    from vae_core.point_stats import map_point_stats

    ckpt = open_checkpoint(path)
    if ckpt is None:  # raised, not returned: a None would be cached until the file changes
        raise _Unavailable
    return map_point_stats(path, ckpt.model, test_targets(ckpt), _view.index, MAP_IW_SAMPLES)


def point_stats_for(view: ModelView, path: str) -> dict | None:
    """The map points' per-point stats (see _point_stats), cached for every session; a spinner while
    they are computed (the first time for this model: a 60k map takes minutes on a laptop CPU); None
    if the checkpoint does not open now (the reason is shown)."""
    from vae_core.point_stats import MAP_IW_SAMPLES

    with st.spinner(
        f"Computing each point's ELBO, KL and log p(x) (K = {MAP_IW_SAMPLES}) for "
        f"{len(view.index):,} test points, once per model…"
    ):
        try:
            return _point_stats(path, os.path.getmtime(path), _index_digest(view), view)
        except _Unavailable:
            return None


def _index_digest(view: ModelView) -> str:
    """Which map points (their test indices, in order): 60k int64 hash in about a millisecond."""
    return hashlib.sha1(np.ascontiguousarray(view.index).tobytes()).hexdigest()


@st.cache_resource(max_entries=16, show_spinner=False)
def _value_colour(choice: str, digest: str, _view: ModelView) -> dict:
    m = np.asarray(_view.means, np.float64)
    values = np.linalg.norm(m, axis=1) if choice == NORM else m[:, int(choice[1:]) - 1]
    return value_colour(choice, values)


def map_colour(view: ModelView, choice: str, path: str | None = None) -> dict | None:
    """The latent_map `colour` for a colour_options choice (None: by label, or per-point stats that
    are not available: no path, or a checkpoint that does not open)."""
    if choice not in colour_options(view) or choice == LABEL:
        return None
    if choice in STAT_OPTIONS:
        stats = point_stats_for(view, path) if path is not None else None
        return None if stats is None else _stat_colour(choice, path, os.path.getmtime(path), _index_digest(view), stats)
    return _value_colour(choice, hashlib.sha1(np.ascontiguousarray(view.means).tobytes()).hexdigest(), view)


@st.cache_resource(max_entries=8, show_spinner=False)
def _stat_colour(choice: str, path: str, mtime: float, index_digest: str, _stats: dict) -> dict:
    return value_colour(f"{choice} (nats)", _stats[STAT_OPTIONS[choice]])


def hover_thumbs(path: str, test_indices: list[int]) -> dict | None:
    """A sprite sheet (app.components.hover_preview.hover_sprite) of these test points' images, for the
    map's on-demand hover images; None if the checkpoint cannot be opened now."""
    import torch

    from app.common import open_checkpoint, test_targets
    from app.components.hover_preview import hover_sprite
    from vae_core.images import to_display

    ckpt = open_checkpoint(path)
    if ckpt is None:
        return None
    x = test_targets(ckpt)
    idx = np.array([t for t in test_indices if 0 <= t < len(x)], np.int64)
    if not len(idx):
        return None
    return hover_sprite(to_display(x[torch.from_numpy(idx)], ckpt.model_config.input_shape), idx)
