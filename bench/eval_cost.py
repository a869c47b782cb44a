"""Cost of importance-sampled log p(x): vae_core.estimators.log_px with K=1000 on 1,000 test images.

Model: the shipped default checkpoint (MLP 784-400-16, Bernoulli); a freshly trained model of the
same architecture when the file is missing. Test images are its eval targets (binarized with the
seeded draw). Reported: wall time and peak RSS (CPU; peak allocated on GPU), the mean log p(x),
and a sweep of the example-chunk size (`batch_size=`), interleaved, on a subset. Chunking changes
which random draw lands on which example, so the estimate moves by Monte Carlo noise only; the
difference of the means is reported next to the time. torch.profiler's top ops for one chunk show
where the time goes.

Per image: K decoder passes of 2 * (16*400 + 400*784) FLOPs = 0.64 MFLOP each, so K=1000 on
1,000 images is 0.64 TFLOP of matmul, plus K*D = 784,000 BCE terms per image.
"""

from __future__ import annotations

import os
import time

import benchlib as bl
import torch

from vae_core.cache import DEFAULT_MODEL, DEFAULT_TRAIN, default_checkpoint_path
from vae_core.checkpoints import load_checkpoint
from vae_core.data import eval_targets, load_dataset
from vae_core.estimators import log_px, per_pass
from vae_core.train import fit


def get_model(smoke: bool):
    path = default_checkpoint_path()
    if os.path.exists(path):
        return load_checkpoint(path).model, f"shipped checkpoint {os.path.basename(path)}"
    epochs = 1 if smoke else 20
    data = load_dataset(DEFAULT_TRAIN.dataset)
    res = fit(DEFAULT_MODEL, DEFAULT_TRAIN.replace(epochs=epochs), data, device="cpu", final_iw_samples=0)
    return res.model, f"freshly trained default architecture ({epochs} epochs; shipped file missing)"


def run_log_px(model, x, k, batch_size, device) -> dict:
    dev = torch.device(device)
    g = torch.Generator(device=dev).manual_seed(0)
    bl.reset_peak_rss()
    rss0 = bl.rss_mb()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    bl.sync(dev)
    t0 = time.perf_counter()
    lp = log_px(model, x, k=k, generator=g, batch_size=batch_size)
    bl.sync(dev)
    res = {
        "seconds": time.perf_counter() - t0,
        "mean_log_px": float(lp.mean()),
        "peak_rss_mb": bl.peak_rss_mb(),
        "peak_rss_increase_mb": bl.peak_rss_mb() - rss0,
    }
    if dev.type == "cuda":
        res["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return res


def top_ops(model, x, k, batch_size) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        log_px(model, x[:batch_size], k=k, generator=torch.Generator().manual_seed(0), batch_size=batch_size)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10)


def main():
    p = bl.base_parser(__doc__.split("\n")[0])
    p.add_argument("--k", type=int, default=None, help="importance samples (default 1000)")
    p.add_argument("--n", type=int, default=None, help="test images (default 1000)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument(
        "--chunks", default=None, help="comma list of example-chunk sizes for the sweep (default: 8,<default>,128)"
    )
    p.add_argument("--sweep-n", type=int, default=None, help="images in the chunk sweep (default 200)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, or 'all' (cpu, then cuda when present)")
    a = p.parse_args()
    bl.setup_threads(a.threads)
    load_before = bl.load_avg()
    k = a.k or (50 if a.smoke else 1000)
    n = a.n or (20 if a.smoke else 1000)
    sweep_n = a.sweep_n or (10 if a.smoke else 200)
    repeats = 1 if a.smoke else a.repeats
    model, what = get_model(a.smoke)
    data = load_dataset(DEFAULT_TRAIN.dataset)
    x_all = eval_targets(data.x_test, DEFAULT_TRAIN.binarize)[:n]
    default_chunk = per_pass(model, k)
    devices = ["cpu", "cuda"] if a.device == "all" else [a.device]
    print(
        f"{bl.machine_line()}\nload {load_before}; model: {what}; K={k}, {n} images, "
        f"default chunk {default_chunk} examples"
    )
    rows = []
    for device in devices:
        if device.startswith("cuda") and not torch.cuda.is_available():
            print("no GPU: CUDA is not available; GPU rows skipped")
            rows.append([device, n, k, "no GPU", "-", "-", "-"])
            continue
        # a private copy: the checkpoint's model stays on the CPU
        m = load_checkpoint(default_checkpoint_path()).model.to(device) if device != "cpu" else model
        x = x_all.to(device)
        res = bl.interleave({f"log_px {device}": lambda: run_log_px(m, x, k, None, device)}, repeats)  # noqa: B023
        rs = res[f"log_px {device}"]
        rows.append(
            [
                device,
                n,
                k,
                bl.median([r["seconds"] for r in rs]),
                bl.median([r["mean_log_px"] for r in rs]),
                max(r["peak_rss_increase_mb"] for r in rs),
                max(r.get("gpu_peak_mb", 0.0) for r in rs) if device != "cpu" else "-",
            ]
        )
    body = bl.table(
        [
            "device",
            "images",
            "K",
            "seconds (median)",
            "mean log p(x) nats",
            "peak RSS increase MiB",
            "GPU peak allocated MiB",
        ],
        rows,
    )

    chunks = [int(c) for c in (a.chunks or f"8,{default_chunk},128").split(",")]
    xs = x_all[:sweep_n]
    sweep = bl.interleave({c: (lambda c=c: run_log_px(model, xs, k, c, "cpu")) for c in chunks}, repeats)
    base = [r["seconds"] for r in sweep[default_chunk]] if default_chunk in sweep else None
    srows = []
    for c, rs in sweep.items():
        secs = [r["seconds"] for r in rs]
        srows.append(
            [
                c,
                c * k * model.cfg.input_dim * 4 / 2**20,
                bl.median(secs),
                bl.median_ratio(secs, base) if base else "-",
                bl.median([r["mean_log_px"] for r in rs]),
                max(r["peak_rss_increase_mb"] for r in rs),
            ]
        )
    body += (
        f"\n\nChunk sweep on CPU, {sweep_n} images, K={k}, {repeats} interleaved rounds "
        f"(default chunk = {default_chunk} examples = 3e7 decoder outputs):\n\n"
    )
    body += bl.table(
        [
            "examples per chunk",
            "logits per chunk MiB",
            "seconds (median)",
            "time / default (median of pairs)",
            "mean log p(x)",
            "peak RSS increase MiB",
        ],
        srows,
    )
    ops = top_ops(model, x_all, k, min(default_chunk, n))
    body += f"\n\ntorch.profiler, one default chunk on CPU (top ops by self time):\n\n```\n{ops.strip()}\n```"
    print("\n" + body)
    bl.append_results(a.results, "eval_cost", body, load_before, a.smoke)


if __name__ == "__main__":
    main()
