"""The UMAP map as a background job: one process per checkpoint computes its UMAP cache.

`python -m vae_core.umap_job CKPT...` (or `python -m vae_core.projection CKPT...`) fits UMAP on
the encoder means and writes `<ckpt>.proj.npz`. The app runs it in a child process
(start_umap_process): numba compiles UMAP in every fresh process, which must not block the server.

Run once: a non-blocking vae_core.fsutil.file_lock on `<cache>.lock`. A second starter (another
server process, the CLI) finds it held and exits 0 ("another process is computing it"); the
holder re-reads the cache once it has the lock, so a job that finished meanwhile is not redone.

The log (the child's stdout and stderr, shown by the app when the job fails) is written where only
the server writes: a hidden file beside the checkpoint, created fresh with O_EXCL so that nothing
put at that name (a symlink, a hard link) is ever written through; else a tempfile.mkstemp file.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from .fsutil import StorageError, file_lock
from .progress import Progress, ProgressFn
from .projection_build import build_cache
from .projection_cache import ProjectionCache, ProjectionCacheWarning, cache_path_for, read_cache

LOG_TAIL_CHARS = 600
PROGRESS = "progress"  # log lines "progress <phase> <done> <total> <message>": the app shows the last one


def print_progress(p: Progress) -> None:
    """The child's progress callback: one log line per report."""
    print(f"{PROGRESS} {p.phase} {p.done} {p.total} {' '.join(p.message.split())}", flush=True)


def last_progress(log: str) -> Progress | None:
    """The last report printed in a log tail (phase, done, total, message), or None."""
    for line in reversed(log.splitlines()):
        head, *fields = line.split(" ", 4)
        if head == PROGRESS:
            try:
                phase, done, total, message = fields
                return Progress(phase, int(done), int(total), message)
            except ValueError:
                return None
    return None


@contextlib.contextmanager
def _try_lock(cache_path: str) -> Iterator[bool]:
    """Yields True if we hold the job's lock, False if another process does (it is computing)."""
    with contextlib.ExitStack() as stack:
        try:
            mine = stack.enter_context(file_lock(cache_path + ".lock", blocking=False))
        except OSError as e:  # read-only folder: the cache could not be written either
            folder = os.path.dirname(os.path.abspath(cache_path))
            raise StorageError(
                e.errno, f"{cache_path}: cannot be written: no lock file can be made in {folder} ({e.strerror or e})"
            ) from None
        yield mine


def ensure_umap_cache(
    checkpoint_path: str, allowed_roots: list[str] | None = None, progress: ProgressFn | None = None
) -> ProjectionCache | None:
    """Compute the UMAP cache unless present. None when another process holds the lock.
    allowed_roots: as in load_dataset (None: the checkpoint's dataset path is read wherever it is).
    progress(Progress): as build_cache (phases "encode", "map", "place").
    Raises CheckpointError / DatasetError / ValueError (NaN means) / StorageError (cannot write)."""
    from .checkpoints import load_checkpoint, read_metadata
    from .data import eval_targets, load_dataset

    def done(c: ProjectionCache | None) -> bool:  # k <= 2 has no UMAP: the map is the latent plane
        return c is not None and (c.umap is not None or c.means.shape[1] <= 2)

    cached = read_cache(checkpoint_path)
    if done(cached):
        return cached
    read_metadata(checkpoint_path)  # a missing or broken checkpoint is reported as such, before any lock
    with _try_lock(cache_path_for(checkpoint_path)) as mine:
        if not mine:
            return None
        cached = read_cache(checkpoint_path)  # the previous holder may have just written it
        if done(cached):
            return cached
        ck = load_checkpoint(checkpoint_path)
        tc = ck.train_config
        data = load_dataset(tc.dataset, test_fraction=tc.test_fraction, allowed_roots=allowed_roots)
        return build_cache(
            checkpoint_path,
            ck.model,
            eval_targets(data.x_test, tc.binarize),
            data.y_test,
            with_umap=True,
            progress=progress,
        )


# --- the child process ----------------------------------------------------------------------------


@dataclass(frozen=True)
class UmapJob:
    process: subprocess.Popen
    log_path: str  # the child's stdout + stderr

    def log_tail(self, n_chars: int = LOG_TAIL_CHARS) -> str:
        """The end of the log ('' if unreadable). Never follows a link put at log_path."""
        try:
            fd = os.open(self.log_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return ""
        with open(fd, "rb") as f:
            f.seek(max(0, os.fstat(fd).st_size - 4 * n_chars))  # UTF-8: at most 4 bytes a character
            return f.read().decode(errors="replace")[-n_chars:].strip()


def umap_log_path(checkpoint_path: str) -> str:
    """`dir/x.safetensors` -> `dir/.x.umap.log` (hidden, beside the checkpoint)."""
    folder, name = os.path.split(os.path.abspath(checkpoint_path))
    return os.path.join(folder, "." + name.removesuffix(".safetensors") + ".umap.log")


def _create_log(checkpoint_path: str) -> tuple[int, str]:
    """(fd, path) of a new, empty log file that this process created."""
    path = umap_log_path(checkpoint_path)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # the last run's log, or anything put there: unlink removes a link, not its target
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.open(path, flags, 0o600), path
    except OSError:  # read-only folder, or something was put back at the name meanwhile
        return tempfile.mkstemp(prefix="vae_umap_", suffix=".log")


def start_umap_process(checkpoint_path: str) -> UmapJob:
    """Run ensure_umap_cache for the served app in a child process (own GIL, own numba JIT; it reads
    data only inside vae_core.data_access.allowed_roots()), logging to a fresh file."""
    fd, log = _create_log(checkpoint_path)
    try:
        p = subprocess.Popen(
            [sys.executable, "-m", "vae_core.umap_job", "--served", checkpoint_path],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,
        )
    finally:
        os.close(fd)
    return UmapJob(p, log)


def main(argv=None) -> int:
    import argparse

    import torch

    from .checkpoints import CheckpointError
    from .data import DatasetError
    from .data_access import allowed_roots

    p = argparse.ArgumentParser(
        prog="python -m vae_core.umap_job",
        description="Compute the UMAP map cache (<checkpoint>.proj.npz) for checkpoints.",
    )
    p.add_argument("checkpoints", nargs="+")
    p.add_argument(
        "--served",
        action="store_true",
        help="started by the served app: read a checkpoint's dataset only inside the allowed "
        "data folders ($VAE_DATA_ROOTS, uploads), as the app itself does",
    )
    a = p.parse_args(argv)
    roots = allowed_roots() if a.served else None
    torch.set_num_threads(1)
    failed = False
    for path in a.checkpoints:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ProjectionCacheWarning)
            try:
                res = ensure_umap_cache(path, roots, progress=print_progress)
            except (CheckpointError, DatasetError, ValueError, OSError) as e:
                res, failed = e, True
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        if isinstance(res, Exception):
            named = path in str(res) or cache_path_for(path) in str(res)
            print(f"error: {res}" if named else f"error: {path}: {res}", file=sys.stderr)
        else:
            print(f"{cache_path_for(path)}: " + ("ready" if res is not None else "another process is computing it"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
