"""Checkpoint I/O, the one module that touches weight files.

Format: one safetensors file (no code runs on load). Its string metadata holds the JSON of the
model config, train config, dataset info, training history and final metrics; vae_core.header
checks their structure and types. Writes go through fsutil.atomic_write, so a reader never sees
half a file and a full disk leaves the old file in place. A load checks sizes before building
the model and refuses NaN/inf weights: every failure is a CheckpointError naming the file.
read_metadata needs no torch (the app lists checkpoints and draws its first page without it);
torch is imported by save_checkpoint / load_checkpoint.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import ModelConfig, TrainConfig
from .fsutil import atomic_write_bytes
from .header import HeaderError, parse_header

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
    dataset: dict = field(default_factory=dict)  # name, fingerprint, sizes
    metrics: dict = field(default_factory=dict)  # final test numbers
    path: str | None = None


def save_checkpoint(
    path: str, model: VAE, train_config: TrainConfig, *, history=None, dataset=None, metrics=None
) -> str:
    """Write atomically; raises fsutil.StorageError naming `path` (disk full, read-only, ...).

    The file is serialized in memory and written by fsutil: safetensors' save_file would write its
    own `.tmpXXXX` beside it, a leftover no sweep knows about when the process is killed."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "model_config": json.dumps(model.cfg.to_dict()),
        "train_config": json.dumps(train_config.to_dict()),
        "history": json.dumps(history or []),
        "dataset": json.dumps(dataset or {}),
        "metrics": json.dumps(metrics or {}),
    }
    return atomic_write_bytes(path, save(tensors, metadata=meta))


def read_metadata(path: str) -> dict:
    """Only the header, checked (see vae_core.header): model_config, train_config, history, dataset,
    metrics. Loads no weights and no torch."""
    from safetensors import safe_open

    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror or e})") from None
    # torch.save writes a zip (PK..) or, in the legacy format, a pickle (0x80 protocol byte). A
    # safetensors file starts with an 8-byte header length (its first byte can be 0x80) then '{'.
    if (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80") and head[8:9] != b"{":
        raise CheckpointError(
            f"{path}: this is a PyTorch pickle (torch.save / .pt), not a safetensors "
            f"checkpoint; pickles can run code on load, so they are never opened"
        )
    try:
        with safe_open(path, framework="numpy") as f:  # header only; "pt" would import torch
            meta = f.metadata() or {}
    except Exception as e:
        raise CheckpointError(
            f"{path}: not a readable safetensors checkpoint (corrupt or truncated: {type(e).__name__}: {e})"
        ) from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a vae_core checkpoint (format tag {meta.get('format')!r}, expected {FORMAT!r})"
        )
    try:
        return parse_header(meta)
    except HeaderError as e:
        raise CheckpointError(f"{path}: header field {e.field} {e.problem}") from None


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model from its stored config and load the weights (strict, all finite)."""
    import torch
    from safetensors.torch import load_file

    from .model import VAE

    meta = read_metadata(path)  # configs checked, sizes bounded: building the model below is safe
    mcfg = ModelConfig.from_dict(meta["model_config"])
    tcfg = TrainConfig.from_dict(meta["train_config"])
    try:
        state = load_file(path)  # safetensors holds CPU tensors; the model moves below
    except Exception as e:
        raise CheckpointError(f"{path}: cannot read weights (corrupt or truncated: {e})") from None
    try:
        model = VAE(mcfg)
    except Exception as e:  # e.g. out of memory
        raise CheckpointError(f"{path}: cannot build the stored model ({type(e).__name__}: {e})") from None
    try:
        model.load_state_dict(state, strict=True)
    except Exception as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(
            f"{path}: weights do not match the stored architecture ({' '.join(first[:3])[:400]})"
        ) from None
    for name, t in state.items():  # a NaN model breaks every plot (PCA) and prints NaN metrics
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{path}: weights contain NaN or inf values (tensor {name})")
    try:
        model.to(map_location).eval()
    except Exception as e:  # e.g. map_location='cuda' on a CPU-only machine
        raise CheckpointError(f"{path}: loaded, but cannot move the model to {map_location!r} ({e})") from None
    return Checkpoint(model, mcfg, tcfg, meta["history"], meta["dataset"], meta["metrics"], path)
