"""Compare two models side by side (issue 12 item 13): the open model A and a model B from the checkpoint
folder, trained on the same data and test split. Their maps, B's aligned to A's (vae_core.compare_models),
the same test point in both with its ELBO terms, the same z decoded by both, and their stored test metrics."""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np
import pandas as pd
import streamlit as st
import torch

from app.common import (
    checkpoint_label,
    checkpoint_listing,
    checkpoint_metadata,
    current_checkpoint,
    dataset_for,
    explorer_link,
    load_model,
    one_thread,
    open_checkpoint,
    test_targets,
)
from app.components.latent_map import (
    classes_for,
    equal_aspect,
    file_scope,
    latent_map,
    points_only,
    points_payload,
    selected_index,
)
from app.safe import plain
from app.views.breakdown import K_DEFAULT, K_HELP, show_image
from app.views.explorer_z import P as EXPLORER
from app.views.latent_data import ModelView, model_view
from app.views.latent_map import MapProjection, current_projection
from app.views.map_extras import hover_thumbs
from vae_core.cache import list_checkpoints
from vae_core.checkpoints import Checkpoint, CheckpointError
from vae_core.compare_models import (
    METRIC_ROWS,
    MapAlignment,
    align_maps,
    compatible,
    shared_rows,
    stored_metrics,
    target_note,
)
from vae_core.lab.sweeps import lab_cache_dir
from vae_core.latent import ELBOBreakdown, decode, elbo_breakdown, prior_sample

P = "compare_"
Z_MU_A, Z_ZERO, Z_PRIOR, Z_EXPLORER = "μ of the selected point under A", "z = 0", "a prior sample", "the explorer's z"


def _signature(folder: str) -> tuple:
    try:
        return tuple(
            sorted((e.name, e.stat().st_mtime_ns) for e in os.scandir(folder) if e.name.endswith(".safetensors"))
        )
    except OSError:  # no lab folder
        return ()


@st.cache_data(max_entries=4, show_spinner=False)
def _lab_rows(folder: str, signature: tuple) -> list[dict]:
    return list_checkpoints(folder) if signature else []


def _rows() -> list[dict]:
    """Readable checkpoints: the sidebar's listing, then the lab's models (checkpoints/lab)."""
    rows, _ = checkpoint_listing()
    lab = lab_cache_dir()
    return [r for r in rows + _lab_rows(lab, _signature(lab)) if "error" not in r]


def _label(row: dict, dataset_a: str | None = None) -> str:
    """A picker row, short enough for a projector's 1024 px: the file (lab/ for the lab's models), its
    latent dim, objective and β, test ELBO; the dataset only when it is not A's (the sidebar's label
    says everything, checkpoint_label)."""
    if dataset_a is None:
        return checkpoint_label(row)
    mc, tc = row["model_config"], row["train_config"]
    where = "lab/" if os.path.dirname(row["path"]) == lab_cache_dir() else ""
    elbo = row.get("test_elbo")
    return " · ".join(
        [where + os.path.basename(row["path"])[:-12], f"z={mc['latent_dim']}", f"{tc['objective']} β={tc['beta']:g}"]
        + ([str(tc["dataset"])] if tc["dataset"] != dataset_a else [])
        + [f"ELBO {elbo:.1f}" if elbo is not None else "no ELBO"]
    )


def _first_that_opens(paths: list[str], tries: int = 5) -> str | None:
    """The default B: the first of paths whose weights load and whose dataset is available (a listed
    file can still fail: NaN weights, data on a folder the server does not allow), quietly."""
    from vae_core.data import DatasetError

    for path in paths[:tries]:
        try:
            dataset_for(load_model(path, os.path.getmtime(path)))
            return path
        except (CheckpointError, DatasetError, OSError):
            continue
    return None


@st.cache_resource(max_entries=256, show_spinner=False)
def _point(path: str, mtime: float, test_index: int, k: int, _model, _x: torch.Tensor) -> ELBOBreakdown:
    """One test point's ELBO terms (seeded: the same numbers on every rerun and in every session)."""
    with one_thread():
        return elbo_breakdown(_model, _x, k=k)


def _point_numbers(ckpt: Checkpoint, test_index: int, k: int = K_DEFAULT) -> ELBOBreakdown:
    x = test_targets(ckpt)[test_index]
    return _point(ckpt.path, os.path.getmtime(ckpt.path), test_index, k, ckpt.model, x)


def _projection(view: ModelView, path: str, which: str, umap: bool) -> MapProjection:
    """A model's map: the latent plane for k <= 2, else its PCA, or its cached UMAP when asked for."""
    key = f"{P}proj_{which}"
    st.session_state[key] = "UMAP" if umap else "PCA"  # current_projection falls back to PCA when not cached
    return current_projection(view, path, key)


def _maps(ckpt_a, view_a, ckpt_b, view_b, umap: bool) -> tuple[list, MapAlignment, MapProjection] | None:
    """Both maps restricted to their shared test points, B's aligned to A's: [(proj, view)] for A and B,
    the alignment and B's own projection (for its name). None, with a message, when too few are shared."""
    rows_a, rows_b = shared_rows(view_a.index, view_b.index)
    if len(rows_a) < 3:
        st.error("The two maps share fewer than 3 test points: they cannot be aligned.")
        return None
    proj_a = _projection(view_a, ckpt_a.path, "a", umap)
    proj_b = _projection(view_b, ckpt_b.path, "b", umap)
    al = align_maps(proj_a.xy[rows_a], proj_b.xy[rows_b])
    pair_a = (
        dataclasses.replace(proj_a, xy=proj_a.xy[rows_a]),
        dataclasses.replace(
            view_a, index=view_a.index[rows_a], labels=view_a.labels[rows_a], means=view_a.means[rows_a]
        ),
    )
    pair_b = (
        dataclasses.replace(proj_b, xy=al.aligned, axes=(f"{proj_b.axes[0]}, aligned", f"{proj_b.axes[1]}, aligned")),
        dataclasses.replace(
            view_b, index=view_b.index[rows_b], labels=view_b.labels[rows_b], means=view_b.means[rows_b]
        ),
    )
    return [pair_a, pair_b], al, proj_b


def _on_map(which: str) -> None:
    """A click on a map point selects its test example."""
    n = selected_index(f"{P}map_{which}")
    if n is not None:
        st.session_state[P + "index"] = n


@st.cache_resource(max_entries=16, show_spinner=False)
def _points(key: tuple, _proj: MapProjection, _view: ModelView) -> dict:
    """One map's point set (latent_map.points_payload), encoded once per (A, B, their file times,
    projections, which) for every session; each session sends it to its browser once."""
    return points_payload(_proj.xy, _view.labels, _view.index, _view.means)


def _show_map(
    name: str, which: str, path: str, proj: MapProjection, view: ModelView, test_index: int, box, key: tuple
) -> None:
    """One map of the model at `path`, clickable, with the test point ringed; box: (x range, y range)
    shared by both maps, so aligned points sit in the same place on screen. key: what the map is a
    function of (`_points`). The explorer's canvas map (app.components.latent_map): no plotly figure
    to theme and draw twice per visit in the browser (~0.5 s a map on a 2-core machine); hovering
    shows the test image."""
    st.markdown(f"**{name}**")
    latent_map(
        _points((*key, which), proj, view),
        len(view.means),
        points_only(equal_aspect(proj.basis)),  # B is aligned onto A: neither map places a z
        classes_for(view.labels),
        proj.axes,
        key=f"{P}map_{which}",
        meta=f"vae-compare-{which}",
        selected=test_index,
        height=400,
        on_select=functools.partial(_on_map, which),
        thumbs=functools.partial(hover_thumbs, path),
        thumbs_scope=file_scope(path),
        view=box,
    )


def _box(*xys: np.ndarray) -> tuple[list, list]:
    """Axis ranges covering every map point, with a 5 % margin."""
    xy = np.concatenate(xys)
    lo, hi = xy.min(0), xy.max(0)
    pad = 0.05 * np.maximum(hi - lo, 1e-9)
    return [float(lo[0] - pad[0]), float(hi[0] + pad[0])], [float(lo[1] - pad[1]), float(hi[1] + pad[1])]


def _point_panel(column, name: str, ckpt: Checkpoint, b: ELBOBreakdown, test_index: int) -> None:
    with column:
        st.markdown(f"**{name}** · test #{test_index}")
        c1, c2 = st.columns(2)
        with c1:
            show_image(test_targets(ckpt)[test_index], ckpt, "input x", 120)
        with c2:
            show_image(b.reconstruction, ckpt, "E[x | z = μ]", 120)
        m = st.columns(2)
        m[0].metric("ELBO", f"{b.elbo:.2f}")
        m[1].metric(f"log p(x) (K = {b.k})", f"{b.log_px:.2f}", help=K_HELP)
        m = st.columns(2)
        m[0].metric("recon E_q log p(x|z)", f"{b.recon:.2f}")
        m[1].metric("KL(q(z|x) ‖ p(z))", f"{b.kl:.2f}")


def _same_z(ckpt_a: Checkpoint, ckpt_b: Checkpoint, b_a: ELBOBreakdown, b_b: ELBOBreakdown, test_index: int) -> None:
    st.subheader("The same z decoded by both")
    ka, kb = ckpt_a.model_config.latent_dim, ckpt_b.model_config.latent_dim
    if ka != kb:
        st.info(
            f"A has {ka} latent dims and B has {kb}: the same z cannot be fed to both decoders. Shown instead: "
            f"each model's own μ of test #{test_index}, decoded by its own decoder.",
            icon=":material/info:",
        )
        cols = st.columns(2)
        for col, name, ckpt, b in ((cols[0], "A", ckpt_a, b_a), (cols[1], "B", ckpt_b, b_b)):
            with col:
                show_image(b.reconstruction, ckpt, f"{name}'s decoder at {name}'s μ(x), |μ| = {float(b.mu.norm()):.2f}")
        return
    options = [Z_MU_A, Z_ZERO, Z_PRIOR]
    explorer_z = st.session_state.get(EXPLORER + "z")
    if st.session_state.get(EXPLORER + "model") == ckpt_a.path and explorer_z is not None and len(explorer_z.z) == ka:
        options.append(Z_EXPLORER)
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    choice = c1.radio("z", options, key=P + "z_from", horizontal=True)
    if c2.button("New prior sample", key=P + "draw", icon=":material/casino:", disabled=choice != Z_PRIOR):
        st.session_state[P + "draws"] = st.session_state.get(P + "draws", 0) + 1
    if choice == Z_ZERO:
        z = torch.zeros(ka)
    elif choice == Z_PRIOR:
        z = prior_sample(ka, torch.Generator().manual_seed(st.session_state.get(P + "draws", 0)))
    elif choice == Z_EXPLORER:
        z = torch.tensor(explorer_z.z, dtype=torch.float32)
    else:
        z = b_a.mu
    shown = ", ".join(f"{v:.2f}" for v in z[:6].tolist()) + (", …" if ka > 6 else "")
    st.caption(
        f"z = ({shown}), |z| = {float(z.norm()):.2f}: {choice}" + (f" (test #{test_index})" if choice == Z_MU_A else "")
    )
    with one_thread():
        imgs = [decode(ckpt_a.model, z[None])[0], decode(ckpt_b.model, z[None])[0]]
    cols = st.columns(2)
    for col, name, ckpt, img in ((cols[0], "A", ckpt_a, imgs[0]), (cols[1], "B", ckpt_b, imgs[1])):
        with col:
            show_image(img, ckpt, f"decoded by {name}: E[x | z]")


def _metrics_table(meta_a: dict, meta_b: dict) -> None:
    st.subheader("Test-set metrics (stored in each checkpoint)")

    def cell(m: dict, row: str, k: int) -> str:
        v = m[row]
        if v is None:
            return "not recorded"
        if row == "active units":
            return f"{v} / {k}"
        return f"{v:.2f}" + (f" (K = {m['K']})" if row == "log p(x)" and m["K"] else "")

    cols = {}
    for name, meta in (("A", meta_a), ("B", meta_b)):
        m, k = stored_metrics(meta), meta["model_config"]["latent_dim"]
        cols[name] = [plain(cell(m, row, k)) for row in METRIC_ROWS]
    st.table(pd.DataFrame(cols, index=[plain(r) for r in METRIC_ROWS]), border="horizontal")
    st.caption("Nats per test example; ELBO = recon − KL; log p(x) importance-sampled with K samples.")


def render() -> None:
    st.title(":material/compare: Compare two models")
    ckpt_a = current_checkpoint()
    if ckpt_a is None:
        return
    explorer_link("Back to the explorer")
    every = _rows()
    rows = [r for r in every if r["path"] != ckpt_a.path]
    meta_a = checkpoint_metadata(ckpt_a.path)
    if not rows or meta_a is None:
        st.info("No other model in the checkpoint folder to compare with: train one on the Train page.")
        return
    labels = {r["path"]: _label(r, meta_a["train_config"]["dataset"]) for r in rows}
    paths = list(labels)
    # listing rows carry the header's fields; the default B: a comparable model, one with A's objective and β first
    fits = sorted(
        (r for r in rows if compatible(meta_a, r) is None),
        key=lambda r: (
            r["train_config"]["objective"] != meta_a["train_config"]["objective"],
            r["train_config"]["beta"] != meta_a["train_config"]["beta"],
        ),
    )
    fits = [r["path"] for r in fits]
    if st.session_state.get(P + "model_b") not in paths:
        st.session_state[P + "model_b"] = _first_that_opens(fits) or paths[0]
    row_a = next((r for r in every if r["path"] == ckpt_a.path), None)
    if row_a is not None:
        st.caption(f"Model A, the open model (sidebar): {plain(_label(row_a))}")
    top = st.columns([4, 1])
    path_b = top[0].selectbox(
        "Model B",
        paths,
        format_func=labels.get,
        key=P + "model_b",
        help="Any model in the checkpoint folder or its lab/ subfolder; only models trained on the same "
        "dataset and test split as A can be compared point by point.",
    )
    meta_b = checkpoint_metadata(path_b)
    if meta_b is None:
        return
    reason = compatible(meta_a, meta_b)
    if reason is not None:
        st.error(plain(reason), icon=":material/block:")
        return
    note = target_note(meta_a, meta_b)
    if note:
        st.warning(plain(note), icon=":material/warning:")
    ckpt_b = open_checkpoint(path_b)
    if ckpt_b is None:
        return
    view_a, view_b = model_view(ckpt_a), model_view(ckpt_b)
    n_test = view_a.n_test
    if P + "index" not in st.session_state:  # start on the explorer's selected point, if any
        sel = st.session_state.get(EXPLORER + "selected")
        st.session_state[P + "index"] = int(sel) if isinstance(sel, int) and 0 <= sel < n_test else int(view_a.index[0])
    st.session_state[P + "index"] = min(max(int(st.session_state[P + "index"]), 0), n_test - 1)
    test_index = int(
        top[1].number_input(
            "Test example #",
            0,
            n_test - 1,
            key=P + "index",
            help="The same test image in both models; or click a point on either map.",
        )
    )
    maps_slot = st.container()  # filled once the toggle below is read
    umap = st.toggle(
        "UMAP maps (when both models have one cached)",
        key=P + "umap",
        help="PCA by default: each model's own PCA of its test-set means. Models with k ≤ 2 show their latent plane.",
    )
    maps = _maps(ckpt_a, view_a, ckpt_b, view_b, umap)
    if maps is not None:
        pairs, al, proj_b = maps
        box = _box(pairs[0][0].xy, pairs[1][0].xy)
        cols = maps_slot.columns(2)
        key = tuple((c.path, os.path.getmtime(c.path)) for c in (ckpt_a, ckpt_b)) + (pairs[0][0].name, proj_b.name)
        with cols[0]:
            _show_map("A (open model)", "a", ckpt_a.path, *pairs[0], test_index, box, key)
        with cols[1]:
            _show_map("B, aligned to A", "b", ckpt_b.path, *pairs[1], test_index, box, key)
        st.caption(
            f"Alignment residual {al.residual:.3f} ({al.relative:.1%} of the spread of A's map): B's "
            f"{proj_b.name.upper()} map rotated, reflected, scaled (×{al.scale:.2g}) and shifted onto A's "
            f"{pairs[0][0].name.upper()} map by similarity Procrustes on the {len(pairs[0][1].index):,} test "
            "points both maps show (RMS distance per point, in A's map units; 0 % = the same layout, 100 % = "
            "nothing in common). Latent dims may differ: the 2-D maps are aligned, not the latents."
        )
    b_a, b_b = _point_numbers(ckpt_a, test_index), _point_numbers(ckpt_b, test_index)
    st.subheader(f"Test example #{test_index} in both")
    st.caption(f"Nats for this one example; recon and log p(x) from the same K = {K_DEFAULT} draws z ~ q(z|x).")
    cols = st.columns(2)
    _point_panel(cols[0], "A", ckpt_a, b_a, test_index)
    _point_panel(cols[1], "B", ckpt_b, b_b, test_index)
    _same_z(ckpt_a, ckpt_b, b_a, b_b, test_index)
    _metrics_table(meta_a, meta_b)
