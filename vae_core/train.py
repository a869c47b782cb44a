"""fit(): the training loop. Seeded, a progress callback, no side effects.

Sections: _build (model from a seeded generator, optimiser, rows on the device), _train_epoch
(one pass of optimiser steps), _epoch_entry (the epoch's test ELBO and history entry; a
non-finite one is divergence), _final_metrics (test log p(x)). fit() runs them and reports
vae_core.progress.Progress; it never seeds or reads torch's process-wide generator.

The training set sits as one tensor on the device (uint8 for images, made float per batch) and
each step indexes a batch out of it; a set too large for memory streams from its file instead
(vae_core.batches). Under torchrun each rank trains a DistributedDataParallel copy on its shard of
every global batch; rank 0 evaluates (vae_core.distributed).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from . import batches as bt
from . import distributed as ddp
from .config import ModelConfig, TrainConfig
from .data import check_for_likelihood, eval_targets
from .dataset import Dataset
from .estimators import evaluate
from .losses import beta_at, training_loss
from .model import VAE
from .progress import Progress, ProgressFn


class TrainingDivergedError(RuntimeError):
    """The loss became NaN/inf. Carries the model restored to its last good epoch."""

    def __init__(self, msg: str, model: VAE, history: list, last_good_epoch: int):
        super().__init__(msg)
        self.model, self.history, self.last_good_epoch = model, history, last_good_epoch


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
        model.cpu().eval(),
        history,
        good,
    )


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
        loss, t = training_loss(
            self.vae,
            x,
            objective=tc.objective,
            beta=beta,
            free_bits=tc.free_bits,
            mc_samples=tc.mc_samples,
            iw_samples=tc.iw_samples,
            mmd_weight=tc.mmd_weight,
            eps=eps,
        )
        return loss * weight, t.recon.detach().sum(), t.kl.detach().sum()


def check_options(dev: torch.device, amp: bool, compile: bool) -> None:
    """Refuse the GPU options where they cannot run, before any work."""
    if amp and dev.type not in ("cuda", "cpu"):
        raise ValueError(f"--amp (bf16 autocast) runs on cuda or cpu, not {dev.type}")
    if amp and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"--amp uses bf16, which {torch.cuda.get_device_name(dev)} does not support")
    if compile and dev.type == "cpu" and shutil.which(os.environ.get("CXX", "g++")) is None:
        raise ValueError(
            "--compile on the CPU needs a C++ compiler for torch.compile's inductor "
            "backend (g++, or $CXX); none was found"
        )


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


def init_weights(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """torch's default initialisation of every Linear and (transposed) convolution layer, drawn from
    `generator` instead of the process-wide one, in module order: with generator seeded s this
    gives the same weights as torch.manual_seed(s) before building the model (tests/test_train.py
    checks it). A layer with weights of another kind is refused rather than left on global draws."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.Linear, nn.modules.conv._ConvNd)):
                # kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the bias uses the same bound
                nn.init.kaiming_uniform_(mod.weight, a=math.sqrt(5), generator=generator)
                if mod.bias is not None:
                    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(mod.weight)
                    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                    nn.init.uniform_(mod.bias, -bound, bound, generator=generator)
            elif not isinstance(mod, VAE) and any(True for _ in mod.parameters(recurse=False)):
                # (VAE's own parameter, the learned log sigma, starts at zero: no draw)
                raise TypeError(f"init_weights does not know how to initialise {type(mod).__name__}")
    return model


@dataclass
class _Run:
    """What every epoch of one fit() uses."""

    tc: TrainConfig
    model: VAE
    step: nn.Module  # StepLoss, maybe wrapped by DistributedDataParallel / torch.compile
    opt: torch.optim.Optimizer
    noise: bt.StepNoise  # the run's seeded random numbers (permutations, binarization, eps)
    rows: object  # bt.ResidentRows | bt.StreamedRows
    x_test: torch.Tensor | None  # evaluation targets, on rank 0 only
    plan: list  # _plan(): per step (m, rows, weight)
    n: int  # training examples per epoch
    n_noise: int  # eps samples per example and step
    world: ddp.World
    dev: torch.device
    amp: bool


def _build(
    model_cfg: ModelConfig,
    tc: TrainConfig,
    data: Dataset,
    dev: torch.device,
    world: ddp.World,
    amp: bool,
    compile: bool,
    data_mode: str,
    report: Callable[[Progress], None],
) -> _Run:
    """The model (initialised from a generator seeded tc.seed: fit never touches torch's global
    generator), its optimiser and step, and the training rows on the device."""
    model = init_weights(VAE(model_cfg), torch.Generator().manual_seed(tc.seed)).to(dev)
    # fused Adam: one kernel per step instead of ~8 per parameter tensor; same update rule
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr, fused=dev.type in ("cpu", "cuda"))
    step: nn.Module = StepLoss(model, tc)
    if world.distributed:
        from torch.nn.parallel import DistributedDataParallel

        step = DistributedDataParallel(step, device_ids=[dev.index] if dev.type == "cuda" else None)
    if compile:
        step = torch.compile(step)
    pixels = data.train_pixels[: tc.max_train or None]
    what = f"{len(pixels):,} training examples to the {dev.type} device"
    report(Progress("data", 0, 1, f"moving {what}"))
    rows = bt.training_rows(pixels, data.pixels_file, dev, data_mode, data.name)
    report(Progress("data", 1, 1, f"moved {what}"))
    x_test = eval_targets(data.x_test, tc.binarize).to(dev) if world.is_main else None
    n_noise = tc.iw_samples if tc.objective == "iwae" else tc.mc_samples
    return _Run(
        tc,
        model,
        step,
        opt,
        bt.StepNoise(tc.seed, dev),
        rows,
        x_test,
        _plan(len(pixels), tc.batch_size, world),
        len(pixels),
        n_noise,
        world,
        dev,
        amp,
    )


def _train_epoch(
    run: _Run, epoch: int, last_good: dict, history: list, on_step: Callable[[int, float], None]
) -> tuple[list, float]:
    """One pass over a fresh permutation; on_step(steps done, global batch loss) after each step.
    Returns ([loss, recon, kl, count] each summed over the epoch's examples on all ranks, the
    last global batch's mean loss)."""
    tc, plan, dev, world = run.tc, run.plan, run.dev, run.world
    run.step.train()
    perm = run.noise.permutation(run.n)
    bs = tc.batch_size
    index_batches = [perm[s * bs : (s + 1) * bs][rows_s] for s, (_m, rows_s, _w) in enumerate(plan)]
    sums = torch.zeros(4, device=dev)  # loss, recon, kl, count (summed over examples, all ranks)
    last = math.nan
    for s, xb in enumerate(run.rows.batches(index_batches)):
        m, rows_s, weight = plan[s]
        beta = beta_at(tc.beta, tc.warmup_epochs, epoch - 1 + s / len(plan))
        xb, eps = bt.step_inputs(run.noise, xb, m, rows_s, tc.binarize, run.n_noise, run.model.cfg.latent_dim)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=run.amp):
            loss, recon, kl = run.step(xb, eps, torch.tensor(beta, device=dev), torch.tensor(weight, device=dev))
        mean_loss = ddp.all_sum(loss.detach().float().clone(), world) / world.size  # the global batch's
        if not torch.isfinite(mean_loss):
            raise _diverged(
                run.model, last_good, history, f"loss is {float(mean_loss)} at epoch {epoch}, step {s + 1}/{len(plan)}"
            )
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        b = float(len(xb)) if weight else 0.0
        sums += torch.stack(
            [
                loss.detach().float() * m / world.size,
                recon.float() * (b > 0),
                kl.float() * (b > 0),
                torch.tensor(b, device=dev),
            ]
        )
        last = float(mean_loss)
        on_step(s + 1, last)
    tot = ddp.all_sum(sums, world).tolist()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return tot, last


def _epoch_entry(run: _Run, epoch: int, tot: list, seconds: float, last_good: dict, history: list) -> dict:
    """The history entry of a finished epoch: training sums and, on rank 0, the test ELBO. A
    non-finite test ELBO on rank 0 stops every rank with TrainingDivergedError."""
    tc = run.tc
    test = evaluate(run.model, run.x_test, iw_samples=0, seed=tc.seed) if run.world.is_main else None
    finite = test is not None and all(math.isfinite(test[k]) for k in ("elbo", "recon", "kl"))
    if not ddp.broadcast_int(int(finite), run.world, run.dev):
        # finite weights can still give a non-finite test ELBO (e.g. saturated logits): not "good"
        raise _diverged(
            run.model,
            last_good,
            history,
            f"test ELBO is {test['elbo']} (recon {test['recon']}, KL {test['kl']}) after epoch {epoch}"
            if test
            else f"rank 0's test ELBO is not finite after epoch {epoch}",
        )
    entry = {
        "epoch": epoch,
        "beta": beta_at(tc.beta, tc.warmup_epochs, epoch),
        "train_loss": tot[0] / tot[3],
        "train_recon": tot[1] / tot[3],
        "train_kl": tot[2] / tot[3],
        "train_elbo": (tot[1] - tot[2]) / tot[3],
    }
    if test is not None:
        entry.update(
            {
                "test_elbo": test["elbo"],
                "test_recon": test["recon"],
                "test_kl": test["kl"],
                "test_kl_per_dim": test["kl_per_dim"],
                "active_units": test["active_units"],
            }
        )
    entry.update({"seconds": seconds, "images_per_s": run.n / seconds})
    return entry


def _final_metrics(run: _Run, final_iw_samples: int, compile: bool, report: Callable[[Progress], None]) -> dict:
    """Rank 0's test metrics of the trained model (log p(x) with K = final_iw_samples) and how it ran."""
    if not run.world.is_main:
        return {}
    what = (
        f"test ELBO and log p(x) (K = {final_iw_samples}) of {len(run.x_test):,} examples"
        if final_iw_samples
        else f"test ELBO of {len(run.x_test):,} examples"
    )
    report(Progress("evaluate", 0, 1, f"evaluating the {what}"))
    t0 = time.perf_counter()
    metrics = evaluate(run.model, run.x_test, iw_samples=final_iw_samples, seed=run.tc.seed)
    report(Progress("evaluate", 1, 1, f"evaluated the {what}", seconds=time.perf_counter() - t0))
    metrics["runtime"] = {
        "device": run.dev.type,
        "world_size": run.world.size,
        "amp": run.amp,
        "compile": compile,
        "data_mode": "stream" if isinstance(run.rows, bt.StreamedRows) else "resident",
    }
    return metrics


def fit(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: Dataset,
    *,
    progress: ProgressFn | None = None,
    device: str = "auto",
    final_iw_samples: int = 100,
    step_every: float = 0.25,
    world: ddp.World = ddp.SINGLE,
    amp: bool = False,
    compile: bool = False,
    data_mode: str = "auto",
) -> FitResult:
    """Train a VAE from scratch; returns the model (on CPU, eval mode), history and test metrics.

    progress(Progress) (vae_core.progress: phases "data", "train", "evaluate") is called on rank 0
    about every `step_every` seconds and after each epoch; raising from it cancels training. Every
    random draw comes from generators seeded train_cfg.seed, so two fits running at once in one
    process (two app sessions) each give what they give alone. A non-finite loss raises
    TrainingDivergedError; data outside [0, 1] for a Bernoulli-type likelihood raises DatasetError
    before anything is built.
    world: this rank under torchrun (its process group initialised by vae_core.distributed.init);
    rank 0 alone evaluates, the others return empty metrics. amp: bf16 autocast in the training
    step (evaluation stays float32). compile: torch.compile the step. data_mode: auto | resident |
    stream (vae_core.batches). None of these change what is trained, so none is in the cache key;
    they are recorded in metrics["runtime"].
    """
    if tuple(data.input_shape) != tuple(model_cfg.input_shape):
        raise ValueError(
            f"model input_shape {model_cfg.input_shape} does not match dataset "
            f"{data.name!r} examples of shape {data.input_shape}"
        )
    check_for_likelihood(data, model_cfg.likelihood, train_cfg.binarize)
    ddp.check_config(train_cfg, world)
    dev = ddp.device_for(world, device)
    check_options(dev, amp, compile)

    def report(p: Progress) -> None:
        if progress is not None and world.is_main:
            progress(p)

    run = _build(model_cfg, train_cfg, data, dev, world, amp, compile, data_mode, report)
    epochs, steps = train_cfg.epochs, len(run.plan)
    history: list = []
    last_good = copy.deepcopy(run.model.state_dict())
    t_start = last_report = time.perf_counter()

    def train_progress(epoch: int, step: int, loss: float, message: str) -> Progress:
        return Progress(
            "train",
            (epoch - 1) * steps + step,
            epochs * steps,
            message,
            time.perf_counter() - t_start,
            epoch,
            epochs,
            loss,
            tuple(history),
        )

    def on_step(epoch: int, step: int, loss: float) -> None:
        nonlocal last_report
        now = time.perf_counter()
        if now - last_report >= step_every:
            last_report = now
            report(train_progress(epoch, step, loss, f"epoch {epoch} of {epochs} · batch loss {loss:.2f}"))

    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        tot, loss = _train_epoch(run, epoch, last_good, history, functools.partial(on_step, epoch))
        history.append(_epoch_entry(run, epoch, tot, time.perf_counter() - t0, last_good, history))
        last_good = copy.deepcopy(run.model.state_dict())
        elbo = history[-1].get("test_elbo")
        done = train_progress(
            epoch,
            steps,
            loss,
            f"epoch {epoch} of {epochs} done" + (f" · test ELBO {elbo:.2f}" if elbo is not None else ""),
        )
        report(dataclasses.replace(done, model=run.model))  # epoch end: recorders (vae_core.replay) read it

    metrics = _final_metrics(run, final_iw_samples, compile, report)
    return FitResult(run.model.cpu().eval(), history, metrics)
