"""Fault injection for the map's projection cache and the UMAP job (issue 9, cases 3, 4, 6, 12, 13, 15).

A damaged or crafted `.proj.npz` is ignored with one warning naming the file and the problem, and
the next build replaces it; NaN means give a clear ValueError; the job's lock, its temp files and
its log hold up against real concurrent processes, kill -9 and planted links. Fixtures are tiny
models on sklearn's bundled digits (nothing is downloaded); no UMAP is fitted here (numba is slow).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pytest
import torch

from vae_core import projection as proj
from vae_core import projection_build as pb
from vae_core import projection_cache as pc
from vae_core import umap_job
from vae_core.checkpoints import save_checkpoint
from vae_core.config import ModelConfig, TrainConfig
from vae_core.fsutil import StorageError, sweep_stale
from vae_core.model import VAE
from vae_core.projection_cache import BadCache, load_arrays

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HANG_GUARD_S = 900  # only catches a hang; a loaded machine may be slow, never this slow


def _checkpoint(folder, k: int = 3, name: str = "m", nan: bool = False) -> tuple[str, VAE]:
    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 8, 8), latent_dim=k, hidden=(16,))).eval()
    if nan:
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
    path = os.path.join(str(folder), name + ".safetensors")
    save_checkpoint(path, model, TrainConfig(dataset="digits", epochs=1))
    return path, model


def _build(path, model) -> pc.ProjectionCache:
    x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    return pb.build_cache(path, model, x, torch.arange(40) % 10, with_umap=False)


def _rewrite(npz: str, **changes) -> None:
    """The cache with some arrays replaced (None: removed), written without any checks."""
    with np.load(npz) as f:
        arrays = {k: f[k] for k in f.files}
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    with open(npz, "wb") as fh:
        np.savez(fh, **arrays)


def _bytes(npz: str, edit) -> None:
    data = bytearray(open(npz, "rb").read())
    with open(npz, "wb") as fh:
        fh.write(bytes(edit(data)))


def _flip_in_means(data: bytearray) -> bytearray:
    start = data.find(b"\x93NUMPY", data.find(b"means.npy"))  # the stored .npy of 'means'
    data[start + 150] ^= 0x10
    return data


def _compressed_then_flipped(npz: str) -> None:
    with np.load(npz) as f:
        arrays = {k: f[k] for k in f.files}
    with open(npz, "wb") as fh:
        np.savez_compressed(fh, **arrays)

    def flip(data: bytearray) -> bytearray:  # a byte of the deflate stream of 'means'
        data[data.find(b"means.npy") + 60] ^= 0xFF
        return data

    _bytes(npz, flip)


class _Trap:
    """Unpickling this would create the file `marker`: it must never happen."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def _means(c, fill=None, dtype=np.float32):
    m = c.means.astype(dtype).copy()
    if fill is not None:
        m[3, 1] = fill
    return m


# id -> (corrupt(npz, cache, tmp_path), words the message must contain)
VARIANTS = {
    "truncated": (lambda p, c, t: _bytes(p, lambda d: d[: len(d) // 2]), "unreadable (zipfile.BadZipFile"),
    "empty file": (lambda p, c, t: _bytes(p, lambda d: b""), "unreadable (zipfile.BadZipFile"),
    "not an npz": (lambda p, c, t: _bytes(p, lambda d: b"just some text\n" * 20), "unreadable"),
    "bit flip (CRC)": (lambda p, c, t: _bytes(p, _flip_in_means), "Bad CRC-32 for file 'means.npy'"),
    "bit flip (deflate)": (lambda p, c, t: _compressed_then_flipped(p), "unreadable (zlib.error"),
    "a pickle inside": (
        lambda p, c, t: _rewrite(p, labels=np.array([_Trap(str(t / "pwned"))] * len(c.index), dtype=object)),
        "Object arrays cannot be loaded when allow_pickle=False",
    ),
    "missing means": (lambda p, c, t: _rewrite(p, means=None), "missing 'means'"),
    "missing format": (lambda p, c, t: _rewrite(p, format=None, min_dist=None), "missing 'format', 'min_dist'"),
    "future format": (lambda p, c, t: _rewrite(p, format=np.array(2)), "format 2, this version reads format 1"),
    "sha is a number": (
        lambda p, c, t: _rewrite(p, checkpoint_sha=np.array(7)),
        "'checkpoint_sha' must be a single string",
    ),
    "means are integers": (
        lambda p, c, t: _rewrite(p, means=_means(c, dtype=np.int64)),
        "'means' must be a 2-D float array, got int64",
    ),
    "means are 1-D": (lambda p, c, t: _rewrite(p, means=c.means[:, 0]), "'means' must be a 2-D float array"),
    "means hold NaN": (lambda p, c, t: _rewrite(p, means=_means(c, np.nan)), "'means' contains NaN or inf"),
    "means hold inf": (lambda p, c, t: _rewrite(p, means=_means(c, np.inf)), "'means' contains NaN or inf"),
    "no points": (
        lambda p, c, t: _rewrite(p, index=c.index[:0], labels=c.labels[:0], means=c.means[:0]),
        "it holds no points",
    ),
    "labels shorter than means": (lambda p, c, t: _rewrite(p, labels=c.labels[:-5]), "40 indices but 35 labels"),
    "label below -1": (lambda p, c, t: _rewrite(p, labels=np.full(len(c.index), -5)), "'labels' holds -5"),
    "index out of range": (lambda p, c, t: _rewrite(p, index=c.index + 1000), "out of range for a test set of 40"),
    "negative index": (lambda p, c, t: _rewrite(p, index=c.index - 100), "test-set positions are >= 0"),
    "index twice": (lambda p, c, t: _rewrite(p, index=np.zeros_like(c.index)), "lists a test point twice"),
    "n_test below the points": (lambda p, c, t: _rewrite(p, n_test=np.array(3)), "'n_test' is 3"),
    "umap holds inf": (
        lambda p, c, t: _rewrite(p, umap=np.full((len(c.index), 2), np.inf, np.float32)),
        "'umap' contains NaN or inf",
    ),
    "umap of the wrong shape": (
        lambda p, c, t: _rewrite(p, umap=np.zeros((len(c.index), 3), np.float32)),
        "'umap' has shape (40, 3), expected (40, 2)",
    ),
    "umap is 1-D": (
        lambda p, c, t: _rewrite(p, umap=np.zeros(len(c.index), np.float32)),
        "'umap' must be a 2-D float array",
    ),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_bad_cache_is_ignored_reported_once_and_rebuilt(variant, tmp_path):
    corrupt, words = VARIANTS[variant]
    path, model = _checkpoint(tmp_path)
    good = _build(path, model)
    npz = pc.cache_path_for(path)
    corrupt(npz, good, tmp_path)
    with pytest.warns(pc.ProjectionCacheWarning) as caught:
        assert pc.read_cache(path) is None
    (w,) = caught
    message = str(w.message)
    assert message.startswith(npz + ": ") and words in message, message
    assert message.endswith("the map cache is ignored and will be rebuilt")
    assert pc.cache_problem(path) == message  # the same words for a page to show
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported once: a second read is silent
        assert pc.read_cache(path) is None
    assert not (tmp_path / "pwned").exists(), "loading ran code from the file"
    rebuilt = _build(path, model)  # the normal path replaces the bad file
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = pc.read_cache(path)
    assert got is not None and pc.cache_problem(path) is None
    np.testing.assert_array_equal(got.means, rebuilt.means)
    np.testing.assert_array_equal(got.index, good.index)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


def test_a_cache_declaring_huge_arrays_is_refused_before_inflating(tmp_path):
    path, model = _checkpoint(tmp_path)
    _build(path, model)
    npz = pc.cache_path_for(path)
    assert load_arrays(npz)["means"].shape == (40, 3)
    with pytest.raises(BadCache, match=r"its arrays would take [\d,]+ bytes \(limit 1,000\)"):
        load_arrays(npz, max_bytes=1000)


def test_a_cache_for_other_weights_is_replaced_without_a_warning(tmp_path):
    path, model = _checkpoint(tmp_path)
    _build(path, model)
    other, _ = _checkpoint(tmp_path, name="other")
    os.replace(pc.cache_path_for(path), pc.cache_path_for(other))  # a valid cache, other weights
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pc.read_cache(other) is None and pc.cache_problem(other) is None


# --- NaN means (case 3, the PCA side) --------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_fit_pca_on_non_finite_means_says_so(bad):
    means = np.random.default_rng(0).normal(size=(30, 4))
    means[[2, 9], 1] = bad
    with pytest.raises(ValueError, match=r"^the encoder means contain NaN or inf values: 2 of 30 points"):
        proj.fit_pca(means)


def test_a_nan_checkpoint_gives_a_clear_error_and_no_cache(tmp_path, capsys):
    path, model = _checkpoint(tmp_path, nan=True)
    with pytest.raises(ValueError, match="the encoder means contain NaN or inf values"):
        proj.encode_means(model, torch.rand(5, 1, 8, 8))
    with pytest.raises(ValueError, match="weights are probably not finite"):
        _build(path, model)
    assert not os.path.exists(pc.cache_path_for(path))
    assert umap_job.main([path]) == 1  # the job's command line: one error line naming the checkpoint
    (err,) = capsys.readouterr().err.strip().splitlines()  # (load_checkpoint may catch the NaN first)
    assert err.startswith(f"error: {path}: ") and "NaN or inf values" in err
    assert not os.path.exists(pc.cache_path_for(path))


# --- a cache that cannot be written (case 6) -------------------------------------------------------


def test_a_full_disk_keeps_the_old_cache_and_the_job_says_error(tmp_path, monkeypatch, capsys):
    path, model = _checkpoint(tmp_path, k=2)  # k = 2: the job writes the means only (no UMAP to fit)
    old = _build(path, model)

    def no_space(fh, **arrays):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", no_space)
    with pytest.raises(StorageError, match="m.proj.npz: could not be written .No space left on device"):
        _build(path, model)
    np.testing.assert_array_equal(pc.read_cache(path).means, old.means)  # nothing was changed
    os.unlink(pc.cache_path_for(path))
    assert umap_job.main([path]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {pc.cache_path_for(path)}: could not be written (No space left on device); nothing was changed"
    ]
    assert os.listdir(tmp_path) == ["m.safetensors"]  # no temp file, no lock file left


def test_a_read_only_folder_gives_one_error_line(tmp_path, monkeypatch, capsys):
    # CI runs as root, which writes through folder permissions: the read-only file system is simulated
    import vae_core.fsutil as fsutil

    path, model = _checkpoint(tmp_path, k=2)
    cache = _build(path, model)
    real_open = fsutil._open_nofollow

    def read_only(p, flags):
        if os.path.dirname(os.path.abspath(p)) == str(tmp_path):
            raise OSError(errno.EROFS, "Read-only file system", p)
        return real_open(p, flags)

    monkeypatch.setattr(fsutil, "_open_nofollow", read_only)
    npz = pc.cache_path_for(path)
    with pytest.raises(StorageError, match=re.escape(f"{npz}: cannot write in {tmp_path} (Read-only file system)")):
        pc.write_cache(path, cache)
    os.unlink(npz)
    assert umap_job.main([path]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {npz}: cannot be written: no lock file can be made in {tmp_path} (Read-only file system)"
    ]
    with pytest.raises(StorageError, match="m.proj.npz: cannot create its folder"):  # no folder at all
        (tmp_path / "file.txt").write_text("not a folder")
        pc.write_cache(str(tmp_path / "file.txt" / "m.safetensors"), cache)


def test_the_cli_under_its_old_name_reports_a_missing_checkpoint_in_one_line(tmp_path):
    missing = str(tmp_path / "gone.safetensors")
    out = subprocess.run(
        [sys.executable, "-m", "vae_core.projection", missing],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=HANG_GUARD_S,
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [f"error: {missing}: no such checkpoint file"]


# --- the job's lock (case 12) and its temp files (case 13), with real processes ------------------

HOLD_LOCK = """
import sys, time
from vae_core import umap_job
with umap_job._try_lock(sys.argv[1]) as mine:
    print("held" if mine else "busy", flush=True)
    time.sleep({hold_s})
"""


def _hold_lock(cache_path: str, hold_s: float = 600) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK.format(hold_s=hold_s), cache_path], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_starter_finding_the_lock_held_computes_nothing(tmp_path, capsys):
    path, _ = _checkpoint(tmp_path)
    holder = _hold_lock(pc.cache_path_for(path))
    try:
        assert umap_job.ensure_umap_cache(path) is None
        assert umap_job.main([path]) == 0
        assert capsys.readouterr().out == f"{pc.cache_path_for(path)}: another process is computing it\n"
        assert not os.path.exists(pc.cache_path_for(path))
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_kill_9_does_not_block_the_next_job(tmp_path):
    path, _ = _checkpoint(tmp_path)
    cache_path = pc.cache_path_for(path)
    holder = _hold_lock(cache_path)
    holder.kill()  # SIGKILL: no clean-up ran
    holder.wait()
    assert os.path.exists(cache_path + ".lock")
    with umap_job._try_lock(cache_path) as mine:
        assert mine
    assert not os.path.exists(cache_path + ".lock")  # removed by its holder on release


STARTER = """
import os, sys, time
import numpy as np
from vae_core import umap_job, umap_subsample
ckpt, marks, n = sys.argv[1], sys.argv[2], int(sys.argv[3])

def count(prefix):
    return sum(f.startswith(prefix) for f in os.listdir(marks))

def counting_fit(means, seed=0, *args, **kwargs):  # stands in for UMAP; holds the lock until every other starter tried
    open(os.path.join(marks, f"fit-{os.getpid()}"), "w").close()
    deadline = time.monotonic() + {guard}
    while count("tried-") + count("fit-") < n:
        assert time.monotonic() < deadline, "the other starters never tried"
        time.sleep(0.05)
    return np.stack([np.arange(len(means)), np.zeros(len(means))], 1).astype(np.float32)

umap_subsample.fit_umap = counting_fit
while not os.path.exists(os.path.join(marks, "go")):  # all start together
    time.sleep(0.01)
res = umap_job.ensure_umap_cache(ckpt)
open(os.path.join(marks, f"tried-{os.getpid()}"), "w").close()
print("computed" if res is not None else "busy")
"""


def test_concurrent_umap_starters_compute_once(tmp_path):
    path, _ = _checkpoint(tmp_path)
    marks = tmp_path / "marks"
    marks.mkdir()
    n = 3
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER.replace("{guard}", str(HANG_GUARD_S)), path, str(marks), str(n)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    (marks / "go").touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=HANG_GUARD_S)
        assert p.returncode == 0, err
        results.append(out.strip())
    assert sorted(results) == ["busy"] * (n - 1) + ["computed"]
    assert len([f for f in os.listdir(marks) if f.startswith("fit-")]) == 1
    cache = pc.read_cache(path)
    assert cache.umap is not None and cache.umap.shape == (len(cache.means), 2)
    assert umap_job.ensure_umap_cache(path).umap is not None  # a later starter reads it
    assert len([f for f in os.listdir(marks) if f.startswith("fit-")]) == 1
    assert not os.path.exists(pc.cache_path_for(path) + ".lock")


KILLED_WRITE = """
import dataclasses, os, sys, time
import numpy as np
from vae_core import projection_cache as pc
ckpt, ready = sys.argv[1], sys.argv[2]
cache = pc.read_cache(ckpt)

def stuck_savez(fh, **arrays):  # half a file on disk, then the process is killed
    fh.write(b"PK\\x03\\x04 half an npz")
    fh.flush()
    open(ready, "w").close()
    time.sleep(600)

np.savez = stuck_savez
pc.write_cache(ckpt, dataclasses.replace(cache, means=cache.means + 1))
"""


def test_kill_9_during_a_cache_write_keeps_the_old_cache_and_the_temp_file_is_swept(tmp_path):
    path, model = _checkpoint(tmp_path)
    old = _build(path, model)
    ready = tmp_path / "ready"
    p = subprocess.Popen([sys.executable, "-c", KILLED_WRITE, path, str(ready)], cwd=REPO)
    try:
        while not ready.exists():  # no time limit: the writer gets there, however loaded the machine
            assert p.poll() is None, "the writer died before writing"
            time.sleep(0.05)
    finally:
        p.kill()
        p.wait()
    temps = [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]
    assert len(temps) == 1 and temps[0].endswith(".npz")
    np.testing.assert_array_equal(pc.read_cache(path).means, old.means)  # readers never see half a file
    assert sweep_stale(str(tmp_path), older_than_s=0) == [str(tmp_path / temps[0])]
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]
    np.testing.assert_array_equal(pc.read_cache(path).means, old.means)


# --- the job's log (case 15) ---------------------------------------------------------------------


def _victim(tmp_path) -> str:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    return str(victim)


def umap_log(path: str) -> str:
    return os.path.join(os.path.dirname(path), ".m.umap.log")


def _finish(job: umap_job.UmapJob) -> int:
    return job.process.wait(timeout=HANG_GUARD_S)


def test_a_symlink_at_the_old_log_place_is_never_followed(tmp_path):
    path, _ = _checkpoint(tmp_path / "ckpts")
    victim = _victim(tmp_path)
    old = os.path.join(tempfile.gettempdir(), f"vae_umap_{pc.file_sha(path)}.log")
    os.symlink(victim, old)
    try:
        job = umap_job.start_umap_process(path)
        job.process.kill()
        _finish(job)
        assert job.log_path == umap_log(path)
    finally:
        os.unlink(old)
    assert open(victim).read() == "precious\n"


@pytest.mark.parametrize("link", ["symlink", "hard link"])
def test_a_link_planted_at_the_log_place_is_not_written_through(tmp_path, link):
    path = str(tmp_path / "m.safetensors")  # no checkpoint there: the job fails fast, and logs why
    victim = _victim(tmp_path)
    assert umap_job.umap_log_path(path) == umap_log(path)
    (os.symlink if link == "symlink" else os.link)(victim, umap_log(path))
    job = umap_job.start_umap_process(path)
    assert _finish(job) == 1
    assert open(victim).read() == "precious\n"
    assert job.log_path == umap_log(path) and not os.path.islink(job.log_path)
    assert job.log_tail() == f"error: {path}: no such checkpoint file"


def test_the_log_falls_back_to_a_private_temp_file_when_the_folder_refuses_it(tmp_path):
    path = str(tmp_path / "m.safetensors")
    os.mkdir(umap_log(path))  # something that cannot be replaced (root ignores folder permissions)
    (tmp_path / ".m.umap.log" / "keep").write_text("x")
    job = umap_job.start_umap_process(path)
    try:
        assert _finish(job) == 1
        assert os.path.dirname(job.log_path) == tempfile.gettempdir()
        assert os.path.basename(job.log_path).startswith("vae_umap_")
        assert os.stat(job.log_path).st_mode & 0o077 == 0  # only the server reads it
        assert job.log_tail() == f"error: {path}: no such checkpoint file"
    finally:
        os.unlink(job.log_path)


def test_the_log_reader_does_not_follow_a_link_put_there_later(tmp_path):
    path = str(tmp_path / "m.safetensors")
    job = umap_job.start_umap_process(path)
    _finish(job)
    secret = tmp_path / "secret.txt"
    secret.write_text("server secret")
    os.unlink(job.log_path)
    os.symlink(secret, job.log_path)
    assert job.log_tail() == ""


def test_the_app_shows_a_failed_job_with_its_log_tail(tmp_path):
    # app.views.latent_data keeps the UmapJob; its status message quotes the end of the log
    from app.views import latent_data

    path = str(tmp_path / "m.safetensors")
    latent_data.start_umap(path)
    jobs, _ = latent_data._umap_jobs()
    _finish(jobs[path])
    status, message = latent_data.umap_status(path)
    assert status == "failed"
    assert message == f"UMAP failed (exit code 1). error: {path}: no such checkpoint file"


def test_cache_round_trip_keeps_every_field(tmp_path):
    path, model = _checkpoint(tmp_path)
    c = dataclasses.replace(_build(path, model), umap=np.ones((40, 2), np.float32), n_neighbors=7, min_dist=0.25)
    pc.write_cache(path, c)
    got = pc.read_cache(path)
    for f in dataclasses.fields(c):
        np.testing.assert_array_equal(getattr(got, f.name), getattr(c, f.name))
    assert got.n_test == 40


def test_the_apps_job_reads_a_checkpoints_dataset_only_inside_the_allowed_roots(tmp_path, monkeypatch, tiny_npz):
    # case 14 for the UMAP job: the checkpoint names a dataset file outside $VAE_DATA_ROOTS
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    monkeypatch.setenv("VAE_DATA_ROOTS", str(allowed))
    monkeypatch.setenv("VAE_UPLOAD_DIR", str(tmp_path / "uploads"))
    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 8, 8), latent_dim=3, hidden=(16,))).eval()
    path = str(allowed / "m.safetensors")
    save_checkpoint(path, model, TrainConfig(dataset=tiny_npz, epochs=1))
    job = umap_job.start_umap_process(path)
    assert _finish(job) == 1
    assert job.log_tail() == (
        f"error: {path}: {tiny_npz!r} is outside the data folders this server allows "
        "(VAE_DATA_ROOTS); upload the dataset instead"
    )
    assert not os.path.exists(pc.cache_path_for(path))
