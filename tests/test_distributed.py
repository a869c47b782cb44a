"""torchrun data parallelism on the CPU (gloo, 2 processes): the same gradient, the same training,
one checkpoint, and a dead rank that stops the job instead of hanging it.

Each test starts real torchrun processes (no mocks); timeouts are hang guards, never speed limits.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from vae_core.batches import shard
from vae_core.distributed import SINGLE, World, check_config, world_from_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HANG_GUARD_S = 600
TRAIN = [
    "--dataset",
    "digits",
    "--hidden",
    "64",
    "--latent-dim",
    "4",
    "--epochs",
    "3",
    "--batch-size",
    "64",
    "--final-iw-samples",
    "10",
    "--quiet",
]


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _torchrun(nproc: int, *args: str, **kw) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--standalone", *args]


def _train(nproc: int, cache: str, *extra: str) -> dict:
    cmd = _torchrun(nproc, "-m", "vae_core") if nproc > 1 else [sys.executable, "-m", "vae_core"]
    r = subprocess.run(
        [*cmd, "train", *TRAIN, "--cache-dir", cache, *extra],
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, r.stdout  # rank 0 alone prints the result
    return json.loads(lines[0])


# --- pure pieces ---------------------------------------------------------------------------------


def test_shards_cover_every_row_once_and_differ_by_at_most_one():
    for m in (1, 2, 3, 10, 64, 65):
        for w in (1, 2, 3, 8):
            parts = [shard(m, r, w) for r in range(w)]
            rows = [i for p in parts for i in range(m)[p]]
            assert rows == list(range(m))
            sizes = [p.stop - p.start for p in parts]
            assert max(sizes) - min(sizes) <= 1


def test_world_from_env_and_config_checks():
    assert world_from_env({}) == SINGLE
    w = world_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert w == World(1, 2, 1) and w.distributed and not w.is_main
    from vae_core.config import ConfigError, TrainConfig

    check_config(TrainConfig(batch_size=63), SINGLE)  # one process takes any batch size
    with pytest.raises(ConfigError, match="--batch-size 63 is the global batch and must split evenly over the 2 ranks"):
        check_config(TrainConfig(batch_size=63), w)
    with pytest.raises(ConfigError, match="--objective mmd .* Train it on one process"):
        check_config(TrainConfig(objective="mmd"), w)
    with pytest.raises(ConfigError, match="--free-bits .* Train it on one process"):
        check_config(TrainConfig(free_bits=0.5), w)


def test_a_broken_collective_is_summarised_in_one_sentence():
    from vae_core.distributed import failure_summary, is_group_failure

    e = RuntimeError(
        "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error "
        "[127.0.0.1]:46790: Connection reset by peer. This is typically caused by a remote worker "
        "hanging or bugs in the application.\nmore lines"
    )
    assert failure_summary(e) == "Read error [127.0.0.1]:46790: Connection reset by peer."
    assert is_group_failure(e) and not is_group_failure(RuntimeError("shape mismatch"))


# --- (a) the gradient ------------------------------------------------------------------------------


def test_two_rank_gradient_equals_the_one_process_gradient_of_the_global_batch(tmp_path):
    """Steps of 10 rows (5 + 5), of 3 rows (1 + 2: unequal shards, weighted) and of 1 row (rank 0
    empty: weight 0), conv VAE, dynamic binarization, 2 MC samples, float64: DDP's averaged gradient
    is the global batch's to 1e-6."""
    worker = os.path.join(ROOT, "tests", "ddp_grad_worker.py")
    out = {}
    for w in (1, 2):
        path = str(tmp_path / f"grads{w}.pt")
        r = subprocess.run(
            _torchrun(w, worker, path), env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S
        )
        assert r.returncode == 0, r.stderr[-3000:]
        out[w] = torch.load(path, weights_only=True)
    assert out[2]["ranks_equal"]
    assert len(out[1]["grads"]) == len(out[2]["grads"]) == 4
    for g1, g2 in zip(out[1]["grads"], out[2]["grads"]):
        for a, b in zip(g1, g2):
            assert a.abs().max() > 0
            torch.testing.assert_close(b, a, rtol=0, atol=1e-6)


# --- (b) + (c) the CLI under torchrun --------------------------------------------------------------


@pytest.mark.slow
def test_two_ranks_train_what_one_process_trains_and_share_its_cache_entry(tmp_path):
    one = _train(1, str(tmp_path / "one"))
    two = _train(2, str(tmp_path / "two"))
    assert not one["cached"] and not two["cached"]
    assert abs(two["test_elbo"] - one["test_elbo"]) < 1.0  # the bar; in fact equal to float noise
    assert two["test_elbo"] == pytest.approx(one["test_elbo"], abs=1e-3)
    assert os.path.basename(two["checkpoint"]) == os.path.basename(one["checkpoint"])  # same key
    from vae_core.checkpoints import load_checkpoint, read_metadata

    h1, h2 = read_metadata(one["checkpoint"])["history"], read_metadata(two["checkpoint"])["history"]
    for e1, e2 in zip(h1, h2, strict=True):  # every epoch's numbers, train (summed over ranks) and test
        for k in ("train_loss", "train_recon", "train_kl", "test_elbo", "test_kl"):
            assert e2[k] == pytest.approx(e1[k], rel=1e-4), (e1["epoch"], k)
    # a 2-rank run is a cache hit for the 1-process run of the same config, and the other way round
    assert _train(1, str(tmp_path / "two"))["cached"]
    assert _train(2, str(tmp_path / "one"))["cached"]
    # rank 0 alone wrote: one checkpoint (+ the app's projection cache), no lock, no temp file
    names = sorted(os.listdir(tmp_path / "two"))
    assert [n for n in names if n.endswith(".safetensors")] == [os.path.basename(two["checkpoint"])]
    assert not [n for n in names if n.endswith(".lock") or n.startswith(".tmp-")], names
    load_checkpoint(two["checkpoint"], map_location="cpu")  # strict: no DDP "module." prefix in the weights
    meta = read_metadata(two["checkpoint"])
    assert meta["metrics"]["runtime"]["world_size"] == 2 and meta["train_config"]["batch_size"] == 64


class _LongRun:
    """torchrun training 1000 epochs; start() returns once rank 0 reports a finished epoch."""

    def __init__(self, tmp_path, timeout_s: int):
        self.cmd = _torchrun(2, "-m", "vae_core") + [
            "train",
            *[a for a in TRAIN if a != "--quiet"],
            "--epochs",
            "1000",
            "--cache-dir",
            str(tmp_path),
            "--dist-timeout",
            str(timeout_s),
        ]
        self.err: list[str] = []

    def __enter__(self):
        self.p = subprocess.Popen(
            self.cmd, env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.reader = threading.Thread(
            target=lambda: self.err.extend(iter(lambda: self.p.stderr.read(1), "")), daemon=True
        )
        self.reader.start()
        deadline = time.monotonic() + HANG_GUARD_S
        while "test_elbo" not in "".join(self.err):  # rank 0's progress bar: an epoch is done
            assert self.p.poll() is None and time.monotonic() < deadline, "".join(self.err)[-3000:]
            time.sleep(0.2)
        self.rank1 = _child_with_env(self.p.pid, b"RANK=1")
        return self

    def wait(self) -> tuple[int, str]:
        rc = self.p.wait(timeout=HANG_GUARD_S)
        self.reader.join(timeout=10)
        return rc, "".join(self.err)

    def __exit__(self, *exc):
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.rank1, signal.SIGKILL)
        if self.p.poll() is None:
            self.p.kill()


@pytest.mark.slow
def test_a_killed_rank_stops_the_job_with_a_clear_message(tmp_path):
    with _LongRun(tmp_path, 120) as run:
        os.kill(run.rank1, signal.SIGKILL)
        rc, text = run.wait()
    assert rc != 0
    # rank 0 says what happened in one line (the group broke, or torchrun stopped it), and
    # torchrun's summary names the killed rank as the root cause
    assert (
        "error: rank 0: the process group failed: another rank died" in text
        or "error: rank 0: stopped by SIGTERM" in text
        or "Signal 15 (SIGTERM) received by PID" in text
    ), text[-3000:]
    assert "Root Cause" in text and "Signal 9 (SIGKILL)" in text, text[-3000:]
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".safetensors")]


@pytest.mark.slow
def test_a_hung_rank_makes_the_others_give_up_after_the_timeout(tmp_path):
    """SIGSTOP: the rank is alive (torchrun sees nothing wrong) but never answers; rank 0 must
    leave its all-reduce after --dist-timeout seconds with one clear line, not wait forever."""
    # 20 s: the run is past its first epoch (set-up done), and a timeout firing early ends the run the same way
    with _LongRun(tmp_path, 20) as run:
        os.kill(run.rank1, signal.SIGSTOP)
        rc, text = run.wait()
    assert rc != 0
    assert "error: rank 0: the process group failed: another rank died, was stopped or timed out" in text, text[-3000:]


def _child_with_env(parent: int, entry: bytes) -> int:
    for pid in open(f"/proc/{parent}/task/{parent}/children").read().split():
        with open(f"/proc/{pid}/environ", "rb") as fh:
            if entry in fh.read().split(b"\0"):
                return int(pid)
    raise AssertionError(f"no child of {parent} has {entry!r}")
