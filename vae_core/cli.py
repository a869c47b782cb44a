"""Command line: python -m vae_core {train,evaluate,list} ... (each with --help).

Every failure is one `error: ...` line on stderr and a non-zero exit (2: bad usage, 1: anything
else, 130: interrupted), never a traceback. stdout holds only valid JSON (or the list's table).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys

from . import likelihoods
from .config import (
    ARCHS,
    BINARIZE,
    LIKELIHOODS,
    MAX_EVAL_SAMPLES,
    OBJECTIVES,
    SIGMA_MODES,
    ConfigError,
    ModelConfig,
    TrainConfig,
    parse_hidden,
)


def _widths(name: str):
    """argparse type: config.parse_hidden (a usage error, exit 2, otherwise)."""

    def parse(s: str) -> tuple[int, ...]:
        try:
            return parse_hidden(s, name)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


def _int_in(lo: int, hi: int | None = None):
    """argparse type: an int in [lo, hi] (a usage error, exit 2, otherwise)."""

    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {s!r}") from None
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"must be {f'in [{lo}, {hi}]' if hi is not None else f'>= {lo}'}, got {v}")
        return v

    return parse


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line: the full train usage is 20 lines that bury the actual error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_train_data_args(t: argparse.ArgumentParser) -> None:
    """train: where the dataset comes from."""
    d = TrainConfig()
    t.add_argument(
        "--dataset",
        default=d.dataset,
        help="mnist-5k, digits, mnist, fashion-mnist, kmnist, cifar10, a .npz file or an image folder",
    )
    t.add_argument("--data-root", default=None, help="folder holding torchvision datasets")
    t.add_argument("--download", action="store_true", help="allow torchvision to download the dataset")


def _add_train_model_args(t: argparse.ArgumentParser) -> None:
    """train: the model architecture and likelihood."""
    m = ModelConfig()
    t.add_argument("--arch", choices=ARCHS, default=m.arch)
    t.add_argument("--latent-dim", type=int, default=m.latent_dim)
    t.add_argument(
        "--hidden",
        type=_widths("hidden widths"),
        default=m.hidden,
        help="hidden widths, comma-separated; '' for a linear encoder and decoder",
    )
    t.add_argument("--conv-channels", type=_widths("conv channels"), default=m.conv_channels)
    t.add_argument("--likelihood", choices=LIKELIHOODS, default=m.likelihood)
    t.add_argument("--sigma", type=float, default=m.sigma, help="fixed sigma of the 'gaussian' likelihood")
    t.add_argument(
        "--sigma-mode", choices=SIGMA_MODES, default=m.sigma_mode, help="gaussian-learned: one sigma or one per pixel"
    )


def _add_train_objective_args(t: argparse.ArgumentParser) -> None:
    """train: the objective and its options, and the targets' binarization."""
    d = TrainConfig()
    t.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default=d.objective,
        help="elbo; iwae (K = --iw-samples); mmd (InfoVAE, --mmd-weight); ae (plain autoencoder). "
        "--beta, --warmup and --free-bits apply to elbo only, --mc-samples to elbo and mmd: "
        "the other objectives refuse them (error) instead of ignoring them",
    )
    t.add_argument("--beta", type=float, default=d.beta, help="KL weight (elbo)")
    t.add_argument("--warmup", type=float, default=d.warmup_epochs, help="KL warm-up epochs (elbo)")
    t.add_argument("--free-bits", type=float, default=d.free_bits, help="min KL per latent dim, nats (elbo)")
    t.add_argument("--mc-samples", type=int, default=d.mc_samples, help="L samples for the recon term (elbo, mmd)")
    t.add_argument("--iw-samples", type=int, default=d.iw_samples, help="K for --objective iwae")
    t.add_argument("--mmd-weight", type=float, default=d.mmd_weight, help="lambda for --objective mmd")
    t.add_argument(
        "--binarize",
        choices=BINARIZE,
        default=None,
        help="targets: grey levels (none), x>0.5 (fixed), or resampled each epoch (dynamic). "
        "Default: " + ", ".join(f"{lk.binarize_default} for {lk.name}" for lk in likelihoods.REGISTRY.values()),
    )


def _add_train_run_args(t: argparse.ArgumentParser) -> None:
    """train: optimiser, split, device, outputs and performance switches."""
    d = TrainConfig()
    t.add_argument("--epochs", type=int, default=d.epochs)
    t.add_argument("--batch-size", type=int, default=d.batch_size)
    t.add_argument("--lr", type=float, default=d.lr)
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--test-fraction", type=float, default=d.test_fraction)
    t.add_argument("--max-train", type=int, default=d.max_train, help="0 = all training examples")
    t.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, ...")
    t.add_argument("--cache-dir", default=None, help="checkpoint cache folder (default: checkpoints/)")
    t.add_argument(
        "--final-iw-samples",
        type=_int_in(0, MAX_EVAL_SAMPLES),
        default=100,
        help="K for the test log p(x) stored with the checkpoint",
    )
    t.add_argument("--out", default=None, help="also copy the checkpoint to this path")
    t.add_argument(
        "--umap",
        action="store_true",
        help="also fit the UMAP map for the app now (~30 s of numba JIT); by default only the "
        "encoder means are cached and the app shows PCA until it computes UMAP",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument(
        "--replay",
        action="store_true",
        help="record a training replay (test-set map, decoded grid, KL per dim, ELBO terms per "
        "epoch; <= 10 MB) beside the checkpoint as <name>.replay.npz, for the app's Replay page",
    )
    t.add_argument(
        "--data-mode",
        choices=("auto", "resident", "stream"),
        default="auto",
        help="training rows held whole on the device (uint8 for images), or streamed from "
        "their memory-mapped file by DataLoader workers; auto streams a file-backed set "
        "larger than half the free memory",
    )
    t.add_argument("--amp", action="store_true", help="bf16 autocast in the training step (cuda, cpu)")
    t.add_argument("--compile", action="store_true", help="torch.compile the training step")
    t.add_argument(
        "--dist-timeout",
        type=float,
        default=600.0,
        help="under torchrun: seconds a rank waits for the others before it gives up",
    )


def _add_train_args(t: argparse.ArgumentParser) -> None:
    """The train subcommand's arguments, in help order."""
    _add_train_data_args(t)
    _add_train_model_args(t)
    _add_train_objective_args(t)
    _add_train_run_args(t)


def _add_evaluate_args(e: argparse.ArgumentParser) -> None:
    """The evaluate subcommand's arguments."""
    e.add_argument("checkpoint")
    e.add_argument(
        "--iw-samples",
        type=_int_in(0, MAX_EVAL_SAMPLES),
        default=1000,
        help="K for importance-sampled log p(x); 0 skips",
    )
    e.add_argument(
        "--mc-samples",
        type=_int_in(1, MAX_EVAL_SAMPLES),
        default=1,
        help="L samples of z per example for the ELBO, with --iw-samples 0 only: otherwise the "
        "ELBO comes from the same K draws as log p(x)",
    )
    e.add_argument("--n", type=_int_in(0), default=0, help="evaluate the first N test examples (0 = all)")
    e.add_argument("--data-root", default=None)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="auto")


def _add_list_args(ls: argparse.ArgumentParser) -> None:
    """The list subcommand's arguments."""
    ls.add_argument("--cache-dir", default=None)
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")


def build_parser() -> argparse.ArgumentParser:
    """The command line: train, evaluate, export-html and list, each adding its own arguments."""
    p = _Parser(prog="python -m vae_core", description="Train and evaluate Gaussian VAEs.")
    sub = p.add_subparsers(dest="cmd", required=True)
    _add_train_args(
        sub.add_parser(
            "train",
            help="train a model (or load it from the cache if already trained)",
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
    )
    _add_evaluate_args(
        sub.add_parser(
            "evaluate",
            help="evaluate a checkpoint on its test set; prints one JSON object",
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
    )
    from .export_html import add_arguments as export_html_arguments

    export_html_arguments(
        sub.add_parser(
            "export-html",
            help="write a serverless explorer of a checkpoint: one self-contained HTML file",
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
    )
    _add_list_args(sub.add_parser("list", help="list cached checkpoints with their configs and test ELBO"))
    return p


def _non_finite(d: dict) -> list[str]:
    """Keys of d whose number (or list of numbers) is NaN or inf: json.dumps would print NaN."""
    bad = lambda v: isinstance(v, float) and not math.isfinite(v)
    return [k for k, v in d.items() if bad(v) or (isinstance(v, list) and any(bad(x) for x in v))]


def _warn(msg: str) -> None:
    print(f"warning: {_one_line(msg)}", file=sys.stderr)


def _train(a) -> int:
    """One process, or one rank under torchrun (see vae_core.distributed): rank 0 alone uses the
    cache, saves and prints; the other ranks train when it tells them to and exit quietly."""
    from . import distributed as ddp

    world = ddp.world_from_env()
    dev = ddp.init(world, a.device, a.dist_timeout)
    done = False
    try:
        code = _train_rank(a, world, dev)
        done = True
        return code
    except Exception as e:
        if world.distributed and ddp.is_group_failure(e):
            raise ddp.GroupFailure(
                f"the process group failed: another rank died, was stopped or timed out ({ddp.failure_summary(e)})"
            ) from None
        raise
    finally:
        ddp.shutdown(world, wait_for_all=done)


def _train_configs(a):
    """train: (model config, train config, data) from the parsed arguments, objective options checked first."""
    from .data import load_dataset
    from .losses import check_objective_options

    binarize = likelihoods.get(a.likelihood).binarize_for(a.binarize)
    tcfg = TrainConfig(
        dataset=a.dataset,
        epochs=a.epochs,
        batch_size=a.batch_size,
        lr=a.lr,
        seed=a.seed,
        objective=a.objective,
        beta=a.beta,
        warmup_epochs=a.warmup,
        free_bits=a.free_bits,
        mc_samples=a.mc_samples,
        iw_samples=a.iw_samples,
        mmd_weight=a.mmd_weight,
        binarize=binarize,
        test_fraction=a.test_fraction,
        max_train=a.max_train,
    )
    check_objective_options(tcfg)
    data = load_dataset(a.dataset, data_root=a.data_root, download=a.download, test_fraction=a.test_fraction)
    mcfg = ModelConfig(
        input_shape=data.input_shape,
        latent_dim=a.latent_dim,
        arch=a.arch,
        hidden=a.hidden,
        conv_channels=a.conv_channels,
        likelihood=a.likelihood,
        sigma=a.sigma,
        sigma_mode=a.sigma_mode,
    )
    return mcfg, tcfg, data


def _progress_bar(a, tcfg):
    """train: the tqdm epoch bar (None with --quiet) and the progress callback that advances it."""
    bar = None
    if not a.quiet:
        from tqdm import tqdm

        bar = tqdm(total=tcfg.epochs, unit="epoch", file=sys.stderr)

    def progress(ev):
        if bar is not None and ev.phase == "train" and len(ev.history) > bar.n:  # an epoch has ended
            h = ev.history[-1]
            bar.update(len(ev.history) - bar.n)
            bar.set_postfix(
                test_elbo=f"{h['test_elbo']:.2f}", kl=f"{h['test_kl']:.2f}", img_s=f"{h['images_per_s']:.0f}"
            )

    return bar, progress


def _after_training(a, mcfg, tcfg, data, progress):
    """train: the --replay recorder (or None), progress wrapped to feed it, and the on_trained hook."""
    recorder = None
    if a.replay:
        from .data import eval_targets
        from .replay import ReplayRecorder

        recorder = ReplayRecorder(
            eval_targets(data.x_test, tcfg.binarize), data.y_test, tcfg.epochs, mcfg.latent_dim, seed=tcfg.seed
        )
        progress = recorder.wrap(progress)

    def save_map(ck):
        if recorder is not None:
            _save_replay(ck, recorder)
        # the app's latent map opens at once on a fresh model: means (+ UMAP) cached beside the checkpoint
        from .projection_build import save_map_cache

        problem = save_map_cache(ck, data, with_umap=a.umap)
        if problem is not None:
            _warn(problem)

    return recorder, progress, save_map


def _print_train_result(a, ckpt, cached, mcfg, tcfg) -> None:
    """train: copy to --out, then print the one JSON result line (non-finite numbers as null, with a warning)."""
    from .data import target_description

    if a.out:
        shutil.copyfile(ckpt.path, a.out)
    m = ckpt.metrics
    out = {
        "checkpoint": ckpt.path,
        "cached": cached,
        "test_elbo": m.get("elbo"),
        "test_recon": m.get("recon"),
        "test_kl": m.get("kl"),
        "test_log_likelihood": m.get("log_likelihood"),
        "iw_samples": m.get("iw_samples"),
        "active_units": m.get("active_units"),
        "target": target_description(mcfg.likelihood, tcfg.binarize),
    }
    bad = _non_finite(out)
    if bad:  # the model is trained and cached: report it, with null for the numbers that overflowed
        _warn(f"{ckpt.path}: {', '.join(bad)} not finite (printed as null)")
        out.update({k: None for k in bad})
    print(json.dumps(out, allow_nan=False))


def _train_rank(a, world, dev) -> int:
    """train on one rank: the main rank trains (or loads) and reports; the others join its fit."""
    from . import distributed as ddp
    from .cache import train_or_load
    from .train import fit

    mcfg, tcfg, data = _train_configs(a)
    ddp.check_config(tcfg, world)
    fit_options = dict(world=world, amp=a.amp, compile=a.compile, data_mode=a.data_mode)
    if not world.is_main:
        if ddp.wait_for_announce(world, dev) == ddp.TRAIN:
            fit(mcfg, tcfg, data, device=a.device, final_iw_samples=0, **fit_options)
        return 0

    def trainer(*args, **kwargs):
        ddp.announce(ddp.TRAIN, world, dev)
        return fit(*args, **kwargs, **fit_options)

    bar, progress = _progress_bar(a, tcfg)
    recorder, progress, save_map = _after_training(a, mcfg, tcfg, data, progress)
    try:
        ckpt, cached = train_or_load(
            mcfg,
            tcfg,
            data,
            cache_dir=a.cache_dir,
            progress=progress,
            device=a.device,
            final_iw_samples=a.final_iw_samples,
            on_trained=save_map,
            fit=trainer,
        )
        if cached:
            ddp.announce(ddp.CACHED, world, dev)
            if recorder is not None:
                _warn(f"{ckpt.path} was cached, so no replay was recorded; delete it to retrain with --replay")
    finally:
        if bar is not None:
            bar.close()
    _print_train_result(a, ckpt, cached, mcfg, tcfg)
    return 0


def _save_replay(ck, recorder) -> None:
    """Write the replay beside a freshly saved checkpoint; a failure is a warning (the model is saved)."""
    from .replay import replay_meta, replay_path, save_replay

    try:
        meta = replay_meta(ck.path, ck.model_config.to_dict(), ck.train_config.to_dict(), "recorded", ck.metrics)
        save_replay(replay_path(ck.path), recorder.arrays(meta))
    except (ValueError, OSError) as e:
        _warn(f"the model is cached, but its training replay was not saved ({e})")


def _evaluate(a) -> int:
    """Non-finite results are an error (exit 1), not NaN in the JSON: they mean the model's outputs
    overflow on this data, and no number printed would be meaningful."""
    from .checkpoints import load_checkpoint
    from .data import eval_targets, load_dataset, target_description
    from .device import pick_device
    from .estimators import evaluate

    dev = pick_device(a.device)
    ck = load_checkpoint(a.checkpoint, map_location=dev)
    tc = ck.train_config
    data = load_dataset(tc.dataset, data_root=a.data_root, test_fraction=tc.test_fraction)
    fp = ck.dataset.get("fingerprint")
    if fp and fp != data.fingerprint:
        print(
            f"warning: dataset {tc.dataset!r} differs from the one this checkpoint was trained on "
            f"(fingerprint {data.fingerprint} != {fp})",
            file=sys.stderr,
        )
    x = eval_targets(data.x_test, tc.binarize)
    if a.n:
        x = x[: a.n]
    res = evaluate(ck.model, x, iw_samples=a.iw_samples, mc_samples=a.mc_samples, seed=a.seed)
    bad = _non_finite(res)
    if bad:
        raise ValueError(
            f"{a.checkpoint}: evaluation gave non-finite values ({', '.join(bad)}): the model's "
            f"outputs overflow on this data"
        )
    res["target"] = target_description(ck.model_config.likelihood, tc.binarize)
    res["checkpoint"] = a.checkpoint
    print(json.dumps(res, allow_nan=False))
    return 0


def _text(s: str) -> str:
    """A stored or file-system string made safe for one terminal line (no newlines, escapes, lone
    surrogates): a crafted dataset name cannot forge lines of the listing."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


def _one_line(msg: str) -> str:
    return " ".join(str(msg).split())


def _list(a) -> int:
    from .cache import default_cache_dir, list_checkpoints

    rows = list_checkpoints(a.cache_dir)
    if a.json:
        print(json.dumps(rows, allow_nan=False))  # headers are checked: no NaN, no wrong types
        return 0
    if not rows:
        print(f"no checkpoints in {_text(a.cache_dir or default_cache_dir())}")
    for r in rows:
        path = r["path"]
        if "error" in r:  # one line: the file, marked, and why (the reason without its path prefix)
            reason = r["error"][len(path) + 2 :] if r["error"].startswith(path + ": ") else r["error"]
            print(f"{_text(path)}: UNREADABLE: {_text(reason)}")
            continue
        mc, tc = r["model_config"], r["train_config"]
        elbo = r["test_elbo"]
        print(
            f"{_text(path)}\n  {_text(tc['dataset'])} {mc['arch']} hidden={mc['hidden']} z={mc['latent_dim']} "
            f"{mc['likelihood']} binarize={tc['binarize']} objective={tc['objective']} beta={tc['beta']} "
            f"epochs={tc['epochs']} seed={tc['seed']}\n  test ELBO "
            + (f"{elbo:.2f} nats" if elbo is not None else "n/a")
            + (f", log p(x) {r['log_likelihood']:.2f}" if r.get("log_likelihood") is not None else "")
        )
    return 0


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    prefix = ""
    if a.cmd == "train":  # under torchrun every rank may print an error (distributed imports torch)
        from .distributed import rank_prefix

        prefix = rank_prefix()
    try:
        from .export_html import run as _export_html

        return {"train": _train, "evaluate": _evaluate, "list": _list, "export-html": _export_html}[a.cmd](a)
    except KeyboardInterrupt:
        print(f"error: {prefix}interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as e:
        # ConfigError, DatasetError, CheckpointError, StorageError, TrainingDivergedError, bad --device,
        # a failed process group (distributed.GroupFailure), ...
        print(f"error: {prefix}{_one_line(e)}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug, or a library's own error on a bad file: still no traceback
        if type(e).__name__ == "RankStopped":  # torchrun sent SIGTERM: another rank failed (143 = 128 + 15)
            print(f"error: {prefix}{_one_line(e)}", file=sys.stderr)
            return 143
        print(f"error: {prefix}{type(e).__name__}: {_one_line(e)}", file=sys.stderr)
        return 1
