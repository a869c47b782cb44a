"""Traversal & interpolation: one row per latent dim (sorted by KL), and lerp / slerp between two points.

The interpolation's endpoints are test examples: typed into the number inputs, or picked by clicking a
point on the map (the radio says whether a click sets the start or the end; it then alternates).
Both views export an animated GIF (vae_core.gif), one frame per step.
"""

from __future__ import annotations

import base64
import functools
import os

import numpy as np
import streamlit as st
import torch

from app.common import current_checkpoint, test_targets
from app.components.latent_map import overlay_mark, overlay_path, selected_index
from app.views.latent_data import model_view
from app.views.latent_map import choose_projection, test_points_map
from vae_core.gif import gif_bytes, grid_frames
from vae_core.images import png_bytes, tile, to_display, upscale
from vae_core.latent import decode, encode_mean, lerp, slerp, traversal_grid

P = "traversal_"
GIF_SCALE = 4  # GIF pixels per model pixel
GIF_COLS = 5  # the traversal GIF tiles its rows' images this many to a line
START, END = "start", "end"
ENDPOINT_KEYS = {START: P + "from", END: P + "to"}
ENDPOINT_MARKS = {START: ("#1b9e77", "diamond"), END: ("#7570b3", "square")}  # map marker colour, symbol
PATH_COLOURS = {"linear": "#111111", "slerp": "#e15759"}


def _mean_of(ckpt, test_index: int) -> torch.Tensor:
    return encode_mean(ckpt.model, test_targets(ckpt)[test_index : test_index + 1])[0]


def _mosaic(imgs: np.ndarray, image_px: int = 112) -> np.ndarray:
    """(R, C, H, W[, 3]) -> one mosaic, nearest-neighbour upscaled so each image is about image_px
    pixels tall (no browser blur): upscale's factor target // longest side is then image_px // H."""
    mosaic = tile(imgs, pad=1)
    return upscale(mosaic, image_px * max(mosaic.shape[:2]) // imgs.shape[2])


def _gif(imgs: np.ndarray, cols: int) -> bytes:
    """An animated GIF of (R, T, H, W[, 3]) images: frame t tiles the R rows' image t, cols to a line."""
    return gif_bytes(grid_frames(imgs, cols=cols), scale=GIF_SCALE)


@st.cache_data(max_entries=64, show_spinner=False)
def _traversal_rows(
    path: str, mtime: float, base_index: int | None, r: float, n: int, rows: int, _ckpt, _view
) -> tuple[np.ndarray, list[int], str]:
    """(images (rows, n, H, W[, 3]), the rows' dims, highest KL first, their HTML) from z = 0 (base_index
    None) or test example base_index's mean. Deterministic: computed once per model file and settings for
    every session (a class opening the page with the default settings decodes once)."""
    z0 = torch.zeros(_view.latent_dim) if base_index is None else _mean_of(_ckpt, base_index)
    order = np.argsort(_view.kl_per_dim)[::-1][:rows].tolist()
    grid = traversal_grid(z0, order, torch.linspace(-r, r, n))
    imgs = to_display(decode(_ckpt.model, grid), _ckpt.model_config.input_shape)
    return imgs, order, _rows_html(imgs, order, _view)


@st.cache_data(max_entries=64, show_spinner=False)
def _interpolation_paths(path: str, mtime: float, a: int, b: int, steps: int, _ckpt) -> tuple[dict, np.ndarray]:
    """({"linear": z (steps, k), "slerp": z (steps, k)} between test examples a and b's means, and their
    decoded images (2, steps, H, W[, 3])), once per model file and endpoints for every session."""
    z0, z1 = _mean_of(_ckpt, a), _mean_of(_ckpt, b)
    t = torch.linspace(0, 1, steps)
    paths = {"linear": lerp(z0, z1, t), "slerp": slerp(z0, z1, t)}
    imgs = to_display(decode(_ckpt.model, torch.stack(list(paths.values()))), _ckpt.model_config.input_shape)
    return {name: zs.numpy() for name, zs in paths.items()}, imgs


def _rows_html(imgs: np.ndarray, order: list[int], view) -> str:
    """The traversal rows as one element: a grid of "z_d · KL" labels beside their image strips, the
    strips inline as PNG. One element instead of a row of columns, a Markdown label and an image per
    dimension: on a loaded 2-core machine those ten rows took ~0.4 s of the page's visit in the browser
    (bench/lab_pages.py), and each image was one more request. The labels are numbers the page makes,
    not user text."""
    cells = []
    for row, d in enumerate(order):
        note = " · <i>collapsed</i>" if view.collapsed[d] else ""
        png = base64.b64encode(png_bytes(_mosaic(imgs[row : row + 1]))).decode("ascii")
        cells.append(
            f'<div class="vae-trav-label" data-dim="{d + 1}"><b>z{d + 1}</b> · KL {view.kl_per_dim[d]:.2f}{note}</div>'
            f'<img class="vae-trav-strip" alt="z{d + 1} from −r to +r" src="data:image/png;base64,{png}">'
        )
    return (
        '<div class="vae-traversal" style="display:grid; grid-template-columns:max-content minmax(0, 1fr);'
        ' gap:0.3rem 0.9rem; align-items:center">'
        + "".join(cells)
        + "</div><style>.vae-traversal img { width: 100%; height: auto; display: block; }</style>"
    )


def _traversal(ckpt, view) -> None:
    st.subheader("Latent traversal")
    st.caption(
        "Each row moves one latent dim from −r to +r while the others stay at the base z; rows are "
        "sorted by the dim's average KL (most informative first). Collapsed dims barely change."
    )
    n_test = view.n_test
    c = st.columns(4)
    base = c[0].radio("Base z", ["z = 0", "mean of a test example"], key=P + "base", horizontal=True)
    idx = c[1].number_input(
        "Test example #", 0, n_test - 1, value=int(view.index[0]), key=P + "base_index", disabled=base == "z = 0"
    )
    r = c[2].slider("Range r", 0.5, 4.0, 3.0, 0.5, key=P + "range")
    n = c[3].slider("Steps", 5, 15, 9, 2, key=P + "steps")
    rows = (
        1
        if view.latent_dim == 1
        else st.slider("Rows (dims, highest KL first)", 1, view.latent_dim, min(view.latent_dim, 10), key=P + "rows")
    )
    imgs, order, html = _traversal_rows(
        ckpt.path,
        os.path.getmtime(ckpt.path),
        None if base == "z = 0" else int(idx),
        float(r),
        int(n),
        int(rows),
        ckpt,
        view,
    )
    st.caption(f"columns: z_d = −{r:g} … +{r:g}")
    st.html(html)
    # The files are made when a button is clicked (a callable: Streamlit runs it then), not on every
    # run: encoding the two GIFs and the PNG was half of this page's script time (~0.07 of 0.15 s).
    c = st.columns(2)
    c[0].download_button(
        "traversal grid (PNG)",
        functools.partial(png_bytes, tile(imgs, pad=1), scale=4),
        "traversal.png",
        "image/png",
        icon=":material/download:",
        on_click="ignore",
        key=P + "dl_grid",
    )
    c[1].download_button(
        "traversal (GIF)",
        functools.partial(_gif, imgs, GIF_COLS),
        "traversal.gif",
        "image/gif",
        icon=":material/download:",
        on_click="ignore",
        key=P + "dl_gif",
        help=f"One frame per column: every row's dim at the same value, {GIF_COLS} rows to a line in the order above",
    )


def _on_map_pick(n_test: int) -> None:
    """A click on the map (callback, before the run): the clicked test example becomes the endpoint
    the radio names, and the radio moves on to the other one."""
    idx = selected_index(P + "map")
    if idx is None or not 0 <= idx < n_test:
        return
    which = st.session_state.get(P + "next", START)
    st.session_state[ENDPOINT_KEYS[which]] = idx
    st.session_state[P + "next"] = END if which == START else START


def _interpolation(ckpt, view) -> None:
    st.subheader("Interpolation between two test examples")
    st.caption(
        "Linear: z(t) = (1−t) z₀ + t z₁. Spherical (slerp): along the great circle, keeping |z| "
        "closer to the norms typical of N(0, I) samples (White 2016)."
    )
    n_test = view.n_test
    defaults = {START: int(view.index[0]), END: int(view.index[min(1, len(view.index) - 1)])}
    for which, key in ENDPOINT_KEYS.items():  # set here, not by value=: a map click sets them too
        if not 0 <= st.session_state.get(key, -1) < n_test:  # first visit, or a model with fewer test examples
            st.session_state[key] = defaults[which]
    c = st.columns(3)
    a = int(c[0].number_input("From test example #", 0, n_test - 1, key=ENDPOINT_KEYS[START]))
    b = int(c[1].number_input("To test example #", 0, n_test - 1, key=ENDPOINT_KEYS[END]))
    steps = c[2].slider("Steps", 3, 15, 9, key=P + "isteps")
    paths, imgs = _interpolation_paths(ckpt.path, os.path.getmtime(ckpt.path), a, b, int(steps), ckpt)
    for row, (name, zs) in enumerate(paths.items()):  # imgs (2, steps, H, W[, 3])
        st.image(
            _mosaic(imgs[row : row + 1]),
            clamp=True,
            width="stretch",
            caption=f"{name}: t = 0 (#{a}) … 1 (#{b}); "
            f"|z| from {float(np.linalg.norm(zs, axis=1).min()):.2f} to {float(np.linalg.norm(zs, axis=1).max()):.2f}",
        )
    st.download_button(
        "interpolation (GIF)",
        functools.partial(_gif, imgs, 2),
        "interpolation.gif",
        "image/gif",
        icon=":material/download:",
        on_click="ignore",
        key=P + "dl_igif",
        help="One frame per t: linear on the left, slerp on the right",
    )
    proj = choose_projection(view, ckpt.path, key=P + "projection")
    # both paths placed in one call (UMAP's kNN transform fits a kernel width per call); a path starts
    # at z0 and ends at z1, so its ends are the endpoints' places
    placed = np.split(proj.transform(np.concatenate(list(paths.values()))), len(paths))
    ends = placed[0][[0, -1]]
    st.radio(
        "Next click on the map sets",
        [START, END],
        key=P + "next",
        horizontal=True,
        help="Click a point on the map to make it the start or the end; the choice then alternates.",
    )
    # The explorer's canvas map, not a plotly figure: drawing ~1,000 points through plotly.js took
    # 0.6-0.9 s of this page's visit on a 2-core machine (bench/lab_pages.py); a click picks a point at once.
    test_points_map(
        proj,
        view,
        ckpt.path,
        key=P + "map",
        meta="vae-traversal-map",
        height=480,
        on_select=functools.partial(_on_map_pick, n_test),
        overlays=(
            [overlay_path(f"{name} path", xy, PATH_COLOURS[name]) for name, xy in zip(paths, placed)],
            [overlay_mark(w, ends[i], *ENDPOINT_MARKS[w], text=w) for i, w in enumerate((START, END))],
        ),
    )
    st.caption(
        f"Both paths drawn on the {proj.name.upper()} map of all {len(view.means):,} map points "
        "(PCA: exact; UMAP: each path point placed by the kNN transform).",
        help=proj.help,
    )


def render() -> None:
    st.title(":material/animation: Traversal & interpolation")
    ckpt = current_checkpoint()
    if ckpt is None:
        return
    view = model_view(ckpt)
    _traversal(ckpt, view)
    st.divider()
    _interpolation(ckpt, view)
