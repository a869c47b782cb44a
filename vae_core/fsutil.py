"""Files shared between processes: atomic writes, inter-process locks, and a sweep of leftovers.

Every file vae_core writes into a shared folder (checkpoints, projection caches, data caches)
goes through `atomic_write`; every "only one process does this" goes through `file_lock`.

Atomic write: the bytes go to `.tmp-<random><suffix>` in the target's folder (same filesystem,
so os.replace is atomic), held under an exclusive flock while being written, then renamed. A
reader sees the old file or the new one, never half of one. A killed writer leaves a temp file
that no process holds a lock on: `sweep_stale` removes those once they are old.

Lock protocol (flock on `<path>.lock`, the file is removed by its holder):
    acquire: open (O_CREAT, no symlinks) -> flock -> fstat(fd) == stat(path)?  else retry
    release: unlink(path) while still holding the lock -> unlock -> close
A waiter that was blocked on the old inode wakes up holding a lock on a deleted file; the inode
check sends it round again, to the file the next process created. So two holders never exist,
and no lock file outlives its holder (one left by `kill -9` is removed by `sweep_stale`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import os
import secrets
import time
from collections.abc import Callable, Iterator

TEMP_PREFIX = ".tmp-"
STALE_AFTER_S = 3600.0  # a temp or lock file nobody holds, older than this, is a leftover


class StorageError(OSError):
    """A file could not be written (disk full, read-only folder, ...): names the file."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 28]" prefix
        return self.strerror or super().__str__()


def _open_nofollow(path: str, flags: int) -> int:
    """os.open that refuses a symlink at `path` (a planted link must not redirect our write)."""
    return os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)


def atomic_write(path: str, write: Callable[[str], None], *, mode: int = 0o644) -> str:
    """Run write(tmp_path) on a locked temp file beside `path`, then rename it onto `path`.

    Any failure of `write` (an OSError, or a library's own error such as safetensors' on a full
    disk) removes the temp file and raises StorageError naming `path`; `path` is left untouched.
    """
    folder = os.path.dirname(os.path.abspath(path))
    suffix = os.path.splitext(path)[1]
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise StorageError(e.errno, f"{path}: cannot create its folder ({e.strerror or e})") from None
    tmp = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(6)}{suffix}")
    try:
        fd = _open_nofollow(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL)
    except OSError as e:
        raise StorageError(e.errno, f"{path}: cannot write in {folder} ({e.strerror or e})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # tells sweep_stale this temp file is alive
        os.fchmod(fd, mode)
        try:
            write(tmp)
            with open(tmp, "rb") as fh:  # the data is on disk before the name points at it
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except Exception as e:
            code = getattr(e, "errno", None) or (errno.ENOSPC if "space" in str(e).lower() else errno.EIO)
            reason = getattr(e, "strerror", None) or f"{type(e).__name__}: {e}"
            raise StorageError(code, f"{path}: could not be written ({reason}); nothing was changed") from e
    finally:
        with contextlib.suppress(OSError):
            if os.path.exists(tmp):
                os.unlink(tmp)
        os.close(fd)
    return path


def atomic_write_bytes(path: str, data: bytes, *, mode: int = 0o644) -> str:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    return atomic_write(path, write, mode=mode)


@contextlib.contextmanager
def file_lock(path: str, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on `path` (a `.lock` file). Yields True when held; with
    blocking=False yields False at once if another process holds it. See the module docstring."""
    while True:
        fd = _open_nofollow(path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        try:
            same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # we locked a file its holder already removed: take the current one
    try:
        yield True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still holding it: waiters on this inode will retry
        os.close(fd)  # releases the flock


def _unheld(path: str) -> int | None:
    """An fd holding the lock of `path` if no other process holds it, else None."""
    try:
        fd = _open_nofollow(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def sweep_stale(folder: str, *, older_than_s: float = STALE_AFTER_S) -> list[str]:
    """Remove temp files (`.tmp-*`) and lock files (`*.lock`) in `folder` that no process holds
    and that are older than `older_than_s`. Returns the removed paths. Never raises."""
    removed = []
    now = time.time()
    pattern = os.path.join(glob.escape(folder), "")
    for path in glob.glob(pattern + TEMP_PREFIX + "*") + glob.glob(pattern + "*.lock"):
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            continue
        if now - st.st_mtime < older_than_s:
            continue
        fd = _unheld(path)
        if fd is None:
            continue
        try:
            if os.fstat(fd).st_ino == st.st_ino:
                os.unlink(path)  # lock files: unlinked while held, as the protocol requires
                removed.append(path)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed
