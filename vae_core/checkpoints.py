"""Checkpoint I/O, the one module that touches weight files.

Format: one safetensors file (no code runs on load). Its string metadata holds the JSON of the
model config, train config, dataset info, training history and final metrics. Writes go to a
temp file in the same folder, then os.replace, so a reader never sees half a file.
read_metadata needs no torch (the app lists checkpoints and draws its first page without it);
torch is imported by save_checkpoint / load_checkpoint.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import ModelConfig, TrainConfig

if TYPE_CHECKING:
    import torch

    from .model import VAE

FORMAT = "vae_core/1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, foreign or does not match its architecture."""


@dataclass
class Checkpoint:
    model: VAE
    model_config: ModelConfig
    train_config: TrainConfig
    history: list = field(default_factory=list)  # one dict per epoch
    dataset: dict = field(default_factory=dict)   # name, fingerprint, sizes
    metrics: dict = field(default_factory=dict)   # final test numbers
    path: str | None = None


def save_checkpoint(path: str, model: VAE, train_config: TrainConfig, *, history=None,
                    dataset=None, metrics=None) -> str:
    from safetensors.torch import save_file
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "model_config": json.dumps(model.cfg.to_dict()),
        "train_config": json.dumps(train_config.to_dict()),
        "history": json.dumps(history or []),
        "dataset": json.dumps(dataset or {}),
        "metrics": json.dumps(metrics or {}),
    }
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".safetensors")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is shared with other users/processes
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_metadata(path: str) -> dict:
    """Parse only the header: configs, history and metrics, without loading weights."""
    from safetensors import safe_open
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as fh:
        head = fh.read(9)
    # torch.save writes a zip (PK..) or, in the legacy format, a pickle (0x80 protocol byte). A
    # safetensors file starts with an 8-byte header length (its first byte can be 0x80) then '{'.
    if (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80") and head[8:9] != b"{":
        raise CheckpointError(f"{path}: this is a PyTorch pickle (torch.save / .pt), not a safetensors "
                              f"checkpoint; pickles can run code on load, so they are never opened")
    try:
        with safe_open(path, framework="numpy") as f:  # header only; "pt" would import torch
            meta = f.metadata() or {}
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint (corrupt or truncated: "
                              f"{type(e).__name__}: {e})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a vae_core checkpoint (format tag {meta.get('format')!r}, "
                              f"expected {FORMAT!r})")
    try:
        return {k: json.loads(meta[k]) for k in
                ("model_config", "train_config", "history", "dataset", "metrics")}
    except (KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: checkpoint metadata is incomplete or corrupt ({e})") from None


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model from its stored config and load the weights (strict)."""
    from safetensors.torch import load_file

    from .model import VAE
    meta = read_metadata(path)
    try:
        mcfg = ModelConfig.from_dict(meta["model_config"])
        tcfg = TrainConfig.from_dict(meta["train_config"])
    except (ValueError, TypeError) as e:  # ConfigError, or e.g. int('abc') in a shape
        raise CheckpointError(f"{path}: stored config is invalid ({e})") from None
    try:
        state = load_file(path)  # safetensors holds CPU tensors; the model moves below
    except Exception as e:
        raise CheckpointError(f"{path}: cannot read weights (corrupt or truncated: {e})") from None
    model = VAE(mcfg)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(f"{path}: weights do not match the stored architecture "
                              f"({' '.join(first[:3])[:400]})") from None
    try:
        model.to(map_location).eval()
    except (RuntimeError, AssertionError) as e:  # e.g. map_location='cuda' on a CPU-only machine
        raise CheckpointError(f"{path}: loaded, but cannot move the model to {map_location!r} ({e})") from None
    return Checkpoint(model, mcfg, tcfg, meta["history"], meta["dataset"], meta["metrics"], path)
