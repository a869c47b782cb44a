"""fit(): the training loop. Seeded, a progress callback, no side effects.

The training set sits as one tensor on the device (uint8 for images, made float per batch) and
each step indexes a batch out of it; a set too large for memory streams from its file instead
(vae_core.batches). Under torchrun each rank trains a DistributedDataParallel copy on its shard of
every global batch; rank 0 evaluates (vae_core.distributed).
"""
from __future__ import annotations

import copy
import math
import os
import shutil
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from . import batches as bt
from . import distributed as ddp
from .config import ModelConfig, TrainConfig
from .data import Dataset, check_for_likelihood, eval_targets
from .estimators import evaluate
from .losses import beta_at, training_loss
from .model import VAE


class TrainingDivergedError(RuntimeError):
    """The loss became NaN/inf. Carries the model restored to its last good epoch."""

    def __init__(self, msg: str, model: VAE, history: list, last_good_epoch: int):
        super().__init__(msg)
        self.model, self.history, self.last_good_epoch = model, history, last_good_epoch


@dataclass
class Progress:
    kind: str              # "step" or "epoch"
    epoch: int             # 1-based epoch in progress (or just finished)
    epochs: int
    step: int              # steps done in this epoch
    steps_per_epoch: int
    loss: float            # last batch loss
    history: list          # epochs finished so far (the epoch's dict is last on "epoch" events)
    model: Optional[VAE] = None  # on "epoch" events: the model being trained, to read under no_grad only

    @property
    def fraction(self) -> float:
        return ((self.epoch - 1) + self.step / max(1, self.steps_per_epoch)) / self.epochs


@dataclass
class FitResult:
    model: VAE
    history: list
    metrics: dict


def _diverged(model: VAE, last_good: dict, history: list, what: str) -> TrainingDivergedError:
    """Restore the last good weights and build the error that reports it."""
    model.load_state_dict(last_good)
    good = len(history)
    return TrainingDivergedError(
        f"training diverged: {what}; stopped, model restored to the end of epoch {good}"
        + (" (initial weights)" if good == 0 else "")
        + ". Try a lower learning rate or a different likelihood.",
        model.cpu().eval(), history, good)


class StepLoss(nn.Module):
    """One step's objective as a module, so DistributedDataParallel and torch.compile wrap one forward.

    forward(x (b, ...), eps (S, b, k), beta, weight) -> (weight * mean loss, summed recon, summed KL).
    weight = W * b / m rescales this rank's mean over b rows to its share of the global batch's
    mean over m rows, once DDP has averaged the gradients over the W ranks.
    """

    def __init__(self, vae: VAE, train_cfg: TrainConfig):
        super().__init__()
        self.vae, self.tc = vae, train_cfg

    def forward(self, x, eps, beta, weight):
        tc = self.tc
        loss, t = training_loss(self.vae, x, objective=tc.objective, beta=beta, free_bits=tc.free_bits,
                                mc_samples=tc.mc_samples, iw_samples=tc.iw_samples,
                                mmd_weight=tc.mmd_weight, eps=eps)
        return loss * weight, t.recon.detach().sum(), t.kl.detach().sum()


def check_options(dev: torch.device, amp: bool, compile: bool) -> None:
    """Refuse the GPU options where they cannot run, before any work."""
    if amp and dev.type not in ("cuda", "cpu"):
        raise ValueError(f"--amp (bf16 autocast) runs on cuda or cpu, not {dev.type}")
    if amp and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"--amp uses bf16, which {torch.cuda.get_device_name(dev)} does not support")
    if compile and dev.type == "cpu" and shutil.which(os.environ.get("CXX", "g++")) is None:
        raise ValueError("--compile on the CPU needs a C++ compiler for torch.compile's inductor "
                         "backend (g++, or $CXX); none was found")


def _plan(n: int, bs: int, world: ddp.World) -> list[tuple[int, slice, float]]:
    """Per step: (global batch size m, this rank's rows of it, its loss weight W * b / m).

    A rank whose share of a short last batch is empty takes row 0 with weight 0: it must still
    join the gradient all-reduce."""
    plan = []
    for s in range(math.ceil(n / bs)):
        m = min(bs, n - s * bs)
        rows = bt.shard(m, world.rank, world.size)
        b = rows.stop - rows.start
        plan.append((m, rows, world.size * b / m) if b else (m, slice(0, 1), 0.0))
    return plan


def fit(model_cfg: ModelConfig, train_cfg: TrainConfig, data: Dataset, *,
        progress: Optional[Callable[[Progress], None]] = None, device: str = "auto",
        final_iw_samples: int = 100, step_every: float = 0.25, world: ddp.World = ddp.SINGLE,
        amp: bool = False, compile: bool = False, data_mode: str = "auto") -> FitResult:
    """Train a VAE from scratch; returns the model (on CPU, eval mode), history and test metrics.

    progress(Progress) is called about every `step_every` seconds and after each epoch; raising
    from it cancels training. A non-finite loss raises TrainingDivergedError; data outside [0, 1]
    for a Bernoulli-type likelihood raises DatasetError before anything is built.
    world: this rank under torchrun (its process group initialised by vae_core.distributed.init);
    rank 0 alone evaluates, the others return empty metrics. amp: bf16 autocast in the training
    step (evaluation stays float32). compile: torch.compile the step. data_mode: auto | resident |
    stream (vae_core.batches). None of these change what is trained, so none is in the cache key;
    they are recorded in metrics["runtime"].
    """
    if tuple(data.input_shape) != tuple(model_cfg.input_shape):
        raise ValueError(f"model input_shape {model_cfg.input_shape} does not match dataset "
                         f"{data.name!r} examples of shape {data.input_shape}")
    check_for_likelihood(data, model_cfg.likelihood, train_cfg.binarize)
    ddp.check_config(train_cfg, world)
    dev = ddp.device_for(world, device)
    check_options(dev, amp, compile)
    tc = train_cfg
    torch.manual_seed(tc.seed)
    noise = bt.StepNoise(tc.seed, dev)  # the same stream on every rank
    model = VAE(model_cfg).to(dev)
    # fused Adam: one kernel per step instead of ~8 per parameter tensor; same update rule
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr, fused=dev.type in ("cpu", "cuda"))
    step = StepLoss(model, tc)
    if world.distributed:
        from torch.nn.parallel import DistributedDataParallel
        step = DistributedDataParallel(step, device_ids=[dev.index] if dev.type == "cuda" else None)
    if compile:
        step = torch.compile(step)

    pixels = data.train_pixels[: tc.max_train or None]
    rows = bt.training_rows(pixels, data.pixels_file, dev, data_mode, data.name)
    x_test = eval_targets(data.x_test, tc.binarize).to(dev) if world.is_main else None
    n, bs = len(pixels), tc.batch_size
    n_noise = tc.iw_samples if tc.objective == "iwae" else tc.mc_samples
    plan = _plan(n, bs, world)
    history: list = []
    last_good = copy.deepcopy(model.state_dict())

    for epoch in range(1, tc.epochs + 1):
        step.train()
        perm = noise.permutation(n)
        index_batches = [perm[s * bs:(s + 1) * bs][rows_s] for s, (_m, rows_s, _w) in enumerate(plan)]
        sums = torch.zeros(4, device=dev)  # loss, recon, kl, count (summed over examples, all ranks)
        t0 = last_report = time.perf_counter()
        for s, xb in enumerate(rows.batches(index_batches)):
            m, rows_s, weight = plan[s]
            beta = beta_at(tc.beta, tc.warmup_epochs, epoch - 1 + s / len(plan))
            xb, eps = bt.step_inputs(noise, xb, m, rows_s, tc.binarize, n_noise, model_cfg.latent_dim)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                loss, recon, kl = step(xb, eps, torch.tensor(beta, device=dev), torch.tensor(weight, device=dev))
            mean_loss = ddp.all_sum(loss.detach().float().clone(), world) / world.size  # the global batch's
            if not torch.isfinite(mean_loss):
                raise _diverged(model, last_good, history, f"loss is {float(mean_loss)} at epoch "
                                f"{epoch}, step {s + 1}/{len(plan)}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            b = float(len(xb)) if weight else 0.0
            sums += torch.stack([loss.detach().float() * m / world.size, recon.float() * (b > 0),
                                 kl.float() * (b > 0), torch.tensor(b, device=dev)])
            now = time.perf_counter()
            if progress is not None and world.is_main and now - last_report >= step_every:
                last_report = now
                progress(Progress("step", epoch, tc.epochs, s + 1, len(plan), float(mean_loss), history))
        tot = ddp.all_sum(sums, world).tolist()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        test = evaluate(model, x_test, iw_samples=0, seed=tc.seed) if world.is_main else None
        finite = test is not None and all(math.isfinite(test[k]) for k in ("elbo", "recon", "kl"))
        if not ddp.broadcast_int(int(finite), world, dev):
            # finite weights can still give a non-finite test ELBO (e.g. saturated logits): not "good"
            raise _diverged(model, last_good, history,
                            f"test ELBO is {test['elbo']} (recon {test['recon']}, KL {test['kl']}) after "
                            f"epoch {epoch}" if test else f"rank 0's test ELBO is not finite after epoch {epoch}")
        entry = {"epoch": epoch, "beta": beta_at(tc.beta, tc.warmup_epochs, epoch),
                 "train_loss": tot[0] / tot[3], "train_recon": tot[1] / tot[3], "train_kl": tot[2] / tot[3],
                 "train_elbo": (tot[1] - tot[2]) / tot[3]}
        if test is not None:
            entry.update({"test_elbo": test["elbo"], "test_recon": test["recon"], "test_kl": test["kl"],
                          "test_kl_per_dim": test["kl_per_dim"], "active_units": test["active_units"]})
        entry.update({"seconds": seconds, "images_per_s": n / seconds})
        history.append(entry)
        last_good = copy.deepcopy(model.state_dict())
        if progress is not None and world.is_main:
            progress(Progress("epoch", epoch, tc.epochs, len(plan), len(plan), float(mean_loss), history, model))

    metrics = {}
    if world.is_main:
        metrics = evaluate(model, x_test, iw_samples=final_iw_samples, seed=tc.seed)
        metrics["runtime"] = {"device": dev.type, "world_size": world.size, "amp": amp, "compile": compile,
                              "data_mode": "stream" if isinstance(rows, bt.StreamedRows) else "resident"}
    return FitResult(model.cpu().eval(), history, metrics)
