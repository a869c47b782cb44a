"""Shared UI for lab pages 4-6: open (or train, with a progress bar) a family of lab runs, show images.

Models load through app.common.load_model, so they are cached per (path, mtime) and shared read-only.
"""
from __future__ import annotations

import os

import numpy as np
import streamlit as st
import torch

from app.common import load_model
from app.safe import plain
from vae_core.checkpoints import Checkpoint, CheckpointError
from vae_core.dataset import Dataset
from vae_core.images import tile, to_display, upscale
from vae_core.lab.sweeps import LabRun, is_cached, lab_cache_dir, run_path, train_runs
from vae_core.train import TrainingDivergedError


def open_runs(runs: list[LabRun], data: Dataset, key: str) -> list[Checkpoint] | None:
    """Checkpoints of `runs`, training the missing ones after a click (sequentially, with st.progress).

    Returns None (after showing why) until every run is available.
    """
    missing = [r for r in runs if not is_cached(r, data)]
    if missing:
        epochs = missing[0].train.epochs
        st.info(f"{len(missing)} of {len(runs)} models for this view are not in the cache yet "
                f"({', '.join(r.name for r in missing)}; {epochs} epochs each, in "
                f"`{lab_cache_dir()}`). The shipped default model's sweeps are committed; sweeps derived "
                f"from another model train once, then open instantly.")
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
            out.append(load_model(p, os.path.getmtime(p)))
        except (CheckpointError, OSError) as e:
            st.error(f"Cannot open the lab checkpoint for {r.name}: {plain(e)}")
            return None
    return out


def image_grid(rows: list[torch.Tensor], input_shape, size: int = 56) -> np.ndarray:
    """List of R tensors (n, *input_shape) -> an R x n mosaic."""
    imgs = np.stack([np.stack([upscale(a, size) for a in to_display(r, input_shape)]) for r in rows])
    return tile(imgs, pad=2)


def base_caption(ckpt: Checkpoint, runs: list[LabRun]) -> str:
    tc = runs[0].train
    return (f"Runs derived from the open model {plain(os.path.basename(ckpt.path or ''))}: same architecture "
            f"({ckpt.model_config.arch}, hidden {list(ckpt.model_config.hidden)}, z={ckpt.model_config.latent_dim}, "
            f"{ckpt.model_config.likelihood}), data {plain(tc.dataset)}, seed {tc.seed}, {tc.epochs} epochs each.")
