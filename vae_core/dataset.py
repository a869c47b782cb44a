"""The Dataset type every source becomes (vae_core.data's registry, vae_core.image_folder): stored
pixels (N, C, H, W) uint8 or float32, or (N, D), labels, and a fingerprint of the arrays that ties
a checkpoint to its data. Torch and numpy only: every loader imports this, it imports no loader.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Dataset:
    name: str
    train_pixels: torch.Tensor  # as stored: uint8 levels 0..255 (image sources) or float32;
    test_pixels: torch.Tensor  # (N, C, H, W) or (N, D)
    y_train: torch.Tensor | None  # int64 (N,) or None
    y_test: torch.Tensor | None
    fingerprint: str  # sha256 of the (float) arrays and split: ties a checkpoint to its data
    pixels_file: str | None = None  # .npy whose first len(train_pixels) rows are train_pixels (streaming)

    # float32 in [0, 1] for uint8 sources, made on first use: training converts per batch instead
    # (vae_core.batches), so a large image set is never held as floats
    @functools.cached_property
    def x_train(self) -> torch.Tensor:
        return unit_float(self.train_pixels)

    @functools.cached_property
    def x_test(self) -> torch.Tensor:
        return unit_float(self.test_pixels)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_pixels.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.train_pixels.dim() == 4

    @property
    def value_range(self) -> tuple[float, float]:
        if self.train_pixels.dtype == torch.uint8 and self.test_pixels.dtype == torch.uint8:
            return 0.0, 1.0  # levels / 255: no float copy of a large image set just to look
        lo = min(float(self.x_train.min()), float(self.x_test.min()))
        hi = max(float(self.x_train.max()), float(self.x_test.max()))
        return lo, hi

    @property
    def in_unit_interval(self) -> bool:
        lo, hi = self.value_range
        return lo >= 0.0 and hi <= 1.0


def unit_float(x: torch.Tensor) -> torch.Tensor:
    """Stored pixels -> float32: uint8 levels / 255 (bit-identical to numpy's float32 x / 255.0,
    which is how datasets used to be stored: fingerprints and results are unchanged)."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def data_fingerprint(name: str, *arrays) -> str:
    """sha256 of the name and arrays; uint8 images are hashed as their float32 x / 255, in chunks,
    so the fingerprint (and every cache key) is what it was when datasets were stored as floats."""
    h = hashlib.sha256(name.encode())
    for a in arrays:
        if a is None:
            h.update(b"none")
        elif a.dtype == np.uint8:
            h.update(str(a.shape).encode() + b"float32")
            rows = max(1, (64 << 20) // max(1, a[:1].nbytes * 4))
            for i in range(0, len(a), rows):
                h.update((np.ascontiguousarray(a[i : i + rows]).astype(np.float32) / 255.0).tobytes())
        else:
            a = np.ascontiguousarray(a)
            h.update(str(a.shape).encode() + str(a.dtype).encode())
            h.update(a.tobytes())
    return h.hexdigest()[:16]
