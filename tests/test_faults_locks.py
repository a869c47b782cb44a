"""Fault injection with real processes: the training lock under a killed holder, kill -9 during a
save, and the sweep of the leftovers (stale temp and lock files) that killed runs leave.

No timing assumptions: the tests wait for markers a process writes, and for the kernel's own
record of who waits on a lock (/proc/locks); timeouts are hang guards of minutes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from vae_core import cache
from vae_core.checkpoints import load_checkpoint, save_checkpoint
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import _build
from vae_core.model import VAE
from vae_core.train import FitResult

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HANG_GUARD_S = 300
OLD = time.time() - 2 * 3600  # older than fsutil.STALE_AFTER_S

# One trainer: train_or_load with a fit that logs its name, marks that it is training, and waits
# for a release file (or for its death). It prints {"cached": ...} when done.
TRAINER = r"""
import json, os, signal, sys, time
sys.path.insert(0, {repo!r})
signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even when started in the background
import numpy as np, torch
from vae_core import cache
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import _build
from vae_core.model import VAE
from vae_core.train import FitResult

name, folder, work = sys.argv[1:4]
x = (np.arange(40 * 4).reshape(40, 4) * 37 % 256).astype(np.uint8)
data = _build("tiny", x[:32], None, x[32:], None)

def slow_fit(mcfg, tcfg, data, **kw):
    with open(os.path.join(work, "trainings.log"), "a") as fh:
        fh.write(name + "\n")
    open(os.path.join(work, name + ".training"), "w").close()
    while not os.path.exists(os.path.join(work, "release")):
        time.sleep(0.05)
    torch.manual_seed(0)
    return FitResult(VAE(mcfg).eval(), [{{"epoch": 1, "test_elbo": -1.0}}], {{"elbo": -1.0}})

ck, cached = cache.train_or_load(ModelConfig(input_shape=(4,), latent_dim=2, hidden=(3,)),
                                 TrainConfig(dataset="tiny", epochs=1), data, cache_dir=folder, fit=slow_fit)
print(json.dumps({{"name": name, "cached": cached, "path": ck.path}}))
"""


def _wait_for(cond, what: str, procs=()):
    deadline = time.monotonic() + HANG_GUARD_S
    while not cond():
        for p in procs:
            if p.poll() is not None and p.returncode != 0:
                pytest.fail(f"a process died while waiting for {what}: {p.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"hang guard: no {what} after {HANG_GUARD_S} s")
        time.sleep(0.05)


def _blocked_on_a_lock(pid: int) -> bool:
    """The kernel lists `pid` as waiting for a flock (a '->' line of /proc/locks)."""
    with open("/proc/locks") as fh:
        return any(ln.split()[1] == "->" and ln.split()[5] == str(pid) for ln in fh if len(ln.split()) > 5)


def _trainer(script, name, folder, work):
    return subprocess.Popen(
        [sys.executable, script, name, str(folder), str(work)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs Linux /proc/locks to see lock waiters")
@pytest.mark.parametrize("stop_a", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_a_killed_trainer_lets_exactly_one_waiter_train(tmp_path, stop_a):
    """A trains, B waits, A dies, C arrives while B trains: C must wait for B, then load (issue case 12)."""
    folder, work = tmp_path / "ckpts", tmp_path / "work"
    work.mkdir()
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER.format(repo=REPO))
    a = _trainer(script, "A", folder, work)
    _wait_for(lambda: (work / "A.training").exists(), "A training", [a])
    b = _trainer(script, "B", folder, work)
    _wait_for(lambda: _blocked_on_a_lock(b.pid), "B waiting on the lock", [a, b])
    a.send_signal(stop_a)
    a.wait(HANG_GUARD_S)
    _wait_for(lambda: (work / "B.training").exists(), "B training after A died", [b])
    c = _trainer(script, "C", folder, work)
    # the bug: C locks a fresh lock file and trains next to B
    _wait_for(lambda: _blocked_on_a_lock(c.pid) or (work / "C.training").exists(), "C waiting or training", [b, c])
    (work / "release").touch()
    outs = {}
    for p in (b, c):
        out, err = p.communicate(timeout=HANG_GUARD_S)
        assert p.returncode == 0, err
        row = json.loads(out)
        outs[row["name"]] = row
    assert (work / "trainings.log").read_text().split() == ["A", "B"]  # C never trained
    assert (outs["B"]["cached"], outs["C"]["cached"]) == (False, True)
    assert outs["B"]["path"] == outs["C"]["path"]
    assert load_checkpoint(outs["C"]["path"]).metrics == {"elbo": -1.0}
    assert os.listdir(folder) == [os.path.basename(outs["B"]["path"])]  # no lock or temp file left


# kill -9 in the middle of a checkpoint write: the write pauses after half the bytes (injected here,
# in the killed process only) and says so.
HALF_SAVE = r"""
import io, os, sys, time
sys.path.insert(0, {repo!r})
import torch
from vae_core import fsutil
from vae_core.checkpoints import save_checkpoint
from vae_core.config import ModelConfig, TrainConfig
from vae_core.model import VAE

class Stuck(io.FileIO):
    def write(self, b):
        super().write(bytes(b)[: len(b) // 2])
        self.flush()
        open({marker!r}, "w").close()
        time.sleep(3600)

fsutil.open = lambda f, mode="r": Stuck(f, mode.replace("b", ""))
torch.manual_seed(1)
save_checkpoint({path!r}, VAE(ModelConfig(input_shape=(6,), latent_dim=2, hidden=(5,))), TrainConfig())
"""


def _model(seed=0):
    torch.manual_seed(seed)
    return VAE(ModelConfig(input_shape=(6,), latent_dim=2, hidden=(5,))).eval()


def test_kill_9_during_a_save_keeps_the_old_checkpoint_and_the_temp_is_swept_later(tmp_path):
    folder = tmp_path / "ckpts"
    path = save_checkpoint(str(folder / "m.safetensors"), _model(), TrainConfig(), metrics={"elbo": -3.0})
    before = open(path, "rb").read()
    marker = tmp_path / "half-written"
    p = subprocess.Popen(
        [sys.executable, "-c", HALF_SAVE.format(repo=REPO, marker=str(marker), path=path)],
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(marker.exists, "the save half done", [p])
    p.kill()
    p.wait(HANG_GUARD_S)
    assert open(path, "rb").read() == before
    assert load_checkpoint(path).metrics == {"elbo": -3.0}
    temps = [f for f in os.listdir(folder) if f.startswith(".tmp-") and f.endswith(".safetensors")]
    assert len(temps) == 1 and os.path.getsize(folder / temps[0]) > 0  # the half-written leftover
    assert cache.sweep(str(folder)) == []  # fresh: it might still be someone's write
    os.utime(folder / temps[0], (OLD, OLD))
    assert cache.sweep(str(folder)) == [str(folder / temps[0])]
    assert os.listdir(folder) == ["m.safetensors"]


# --- the sweep ----------------------------------------------------------------------------------

HOLD = r"""
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


def _touch(path, old: bool):
    path.write_bytes(b"x")
    if old:
        os.utime(path, (OLD, OLD))
    return str(path)


@pytest.fixture
def holder():
    """holder(path): another process holds an flock on `path` until the test ends."""
    procs = []

    def hold(path):
        p = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        procs.append(p)
        assert p.stdout.readline().strip() == "held"
        return p

    yield hold
    for p in procs:
        p.stdin.close()
        p.wait(HANG_GUARD_S)


def test_sweep_removes_old_unheld_leftovers_and_keeps_fresh_or_held_ones(tmp_path, holder):
    old_tmp = _touch(tmp_path / ".tmp-dead.safetensors", old=True)
    old_lock = _touch(tmp_path / "m.safetensors.lock", old=True)
    old_npz = _touch(tmp_path / ".tmp-dead.npz", old=True)
    fresh_tmp = _touch(tmp_path / ".tmp-fresh.safetensors", old=False)
    fresh_lock = _touch(tmp_path / "n.safetensors.lock", old=False)
    held_lock = _touch(tmp_path / "busy.safetensors.lock", old=True)
    held_tmp = _touch(tmp_path / ".tmp-busy.safetensors", old=True)
    keep = _touch(tmp_path / "old.safetensors", old=True)  # a checkpoint is never a leftover
    holder(held_lock)
    holder(held_tmp)
    assert sorted(cache.sweep(str(tmp_path))) == sorted([old_tmp, old_lock, old_npz])
    assert sorted(os.listdir(tmp_path)) == sorted(
        os.path.basename(p) for p in [fresh_tmp, fresh_lock, held_lock, held_tmp, keep]
    )


def test_sweep_covers_the_lab_subfolder_and_a_missing_folder(tmp_path):
    (tmp_path / "lab").mkdir()
    old = _touch(tmp_path / "lab" / ".tmp-x.safetensors", old=True)
    assert cache.sweep(str(tmp_path)) == [old]
    assert cache.sweep(str(tmp_path / "nope")) == []


def _tiny_data():
    x = (np.arange(40 * 4).reshape(40, 4) * 37 % 256).astype(np.uint8)
    return _build("tiny", x[:32], None, x[32:], None)


def _instant_fit(mcfg, tcfg, data, **kw):
    torch.manual_seed(0)
    return FitResult(VAE(mcfg).eval(), [{"epoch": 1}], {"elbo": -1.0})


def test_train_or_load_sweeps_its_folder_first(tmp_path, holder):
    old_tmp = _touch(tmp_path / ".tmp-dead.safetensors", old=True)
    old_lock = _touch(tmp_path / "gone.safetensors.lock", old=True)
    fresh_tmp = _touch(tmp_path / ".tmp-fresh.safetensors", old=False)
    held = _touch(tmp_path / "busy.safetensors.lock", old=True)
    holder(held)
    ck, cached = cache.train_or_load(
        ModelConfig(input_shape=(4,), latent_dim=2, hidden=(3,)),
        TrainConfig(dataset="tiny", epochs=1),
        _tiny_data(),
        cache_dir=str(tmp_path),
        fit=_instant_fit,
    )
    assert not cached
    left = sorted(os.listdir(tmp_path))
    assert left == sorted([os.path.basename(ck.path), os.path.basename(fresh_tmp), os.path.basename(held)])
    assert not os.path.exists(old_tmp) and not os.path.exists(old_lock)


def test_the_training_lock_is_released_when_fit_raises(tmp_path):
    """An error in training (here: a bug in fit) leaves no lock behind and the next call trains."""
    mcfg, tcfg, data = (
        ModelConfig(input_shape=(4,), latent_dim=2, hidden=(3,)),
        TrainConfig(dataset="tiny"),
        _tiny_data(),
    )

    def broken(*a, **k):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        cache.train_or_load(mcfg, tcfg, data, cache_dir=str(tmp_path), fit=broken)
    assert os.listdir(tmp_path) == []
    ck, cached = cache.train_or_load(mcfg, tcfg, data, cache_dir=str(tmp_path), fit=_instant_fit)
    assert not cached and os.listdir(tmp_path) == [os.path.basename(ck.path)]
