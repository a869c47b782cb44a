"""Pick the device: `auto` (cuda, then mps, then cpu), or cpu / cuda / cuda:N / mps when usable."""

from __future__ import annotations

import re

import torch


def available_devices() -> list[str]:
    """The names pick_device accepts on this machine."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


def pick_device(requested: str | torch.device = "auto") -> torch.device:
    """A torch.device, or ValueError naming the request and what this machine has."""
    if isinstance(requested, torch.device):
        requested = str(requested)
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    usable = available_devices()
    if not isinstance(requested, str) or not re.fullmatch(r"cpu|mps|cuda(:\d{1,3})?", requested):
        raise ValueError(f"unknown device {requested!r}: use one of {', '.join(usable)}")
    if requested not in usable:
        why = (
            "CUDA is not available"
            if requested.startswith("cuda") and not torch.cuda.is_available()
            else "MPS is not available"
            if requested == "mps"
            else "there is no such GPU"
        )
        raise ValueError(f"device {requested!r} requested but {why}; available here: {', '.join(usable)}")
    return torch.device(requested)
