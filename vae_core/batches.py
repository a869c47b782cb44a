"""Training batches: which rows each process takes at each step, as floats on the device, with the
step's random numbers. One process and W torchrun ranks run the same code.

Sharding: an epoch is a seeded permutation of the training rows cut into global batches of
`batch_size` rows (the last one may be shorter); rank r of W takes rows [r*m//W, (r+1)*m//W) of
a global batch of m rows, and weights its mean loss by W * m_r / m, so the gradient that
DistributedDataParallel averages over ranks is the gradient of the global batch's mean loss.

Randomness: every random number of a step (the dynamic-binarization uniforms, the
reparameterization noise) is drawn for the whole global batch from a generator seeded the same on
every rank, and each rank keeps its rows. W ranks therefore train exactly what one process trains
on the same global batch, up to the order of the float sums in the all-reduce.

Storage: pixels stay as stored (uint8 levels for image data, 1 byte instead of 4) and become
float32 in [0, 1] one batch at a time, on the device. Two ways to hold the training rows:
  resident  the whole array on the device (or in pinned host memory when it does not fit there)
  stream    a DataLoader with worker processes gathers each batch from the memory-mapped .npy
            file the dataset was decoded to (image folders), so only a few batches are in memory
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch

from .dataset import unit_float

DATA_MODES = ("auto", "resident", "stream")


def shard(m: int, rank: int, world: int) -> slice:
    """Rows of a global batch of m that rank `rank` of `world` takes (sizes differ by at most 1)."""
    return slice(rank * m // world, (rank + 1) * m // world)


def targets(x: torch.Tensor, binarize: str, uniform: torch.Tensor | None) -> torch.Tensor:
    """What the likelihood scores: grey levels, x > 0.5, or one Bernoulli(x) draw (u < x, u ~ U[0,1))."""
    if binarize == "fixed":
        return (x > 0.5).to(x.dtype)
    if binarize == "dynamic":
        return (uniform < x.clamp(0, 1)).to(x.dtype)
    return x


class StepNoise:
    """The random numbers of a training run, drawn for global batches and sliced to this rank."""

    def __init__(self, seed: int, device: torch.device):
        self.g = torch.Generator(device=device).manual_seed(seed)
        self.device = device

    def permutation(self, n: int) -> torch.Tensor:
        return torch.randperm(n, device=self.device, generator=self.g)

    def uniform(self, m: int, shape: tuple[int, ...], rows: slice) -> torch.Tensor:
        """Rows `rows` of a (m, *shape) U[0, 1) draw."""
        return torch.rand((m, *shape), device=self.device, generator=self.g)[rows]

    def normal(self, samples: int, m: int, k: int, rows: slice) -> torch.Tensor:
        """Columns `rows` of a (samples, m, k) N(0, 1) draw: eps for the reparameterization."""
        return torch.randn((samples, m, k), device=self.device, generator=self.g)[:, rows]


def step_inputs(
    noise: StepNoise, x: torch.Tensor, m: int, rows: slice, binarize: str, n_noise: int, latent_dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets, eps (n_noise, b, k)) for this rank's rows x of a global batch of m rows."""
    u = noise.uniform(m, tuple(x.shape[1:]), rows) if binarize == "dynamic" else None
    return targets(x, binarize, u), noise.normal(n_noise, m, latent_dim, rows)


def available_memory(device: torch.device) -> int:
    """Bytes free for data on `device`: free CUDA memory, or the host's MemAvailable."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def choose_mode(mode: str, nbytes: int, device: torch.device, backing_file: str | None, name: str) -> str:
    """resident or stream. auto streams only a file-backed set larger than half the free memory."""
    if mode not in DATA_MODES:
        raise ValueError(f"--data-mode must be one of {DATA_MODES}, got {mode!r}")
    if mode == "stream" and backing_file is None:
        raise ValueError(
            f"--data-mode stream reads the training rows from a memory-mapped .npy file; "
            f"dataset {name!r} is held in memory (only image folders are decoded to a file)"
        )
    if mode != "auto":
        return mode
    if backing_file is None:
        return "resident"
    budget = available_memory(device) // 2
    if device.type == "cuda":  # host memory is the other limit: the set is read into RAM first
        budget = min(budget, available_memory(torch.device("cpu")) // 2)
    return "resident" if nbytes <= budget else "stream"


class ResidentRows:
    """The training rows held whole: on the device when they fit in half its free memory."""

    def __init__(self, pixels: torch.Tensor, device: torch.device):
        self.device = device
        if device.type == "cuda" and pixels.numel() * pixels.element_size() > available_memory(device) // 2:
            self.x = pixels.pin_memory()
        else:
            self.x = pixels.to(device)

    def batches(self, index_batches: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        for idx in index_batches:
            yield unit_float(self.x[idx.to(self.x.device)].to(self.device, non_blocking=True))


class MappedRows(torch.utils.data.Dataset):
    """Rows [0, stop) of a .npy file, opened lazily in each process (workers never pickle the data)."""

    def __init__(self, path: str, stop: int):
        self.path, self.stop, self._a = path, stop, None

    def __len__(self) -> int:
        return self.stop

    def __getstate__(self):
        return {"path": self.path, "stop": self.stop, "_a": None}

    def __getitems__(self, idx) -> torch.Tensor:
        if self._a is None:
            self._a = np.load(self.path, mmap_mode="r")
        idx = np.asarray(idx, dtype=np.int64)
        order = np.argsort(idx)  # read in file order, hand back in batch order
        out = np.empty((len(idx), *self._a.shape[1:]), self._a.dtype)
        out[order] = self._a[idx[order]]
        return torch.from_numpy(out)


def _as_is(batch):
    return batch


class StreamedRows:
    """The training rows read per batch from their .npy file by DataLoader workers."""

    def __init__(self, path: str, stop: int, device: torch.device, workers: int | None = None):
        self.rows, self.device = MappedRows(path, stop), device
        self.workers = min(4, os.cpu_count() or 1) if workers is None else workers

    def batches(self, index_batches: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        loader = torch.utils.data.DataLoader(
            self.rows,
            batch_sampler=[i.tolist() for i in index_batches],
            collate_fn=_as_is,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
        )
        for xb in loader:
            yield unit_float(xb.to(self.device, non_blocking=True))


def training_rows(pixels: torch.Tensor, backing_file: str | None, device: torch.device, mode: str, name: str):
    """The rows fit() draws its batches from, held as `mode` (auto|resident|stream) asks."""
    kind = choose_mode(mode, pixels.numel() * pixels.element_size(), device, backing_file, name)
    return ResidentRows(pixels, device) if kind == "resident" else StreamedRows(backing_file, len(pixels), device)
