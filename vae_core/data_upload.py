"""Datasets uploaded through the browser, stored where a served app may read them
(vae_core.data_access.upload_dir(), inside allowed_roots()).

An upload (.npz, or .zip of an image folder) is checked in full before it is stored: size limits
from the zip directory before anything is unpacked, no absolute names, `..` or links, and every
array and image through the same validation as load_dataset. It is stored content-addressed as
`<sha16>.npz` or `<sha16>/`, and that path is the dataset's name from then on.

Torch-free at import (the loaders that validate an upload import it when one arrives).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import secrets
import shutil
import stat
import time
import zipfile

from .data_access import DatasetError, upload_dir
from .fsutil import STALE_AFTER_S, TEMP_PREFIX, atomic_write_bytes, sweep_stale

MAX_DATASET_UPLOAD_BYTES = 64 * 2**20  # the uploaded file itself (= server.maxUploadSize: uploads sit in RAM)
MAX_UNPACKED_BYTES = 2**30  # sum of the sizes the zip directory declares
MAX_ARCHIVE_FILES = 100_000
MAX_COMPRESSION_RATIO = 100  # PNG, JPEG and real .npy data stay far below; a zip bomb does not
MAX_UPLOAD_VALUES = 2**28  # pixels x examples once decoded: 1 GiB as float32
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def save_uploaded_dataset(data: bytes, filename: str) -> str:
    """Validate an uploaded .npz (x_train, x_test, optional y_train, y_test) or .zip of an image
    folder (one subfolder per class, PNG/JPEG), store it in upload_dir() and return its path: a
    dataset name load_dataset accepts, inside allowed_roots(). The same bytes give the same path.

    Bad input raises DatasetError naming `filename` (never a server path) and the problem.
    """
    name = os.path.basename(str(filename).replace("\\", "/")) or "upload"
    kind = os.path.splitext(name)[1].lower()
    if kind not in (".npz", ".zip"):
        raise DatasetError(
            f"{name}: upload a .npz file (x_train, x_test, optional y_train, y_test) or a "
            ".zip of an image folder (one subfolder of PNG/JPEG images per class)"
        )
    if len(data) == 0:
        raise DatasetError(f"{name}: the file is empty")
    if len(data) > MAX_DATASET_UPLOAD_BYTES:
        raise DatasetError(f"{name}: {_mb(len(data))} is too big (limit {_mb(MAX_DATASET_UPLOAD_BYTES)})")
    folder = upload_dir()
    sweep_stale(folder)
    _sweep_stale_dirs(folder)
    digest = hashlib.sha256(data).hexdigest()[:16]
    with _open_archive(data, name) as archive:  # .npz files are zip archives too: same checks
        if kind == ".npz":
            target = os.path.join(folder, digest + ".npz")
            if not os.path.isfile(target):  # stored earlier means validated earlier
                _validate_npz(data, name)
                _store(name, lambda: atomic_write_bytes(target, data))
        else:
            target = os.path.join(folder, digest)
            if not os.path.isdir(target):
                _store(name, lambda: _unpack_image_zip(archive, name, folder, target))
    return os.path.realpath(target)


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


def _store(name: str, write) -> None:
    """Run a write into the upload folder; a server-side failure is told without server paths."""
    try:
        write()
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else type(e).__name__
        raise DatasetError(f"{name}: the server could not store the upload ({reason})") from None


def _open_archive(data: bytes, name: str) -> zipfile.ZipFile:
    """Open the zip directory and refuse it, before anything is decompressed, if it declares too
    many files, too many bytes, a bomb-like compression ratio, or an unsafe entry."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as e:
        raise DatasetError(f"{name}: not a readable zip archive ({e})") from None
    if len(infos) > MAX_ARCHIVE_FILES:
        raise DatasetError(f"{name}: {len(infos):,} files in the archive (limit {MAX_ARCHIVE_FILES:,})")
    unpacked = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos)
    if unpacked > MAX_UNPACKED_BYTES:
        raise DatasetError(f"{name}: unpacks to {_mb(unpacked)} (limit {_mb(MAX_UNPACKED_BYTES)})")
    if unpacked > 2**20 and unpacked > MAX_COMPRESSION_RATIO * max(packed, 1):
        raise DatasetError(
            f"{name}: compressed {unpacked / max(packed, 1):,.0f}:1 (limit "
            f"{MAX_COMPRESSION_RATIO}:1); refused as a likely zip bomb"
        )
    for info in infos:
        _check_entry(info, name)
    return archive


def _check_entry(info: zipfile.ZipInfo, name: str) -> None:
    entry = info.filename
    if entry.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", entry):
        raise DatasetError(f"{name}: entry {entry!r} has an absolute path")
    if ".." in re.split(r"[\\/]", entry):
        raise DatasetError(f"{name}: entry {entry!r} points outside the archive ('..')")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DatasetError(f"{name}: entry {entry!r} is a symbolic link; links are not accepted")
    if info.flag_bits & 0x1:
        raise DatasetError(f"{name}: entry {entry!r} is encrypted")


def _validate_npz(data: bytes, name: str) -> None:
    from . import data as vd  # torch: only once someone uploads

    x_tr, y_tr, x_te, y_te = vd._npz(io.BytesIO(data), name)
    values = sum(int(getattr(a, "size", 0)) for a in (x_tr, x_te))
    if values > MAX_UPLOAD_VALUES:
        raise DatasetError(f"{name}: {values:,} values in x_train and x_test (limit {MAX_UPLOAD_VALUES:,})")
    vd._build(name, x_tr, y_tr, x_te, y_te)


def _image_entries(archive: zipfile.ZipFile, name: str) -> list[tuple[zipfile.ZipInfo, list[str]]]:
    """(entry, path parts below the dataset root) for each image; a single top folder holding the
    class folders (what zipping a folder gives) is the root. Other files are refused by name."""
    files = []
    for info in archive.infolist():
        parts = [p for p in info.filename.replace("\\", "/").split("/") if p not in ("", ".")]
        if info.is_dir() or not parts:
            continue
        if "__MACOSX" in parts or parts[-1].startswith("."):
            continue  # macOS resource forks, .DS_Store: not data, not unpacked
        if not parts[-1].lower().endswith(IMAGE_SUFFIXES):
            raise DatasetError(
                f"{name}: {info.filename!r} is not a PNG or JPEG image; the archive must "
                "hold only images, in one subfolder per class"
            )
        files.append((info, parts))
    if not files:
        raise DatasetError(f"{name}: no PNG or JPEG images found (put them in one subfolder per class)")
    if all(len(p) >= 3 for _, p in files) and len({p[0] for _, p in files}) == 1:
        files = [(i, p[1:]) for i, p in files]
    for info, parts in files:
        if len(parts) < 2:
            raise DatasetError(
                f"{name}: {info.filename!r} is not in a class folder; put the images in one subfolder per class"
            )
    return files


def _unpack_image_zip(archive: zipfile.ZipFile, name: str, folder: str, target: str) -> None:
    """Unpack into a temp folder beside `target`, load it as load_dataset would (every image through
    the checked reader), then rename it into place: `target` is complete or absent."""
    from . import data as vd  # torch: only once someone uploads
    from .images import FORMATS

    entries = _image_entries(archive, name)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(6)}")
    os.mkdir(tmp, 0o755)
    try:
        for info, parts in entries:
            dest = os.path.join(tmp, *parts)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            try:
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            except FileExistsError:
                raise DatasetError(f"{name}: {info.filename!r} appears twice in the archive") from None
            try:
                with os.fdopen(fd, "wb") as out, archive.open(info) as src:
                    shutil.copyfileobj(src, out)  # zipfile stops at the declared size and checks the CRC
            except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as e:
                raise DatasetError(f"{name}: {info.filename!r} cannot be unpacked ({e})") from None
        vd._image_folder(tmp, 0.2, what=name, max_values=MAX_UPLOAD_VALUES, formats=FORMATS)
        try:
            os.rename(tmp, target)
        except OSError:
            if not os.path.isdir(target):  # else: the same upload, stored by another session meanwhile
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _sweep_stale_dirs(folder: str) -> None:
    """Remove temp folders that a killed upload left (fsutil.sweep_stale handles files only)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if (
                entry.name.startswith(TEMP_PREFIX)
                and entry.is_dir(follow_symlinks=False)
                and time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S
            ):
                shutil.rmtree(entry.path, ignore_errors=True)
