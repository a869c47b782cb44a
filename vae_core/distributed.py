"""torchrun data parallelism: the process group, what each rank does, and failures that stop all ranks.

`torchrun --nproc_per_node N -m vae_core train ...` starts N copies of the CLI with RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set. Each joins one process group (nccl on
CUDA, gloo on CPU) and trains a DistributedDataParallel copy of the model on its rows of every
global batch (vae_core.batches). Rank 0 alone checks the cache, writes the checkpoint and prints;
it tells the other ranks whether there is anything to train (`announce` / `wait_for_announce`).

--batch-size is the global batch: each of W ranks takes batch_size / W rows of it. The cache key
therefore does not depend on W, and a run on W ranks is a cache hit for the same config on any
other number of ranks (they are the same training: see vae_core.batches).
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from .config import ConfigError, TrainConfig
from .device import pick_device

DEFAULT_TIMEOUT_S = 600.0  # a collective that waits this long for a rank raises instead of hanging
TRAIN, CACHED = 1, 0  # what rank 0 announces


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


SINGLE = World()


def world_from_env(env=os.environ) -> World:
    """The World torchrun describes in the environment; one process when it does not."""
    if "WORLD_SIZE" not in env:
        return SINGLE
    return World(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))


def device_for(world: World, requested: str) -> torch.device:
    """This rank's device: cuda:LOCAL_RANK under torchrun on CUDA, else what pick_device gives."""
    dev = pick_device(requested)
    if not world.distributed:
        return dev
    if dev.type == "cuda":
        return torch.device("cuda", world.local_rank if dev.index is None else dev.index)
    if dev.type != "cpu":
        raise ValueError(f"torchrun training runs on CUDA (nccl) or the CPU (gloo), not {dev.type}")
    return dev


def check_config(train_cfg: TrainConfig, world: World) -> None:
    """Refuse what W ranks cannot train as one process would (clear ConfigError, before any work)."""
    if not world.distributed:
        return
    if train_cfg.batch_size % world.size:
        raise ConfigError(
            f"--batch-size {train_cfg.batch_size} is the global batch and must split evenly "
            f"over the {world.size} ranks (use a multiple of {world.size})"
        )
    if train_cfg.objective == "mmd":
        raise ConfigError(
            "--objective mmd compares the batch's codes with the prior as a whole; on "
            f"{world.size} ranks each would see only its shard. Train it on one process"
        )
    if train_cfg.free_bits > 0:
        raise ConfigError(
            "--free-bits floors the batch-averaged KL per dimension; on "
            f"{world.size} ranks each would average only its shard. Train it on one process"
        )


class GroupFailure(RuntimeError):
    """A collective failed: another rank died, was stopped or did not answer within the timeout."""


def rank_prefix(env=os.environ) -> str:
    """'rank R: ' under torchrun (every rank may print an error), '' for one process."""
    w = world_from_env(env)
    return f"rank {w.rank}: " if w.distributed else ""


class RankStopped(Exception):
    """torchrun (or a user) sent SIGTERM: another rank failed or the job was cancelled."""


def _on_sigterm(signum, frame):
    raise RankStopped("stopped by SIGTERM (torchrun stops every rank when one fails)")


def init(world: World, requested_device: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> torch.device:
    """Join the process group (a no-op for one process); returns this rank's device."""
    dev = device_for(world, requested_device)
    if not world.distributed:
        return dev
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    signal.signal(signal.SIGTERM, _on_sigterm)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=timedelta(seconds=timeout_s))
    return dev


def shutdown(world: World, *, wait_for_all: bool = False) -> None:
    """Leave the process group. wait_for_all (the normal end of a job, every rank alive): first meet the
    other ranks at a barrier. Without it a rank that leaves early closes its gloo connections while another
    rank still uses them, and that rank can abort in C++ ("terminate called without an active exception",
    SIGABRT; seen in tests/test_distributed.py). Not after a failure: the barrier would wait for a dead
    rank until the timeout."""
    if world.distributed and dist.is_initialized():
        if wait_for_all:
            try:
                dist.barrier()
            except (RuntimeError, dist.DistError):  # a rank failed after all: leave as after a failure
                pass
        dist.destroy_process_group()


def broadcast_int(value: int, world: World, device: torch.device) -> int:
    """Rank 0's value, on every rank."""
    if not world.distributed:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return int(t.item())


def all_sum(t: torch.Tensor, world: World) -> torch.Tensor:
    """Sum of t over ranks (in place), or t itself on one process."""
    if world.distributed:
        dist.all_reduce(t)
    return t


def announce(decision: int, world: World, device: torch.device) -> None:
    """Rank 0 tells the others TRAIN (a cache miss) or CACHED (nothing to do)."""
    broadcast_int(decision, world, device)


def wait_for_announce(world: World, device: torch.device) -> int:
    return broadcast_int(-1, world, device)


def failure_summary(e: BaseException) -> str:
    """The first sentence of a collective's error, without the C++ source location."""
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    first = re.sub(r"\[[^\]]*\.(?:cc|cpp|h):\d+\]\s*", "", first)
    return first.split(" This is typically")[0][:300]


def is_group_failure(e: BaseException) -> bool:
    """A collective failed because another rank died, hung or closed its connection."""
    return isinstance(e, dist.DistError) or (
        isinstance(e, RuntimeError)
        and any(s in str(e) for s in ("Connection closed", "Timed out", "Connection reset", "gloo", "NCCL"))
    )
