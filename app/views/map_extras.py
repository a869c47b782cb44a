"""The explorer map's colouring and its hover images on demand.

Colour by: the label (default), ‖μ‖ (distance of the encoder mean from the prior's mean: large
means atypical inputs), or one mean coordinate μ_d. Numpy only, from the map's ModelView: the
map is drawn before torch is imported.

Hover images: the page sends a sprite sheet of the first HOVER_MAX points' images up front
(app.views.explorer_panels); the others are asked for by the browser when hovered, with their map
neighbours, and answered here (app.components.latent_map's `thumbs`).
"""
from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from app.components.latent_map import value_colour
from app.views.latent_data import ModelView

LABEL = "label"
NORM = "‖μ‖"


def colour_options(view: ModelView) -> list[str]:
    return [LABEL, NORM] + [f"μ{d + 1}" for d in range(view.latent_dim)]


@st.cache_resource(max_entries=16, show_spinner=False)
def _value_colour(choice: str, digest: str, _view: ModelView) -> dict:
    m = np.asarray(_view.means, np.float64)
    values = np.linalg.norm(m, axis=1) if choice == NORM else m[:, int(choice[1:]) - 1]
    return value_colour(choice, values)


def map_colour(view: ModelView, choice: str) -> dict | None:
    """The latent_map `colour` for a colour_options choice (None: by label)."""
    if choice not in colour_options(view) or choice == LABEL:
        return None
    return _value_colour(choice, hashlib.sha1(np.ascontiguousarray(view.means).tobytes()).hexdigest(), view)


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
