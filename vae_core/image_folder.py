"""Image folders (one sub-folder per class) decoded once, by parallel threads, to a uint8 array cached
beside the folder; later loads memory-map it.

Cache files sit in the folder's parent, named after it:
    .<folder>.vae_core-<key>.npy    images (N, C, H, W) uint8, the train split's rows first
    .<folder>.vae_core-<key>.json   n_train, labels, the dataset fingerprint
The key hashes the listing (relative path, size and mtime of every image), the test fraction and
the dataset name: adding, removing, replacing or touching an image gives a new key (older cache
files are then removed). Both files go through fsutil.atomic_write, under fsutil.file_lock, so
two processes (torchrun ranks) decode once and no reader sees half a file. When the parent folder
cannot be written, the images are decoded into memory on every load instead.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .data_access import DatasetError, check_path_allowed
from .dataset import Dataset, data_fingerprint
from .fsutil import atomic_write, atomic_write_bytes, file_lock
from .images import ImageError, describe_image, image_array, open_image_file

FORMAT = 1


def _listing(path: str, name: str) -> tuple[list[str], np.ndarray]:
    """Image files (sorted, as torchvision's ImageFolder finds them) and their class indices."""
    from torchvision.datasets import ImageFolder

    try:
        ds = ImageFolder(path)
    except (FileNotFoundError, RuntimeError, OSError) as e:
        raise DatasetError(f"{name}: not an image folder ({str(e).replace(path, name)})") from None
    return [p for p, _ in ds.samples], np.asarray(ds.targets, dtype=np.int64)


def _key(name: str, path: str, files: list[str], test_fraction: float) -> str:
    h = hashlib.sha256(json.dumps([FORMAT, name, float(test_fraction)]).encode())
    for f in files:
        st = os.stat(f)
        h.update(f"{os.path.relpath(f, path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def split_order(n: int, test_fraction: float, seed: int = 0) -> tuple[np.ndarray, int]:
    """(file index of each stored row, n_train): data._split's shuffle, train rows first."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    if n - n_test <= 0:
        raise DatasetError(f"only {n} examples: nothing left to train on after the test split")
    return np.concatenate([perm[n_test:], perm[:n_test]]), n - n_test


def _decode(file: str, shown: str) -> np.ndarray:
    """(H, W) grey or (H, W, 3) RGB uint8 (uint16 for 16-bit grey), through the one checked image
    reader (size from the header before decoding, every PIL error named as `shown`). Not
    torchvision's loader: it makes grey images RGB."""
    try:
        return image_array(open_image_file(file, name=shown), name=shown)
    except ImageError as e:
        raise DatasetError(str(e)) from None


def _shown(folder: str, name: str, file: str) -> str:
    """A file as the user named its folder (never the resolved server path)."""
    return os.path.join(name, os.path.relpath(file, folder))


def _decode_into(
    out: np.ndarray, files: list[str], order: np.ndarray, first: np.ndarray, folder: str, name: str
) -> None:
    """Row r of out (N, C, H, W) <- image files[order[r]], decoded by a pool of threads (PIL
    releases the GIL while it decodes)."""

    def one(r: int) -> None:
        f = files[order[r]]
        a = _decode(f, _shown(folder, name, f))
        if a.shape != first.shape or a.dtype != first.dtype:  # `first` is files[0]
            raise DatasetError(
                f"{name}: images must share one size and mode; {_shown(folder, name, files[0])} "
                f"is {describe_image(first)} but {_shown(folder, name, f)} is {describe_image(a)}"
            )
        out[r] = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)

    with ThreadPoolExecutor(max_workers=min(16, 2 * (os.cpu_count() or 1))) as pool:
        for _ in pool.map(one, range(len(order)), chunksize=64):
            pass


def _dataset(
    name: str, x: np.ndarray, labels: np.ndarray, n_train: int, fingerprint: str | None, pixels_file: str | None
) -> Dataset:
    y = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
    if fingerprint is None:
        fingerprint = data_fingerprint(name, x[:n_train], x[n_train:], labels[:n_train], labels[n_train:])
    t = torch.from_numpy(x)
    return Dataset(name, t[:n_train], t[n_train:], y[:n_train], y[n_train:], fingerprint, pixels_file)


def _read_cache(base: str, name: str) -> Dataset | None:
    """The cached dataset, or None when either file is missing or does not match the other."""
    try:
        with open(base + ".json", "rb") as fh:
            meta = json.loads(fh.read())
        x = np.load(base + ".npy", mmap_mode="c")  # copy-on-write: a writable map, the file untouched
    except (OSError, ValueError):
        return None
    labels = np.asarray(meta.get("labels", []), dtype=np.int64)
    if x.dtype != np.uint8 or x.ndim != 4 or len(x) != len(labels) or not 0 < meta.get("n_train", 0) < len(x):
        return None
    return _dataset(name, x, labels, meta["n_train"], meta.get("fingerprint"), base + ".npy")


def _build_cache(
    base: str,
    name: str,
    folder: str,
    files: list[str],
    targets: np.ndarray,
    test_fraction: float,
    order: np.ndarray,
    n_train: int,
    first: np.ndarray,
) -> None:
    shape = (len(files), 1 if first.ndim == 2 else first.shape[2], *first.shape[:2])

    def write(tmp: str) -> None:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        _decode_into(out, files, order, first, folder, name)
        out.flush()
        del out

    atomic_write(base + ".npy", write)
    x = np.load(base + ".npy", mmap_mode="r")
    labels = targets[order]
    fp = data_fingerprint(name, x[:n_train], x[n_train:], labels[:n_train], labels[n_train:])
    atomic_write_bytes(
        base + ".json",
        json.dumps({"format": FORMAT, "n_train": int(n_train), "fingerprint": fp, "labels": labels.tolist()}).encode(),
    )


def _in_memory(
    name: str, folder: str, files: list[str], targets: np.ndarray, order: np.ndarray, n_train: int, first: np.ndarray
) -> Dataset:
    out = np.empty((len(files), 1 if first.ndim == 2 else first.shape[2], *first.shape[:2]), np.uint8)
    _decode_into(out, files, order, first, folder, name)
    return _dataset(name, out, targets[order], n_train, None, None)


def load_image_folder(
    path: str, test_fraction: float, *, name: str | None = None, roots: list[str] | None = None
) -> Dataset | None:
    """The folder at `path` as a Dataset of uint8 images named `name` (default: path), from its
    cache when the listing is unchanged. roots: every file must resolve inside them (a link in the
    folder must not lead out). None when the images are not 8-bit (16-bit grey, float): the caller
    reads those into float arrays instead."""
    name = name or path
    folder = os.path.abspath(path)
    files, targets = _listing(path, name)
    if roots is not None:
        for f in files:
            try:
                check_path_allowed(f, roots)
            except DatasetError:
                raise DatasetError(
                    f"{_shown(folder, name, f)} leads outside the data folders this server allows"
                ) from None
    parent, stem = os.path.split(folder.rstrip(os.sep))
    prefix = os.path.join(parent, f".{stem}.vae_core")
    base = f"{prefix}-{_key(name, folder, files, test_fraction)}"
    ds = _read_cache(base, name)
    if ds is not None:  # the listing is unchanged: nothing is decoded
        return ds
    order, n_train = split_order(len(files), test_fraction)
    first = _decode(files[0], _shown(folder, name, files[0]))  # the reference size and mode
    if first.dtype != np.uint8:
        return None
    try:
        with file_lock(prefix + ".lock"):
            ds = _read_cache(base, name)  # another process may have built it while we waited
            if ds is None:
                _build_cache(base, name, folder, files, targets, test_fraction, order, n_train, first)
                ds = _read_cache(base, name)
            for old in glob.glob(glob.escape(prefix) + "-*"):
                if not old.startswith(base):
                    with contextlib.suppress(OSError):
                        os.unlink(old)
    except OSError as e:  # StorageError included: a read-only parent folder, a full disk
        if isinstance(e.__cause__, DatasetError):  # a bad image while writing the cache: that is the error
            raise e.__cause__ from None
        return _in_memory(name, folder, files, targets, order, n_train, first)
    if ds is None:
        raise DatasetError(f"{name}: the decoded cache {base}.npy could not be read back")
    return ds
