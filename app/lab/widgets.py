"""Widgets the lab pages share: a test-example picker, a progress bar drawn only while work runs,
opening (or training after a click) a family of lab runs, image mosaics. The lab's charts are in app/lab/charts.py.

Models load through app.common.load_model, so they are cached per (path, mtime) and shared read-only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from app.common import load_model, test_targets
from app.safe import plain
from vae_core.checkpoints import Checkpoint, CheckpointError, read_metadata
from vae_core.data import target_description
from vae_core.dataset import Dataset
from vae_core.images import tile, to_display, upscale
from vae_core.lab.sweeps import LabRun, is_cached, lab_cache_dir, run_path, train_runs
from vae_core.train import TrainingDivergedError


def example_picker(ckpt: Checkpoint, prefix: str) -> tuple[int, torch.Tensor]:
    """Test-index picker that shows the chosen target; returns (index, x of shape (1, *input_shape))."""
    x_test = test_targets(ckpt)
    idx = int(
        st.number_input(
            "Test example", 0, len(x_test) - 1, 0, key=f"{prefix}index", help="Index into the model's test set"
        )
    )
    x = x_test[idx : idx + 1]
    shape = tuple(x.shape[1:])
    if len(shape) == 3 and shape[0] in (1, 3):
        img = x[0].permute(1, 2, 0).squeeze(-1).numpy()
        st.image(img, width=140, clamp=True, caption=f"x = test[{idx}]")
    else:
        st.line_chart(x[0].flatten().numpy(), height=140)
    st.caption(target_description(ckpt.model_config.likelihood, ckpt.train_config.binarize))
    return idx, x


def lazy_progress(where, text: str):
    """(slot, callback): callback(f) draws a progress bar at fraction f in `where`, the first time it
    is called, so a result read from a cache shows no bar at all. slot.empty() removes it."""
    slot = where.empty()
    return slot, lambda f: slot.progress(min(1.0, max(0.0, f)), text=text)


def open_runs(runs: list[LabRun], data: Dataset, key: str) -> list[LabModel] | None:
    """The checkpoints of `runs`, training the missing ones after a click (sequentially, with st.progress).

    Returns None (after showing why) until every run is available.
    """
    missing = [r for r in runs if not is_cached(r, data)]
    if missing:
        epochs = missing[0].train.epochs
        st.info(
            f"{len(missing)} of {len(runs)} models for this view are not in the cache yet "
            f"({', '.join(r.name for r in missing)}; {epochs} epochs each, in "
            f"`{lab_cache_dir()}`). The shipped default model's sweeps are committed; sweeps derived "
            f"from another model train once, then open instantly."
        )
        if not st.button(f"Train {len(missing)} model(s) now", key=f"{key}_train", type="primary"):
            return None
        bar = st.progress(0.0, text="Starting…")
        try:
            train_runs(missing, data, progress=lambda f, msg: bar.progress(min(max(f, 0.0), 1.0), text=msg))
        except TrainingDivergedError as e:
            st.error(str(e))
            return None
        except (ValueError, RuntimeError) as e:
            st.error(f"Training failed: {e}")
            return None
        st.rerun()  # redraw without the train button, now that every run is cached
    out = []
    for r in runs:
        p = run_path(r, data)
        try:
            meta = header(p, os.path.getmtime(p))
        except (CheckpointError, OSError) as e:
            st.error(f"Cannot open the lab checkpoint for {r.name}: {plain(e)}")
            return None
        out.append(LabModel(r.name, p, meta.get("history") or []))
    return out


@st.cache_data(max_entries=64, show_spinner=False)
def header(path: str, mtime: float) -> dict:
    """A checkpoint's checked header (configs, history, metrics), read without torch."""
    return read_metadata(path)


@dataclass(frozen=True)
class LabModel:
    """A lab run's checkpoint: its header is read at once, its weights only when a report is computed
    (a stored report needs none), through the shared read-only model cache."""

    name: str
    path: str
    history: list  # one dict per epoch, from the header

    @property
    def model(self):
        return load_model(self.path, os.path.getmtime(self.path)).model


def image_grid(rows: list, input_shape, size: int = 56) -> np.ndarray:
    """List of R arrays or tensors (n, *input_shape) -> an R x n mosaic."""
    imgs = np.stack([np.stack([upscale(a, size) for a in to_display(r, input_shape)]) for r in rows])
    return tile(imgs, pad=2)


def base_caption(ckpt: Checkpoint, runs: list[LabRun]) -> str:
    tc = runs[0].train
    return (
        f"Runs derived from the open model {plain(os.path.basename(ckpt.path or ''))}: same architecture "
        f"({ckpt.model_config.arch}, hidden {list(ckpt.model_config.hidden)}, z={ckpt.model_config.latent_dim}, "
        f"{ckpt.model_config.likelihood}), data {plain(tc.dataset)}, seed {tc.seed}, {tc.epochs} epochs each."
    )


def dim_names(k: int) -> list[str]:
    """z1 .. zk: latent dims numbered from 1, as the explorer's sliders are."""
    return [f"z{d + 1}" for d in range(k)]
