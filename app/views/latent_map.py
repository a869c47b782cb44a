"""The explorer's latent map: which projection is in use, and the point set sent to the canvas map.

Import-light (numpy, no torch, no plotly): the explorer draws its map before torch is imported.
Every page that shows the map draws it with app.components.latent_map.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np
import streamlit as st

from app.components.latent_map import (
    classes_for,
    equal_aspect,
    file_scope,
    latent_map,
    points_only,
    points_payload,
)
from app.safe import plain
from app.views.latent_data import ModelView, start_umap, umap_progress, umap_projection, umap_status
from app.views.map_extras import hover_thumbs
from vae_core.projection import LatentPlane
from vae_core.projection_cache import cache_path_for

UMAP_HELP = (
    "UMAP is fit once on the test-set means (in a background process, cached beside the "
    "checkpoint). A new z is placed by UMAP's own transform initialisation: the weighted mean "
    "of the map positions of its 15 nearest means (weights exp(-d/σ) as in UMAP), so it is an "
    "approximation; a z equal to a plotted mean lands exactly on that point."
)
PCA_HELP = "PCA: the exact linear projection of z onto the top two principal axes of the test-set means."


@dataclass(frozen=True)
class MapProjection:
    name: str  # "latent" | "pca" | "umap"
    basis: object  # LatentPlane | PCAProjection | KNNProjection (vae_core.projection)
    xy: np.ndarray  # (N, 2) positions of the map points
    axes: tuple[str, str]
    help: str

    def transform(self, z: np.ndarray) -> np.ndarray:
        """(M, k) -> (M, 2) map positions."""
        return self.basis.transform(z)


def choose_projection(view: ModelView, ckpt_path: str, key: str) -> MapProjection:
    """Latent plane for k <= 2; else a PCA / UMAP radio. Picking UMAP starts its background job."""
    projection_picker(view, ckpt_path, key)
    return current_projection(view, ckpt_path, key)


def current_projection(view: ModelView, ckpt_path: str, key: str) -> MapProjection:
    """The map's projection as picked (the radio under `key`; UMAP by default once it is cached, PCA
    while it is not), without drawing the picker: a page can send its map before the picker."""
    k = view.latent_dim
    if k <= 2:
        plane = LatentPlane(k)
        return MapProjection(
            "latent",
            plane,
            plane.transform(view.means),
            ("z1", "z2" if k == 2 else "(k = 1)"),
            "The latent plane itself (k ≤ 2).",
        )
    umap = umap_projection(ckpt_path)
    if key not in st.session_state:
        st.session_state[key] = "UMAP" if umap is not None else "PCA"
    if st.session_state[key] == "UMAP" and umap is not None:
        return MapProjection(
            "umap", umap, umap.embedding[: len(view.means)].astype(np.float64), ("UMAP 1", "UMAP 2"), UMAP_HELP
        )
    ev = view.pca.explained
    return MapProjection(
        "pca",
        view.pca,
        view.pca.transform(view.means),
        (f"PC1 ({ev[0]:.0%} of variance)", f"PC2 ({ev[1]:.0%})"),
        PCA_HELP,
    )


def projection_picker(view: ModelView, ckpt_path: str, key: str) -> None:
    """The PCA / UMAP radio under `key` (k <= 2: a note that the map is the latent plane itself), and
    while UMAP is picked but not cached yet, its background job's progress."""
    k = view.latent_dim
    if k <= 2:
        st.markdown(f"**Map: the latent plane itself** (k = {k}, no projection needed)")
        return
    umap = umap_projection(ckpt_path)
    if key not in st.session_state:
        st.session_state[key] = "UMAP" if umap is not None else "PCA"
    choice = st.radio(
        "Projection", ["PCA", "UMAP"], key=key, horizontal=True, help=UMAP_HELP if umap is not None else PCA_HELP
    )
    if choice == "UMAP" and umap is None:
        if umap_status(ckpt_path)[0] == "idle":  # a failed run is retried only on request
            start_umap(ckpt_path)
        _poll_umap(ckpt_path, key)


@st.fragment(run_every=2.0)
def _poll_umap(ckpt_path: str, key: str) -> None:
    """Shows PCA meanwhile; reruns the page once the UMAP cache is on disk."""
    status, msg = umap_status(ckpt_path)
    if status == "ready":
        st.rerun()
    elif status == "failed":
        st.error(plain(msg) + " Showing PCA instead.")
        if st.button("Retry UMAP", key=key + "_retry"):
            start_umap(ckpt_path)
    else:
        st.info(f"{plain(msg)}. Showing PCA until it is ready.", icon=":material/hourglass_top:")
        done = umap_progress(ckpt_path)
        if done is not None:
            st.progress(done.fraction, text=plain(done.message))


@st.cache_resource(max_entries=16, show_spinner=False)
def _payload(
    path: str, mtime: float, cache_mtime: float, proj_name: str, n: int, _proj: MapProjection, _view: ModelView
) -> dict:
    return points_payload(_proj.xy, _view.labels, _view.index, _view.means)


def map_payload(proj: MapProjection, view: ModelView, ckpt_path: str) -> dict:
    """The canvas map's point set (all cached points; the page shows the first n): the same dict on
    every rerun, so it is encoded once per checkpoint file, projection cache and projection, and sent
    once per session. Keyed on the files' mtimes (the view and the projection are read from them), not
    on a hash of the points: a rerun does not re-read 60,000 points to find the dict it already has."""
    mtimes = []
    for f in (ckpt_path, cache_path_for(ckpt_path)):
        try:
            mtimes.append(os.path.getmtime(f))
        except OSError:  # no projection cache: the view was encoded from the checkpoint alone
            mtimes.append(0.0)
    return _payload(ckpt_path, *mtimes, proj.name, len(view.means), proj, view)


def test_points_map(
    proj: MapProjection, view: ModelView, ckpt_path: str, *, key: str, meta: str, height: int, **kw
) -> None:
    """A page's map of the test points under `proj` (the traversal's, the upload page's): the canvas
    map with hover images and no star; kw goes to latent_map (on_select, overlays, ...)."""
    latent_map(
        map_payload(proj, view, ckpt_path),
        len(view.means),
        points_only(equal_aspect(proj.basis)),
        classes_for(view.labels),
        proj.axes,
        key=key,
        meta=meta,
        height=height,
        thumbs=functools.partial(hover_thumbs, ckpt_path),
        thumbs_scope=file_scope(ckpt_path),
        **kw,
    )
