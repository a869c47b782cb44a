"""What data a served app may read.

The CLI and the Python API read any path they are given: whoever runs them owns the machine. A
served app is used by people who do not, so `load_dataset(..., allowed_roots=allowed_roots())`
resolves each path (symlinks and `..` followed) and reads it only when it lands inside one of:
  - the folders in VAE_DATA_ROOTS (os.pathsep-separated), set by whoever serves the app;
  - upload_dir(), where vae_core.data_upload.save_uploaded_dataset() stores browser uploads.
Registered names (mnist-5k, digits, mnist, ...) are always allowed and never read as paths.

The bottom of the data modules: vae_core.data, image_folder and data_upload import this, it imports
none of them. Torch-free at import: the app's first paint may call allowed_roots().
"""

from __future__ import annotations

import os

ROOTS_ENV = "VAE_DATA_ROOTS"
UPLOAD_ENV = "VAE_UPLOAD_DIR"
CACHE_DIR = os.environ.get("VAE_DATA_CACHE", os.path.expanduser("~/.cache/vae_core"))


class DatasetError(ValueError):
    """The dataset cannot be found, read or has the wrong shape (also vae_core.data.DatasetError)."""


def upload_dir() -> str:
    """Where browser uploads are stored: $VAE_UPLOAD_DIR, else <data cache>/uploads."""
    return os.environ.get(UPLOAD_ENV) or os.path.join(CACHE_DIR, "uploads")


def allowed_roots() -> list[str]:
    """Real paths of the folders a served app may read: $VAE_DATA_ROOTS plus upload_dir().
    Read on every call, so a restarted server (or a test) sees the current setting."""
    folders = [p.strip() for p in os.environ.get(ROOTS_ENV, "").split(os.pathsep) if p.strip()]
    roots: list[str] = []
    for p in folders + [upload_dir()]:
        real = os.path.realpath(os.path.expanduser(p))
        if real not in roots:
            roots.append(real)
    return roots


def check_path_allowed(path: str, roots: list[str]) -> str:
    """The real path of `path` if it lies inside one of `roots`, else DatasetError.

    The message quotes `path` as given, never where a link points: a refusal tells a browser user
    nothing about the server's files, and whether `path` exists makes no difference to it.
    """
    if not isinstance(path, str) or not path.strip():
        raise DatasetError("no dataset path given")
    try:
        real = os.path.realpath(path)
    except (ValueError, OSError):  # an embedded NUL byte, a path too long
        raise DatasetError(f"{path!r} is not a valid path") from None
    for root in roots:
        r = os.path.realpath(root)
        if real == r or real.startswith(r.rstrip(os.sep) + os.sep):
            return real
    raise DatasetError(
        f"{path!r} is outside the data folders this server allows ({ROOTS_ENV}); upload the dataset instead"
    )
