"""Training throughput: vae_core.train.fit against a pytorch/examples-style reference loop.

Both sides train the same network (784-400-20 MLP, Bernoulli/BCE on grey levels, Adam 1e-3,
batch 128, shuffled) on the same data for the same epochs, interleaved A, B, A, B in one
process. Reported: training images/s of each (epoch loops only, no evaluation), the median
paired ratio, and the test ELBO of both from one function (vae_core.estimators.evaluate on the
same test set; the reference's weights are copied into a vae_core VAE for that).

Compute floor (a bound, not a target): one image costs about 3 x 2 x P FLOPs per step, with
P = sum over Linear layers of in*out (forward 2P, backward 4P). FLOPs per epoch = 6 P N, and
floor images/s = R / (6 P) for a measured matmul rate R of the device.

    python bench/train_throughput.py                  # CPU, mnist-5k
    python bench/train_throughput.py --device cuda    # 60,000-image tiled set + AMP/compile/graphs
    python bench/train_throughput.py --nproc 1,2      # torchrun data parallelism: images/s per process count
"""

from __future__ import annotations

import cProfile
import dataclasses
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time

import benchlib as bl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_dataset
from vae_core.estimators import evaluate
from vae_core.losses import training_loss
from vae_core.model import VAE
from vae_core.train import fit

LATENT, HIDDEN = 20, 400


# --- the reference: pytorch/examples vae/main.py, kept close to the original ---------------------
class RefVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, HIDDEN)
        self.fc21 = nn.Linear(HIDDEN, LATENT)
        self.fc22 = nn.Linear(HIDDEN, LATENT)
        self.fc3 = nn.Linear(LATENT, HIDDEN)
        self.fc4 = nn.Linear(HIDDEN, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def ref_loss(recon_x, x, mu, logvar):
    # Reconstruction + KL divergence losses summed over all elements and batch
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
    # Kingma & Welling 2014, appendix B: -KL = 0.5 * sum(1 + log(sigma^2) - mu^2 - sigma^2)
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def ref_train(x_train, y_train, epochs, batch_size, seed, device) -> tuple[RefVAE, float, int]:
    """The example's loop; returns (model, seconds in the epoch loops, images seen)."""
    torch.manual_seed(seed)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=batch_size, shuffle=True)
    model = RefVAE().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    seconds = 0.0
    for _epoch in range(epochs):
        bl.sync(device)
        t0 = time.perf_counter()
        model.train()
        train_loss = 0
        for data, _ in loader:
            data = data.to(device)
            optimizer.zero_grad()
            recon_batch, mu, logvar = model(data)
            loss = ref_loss(recon_batch, data, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
        bl.sync(device)
        seconds += time.perf_counter() - t0
    return model.cpu().eval(), seconds, epochs * len(x_train)


def ref_as_vae(ref: RefVAE) -> VAE:
    """The reference's weights in a vae_core VAE, so both are evaluated by the same function."""
    vae = VAE(core_model_config())
    enc, dec = vae.encoder, vae.decoder  # Sequential(Linear, ReLU, Linear)
    with torch.no_grad():
        enc[0].weight.copy_(ref.fc1.weight)
        enc[0].bias.copy_(ref.fc1.bias)
        # encoder output (B, 2k) is chunked into (mu, logvar)
        enc[2].weight.copy_(torch.cat([ref.fc21.weight, ref.fc22.weight]))
        enc[2].bias.copy_(torch.cat([ref.fc21.bias, ref.fc22.bias]))
        dec[0].weight.copy_(ref.fc3.weight)
        dec[0].bias.copy_(ref.fc3.bias)
        dec[2].weight.copy_(ref.fc4.weight)
        dec[2].bias.copy_(ref.fc4.bias)  # logits; mean = sigmoid
    return vae.eval()


# --- vae_core -----------------------------------------------------------------------------------
def core_model_config() -> ModelConfig:
    return ModelConfig(input_shape=(1, 28, 28), latent_dim=LATENT, arch="mlp", hidden=(HIDDEN,), likelihood="bernoulli")


def core_train(data, epochs, batch_size, seed, device) -> tuple[VAE, float, int]:
    tcfg = TrainConfig(dataset=data.name, epochs=epochs, batch_size=batch_size, lr=1e-3, seed=seed, binarize="none")
    res = fit(core_model_config(), tcfg, data, device=device, final_iw_samples=0)
    # history seconds cover the epoch's step loop only (fit's per-epoch test pass is outside it)
    return res.model, sum(h["seconds"] for h in res.history), epochs * len(data.x_train)


# --- GPU-oriented variants of a device-resident loop (same math as fit) --------------------------
def variant_train(
    data, epochs, batch_size, seed, device, *, amp=False, compiled=False, graphs=False, fused=False
) -> tuple[VAE, float, int, float]:
    """fit's loop stripped to the step, with AMP (bf16 autocast), torch.compile, a CUDA graph or
    fused Adam (one kernel for all parameters instead of ~8 small ops per parameter tensor).

    Returns (model, seconds, images, warm-up seconds). Warm-up (compile, graph capture) runs
    before the timed epochs on a copy of the first batch and is reported separately. The CUDA
    graph drops the last partial batch (static shapes).
    """
    dev = torch.device(device)
    torch.manual_seed(seed)
    model = VAE(core_model_config()).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=graphs, fused=fused or None)
    x = data.x_train.to(dev)
    n = len(x)
    steps = n // batch_size if graphs else -(-n // batch_size)

    def loss_of(xb):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            loss, _ = training_loss(
                model, xb, objective="elbo", beta=1.0, free_bits=0.0, mc_samples=1, iw_samples=1, mmd_weight=0.0
            )
        return loss

    step_loss = torch.compile(loss_of) if compiled else loss_of

    def step(xb):
        opt.zero_grad(set_to_none=True)
        loss = step_loss(xb)
        loss.backward()
        opt.step()
        return loss

    t0 = time.perf_counter()
    start = [t.detach().clone() for t in model.parameters()]
    static_x = x[:batch_size].clone()
    graph = None
    if graphs:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                step(static_x)
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            step_loss(static_x).backward()
            opt.step()
    elif compiled:
        for _ in range(2):
            step(static_x)
    with torch.no_grad():  # undo the warm-up steps in place (a captured graph keeps its addresses)
        for t, s0 in zip(model.parameters(), start):
            t.copy_(s0)
        for st in opt.state.values():
            for v in st.values():
                v.zero_()  # exp_avg, exp_avg_sq, step: a fresh Adam
    bl.sync(dev)
    warmup = time.perf_counter() - t0

    bl.sync(dev)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n, device=dev)
        for s_ in range(steps):
            xb = x[perm[s_ * batch_size : (s_ + 1) * batch_size]]
            if graph is not None:
                static_x.copy_(xb)
                graph.replay()
            else:
                step(xb)
    bl.sync(dev)
    seconds = time.perf_counter() - t0
    return model.cpu().eval(), seconds, epochs * steps * batch_size if graphs else epochs * n, warmup


# --- compute floor --------------------------------------------------------------------------------
def matmul_params(model: nn.Module) -> int:
    return sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))


def matmul_rate(device, shapes: list[tuple[int, int, int]], seconds: float = 0.5) -> float:
    """Measured FLOP/s of a @ b over the given (m, k, n) shapes (summed FLOPs / summed time)."""
    dev = torch.device(device)
    mats = [(torch.randn(m, k, device=dev), torch.randn(k, n, device=dev)) for m, k, n in shapes]
    flops = sum(2 * m * k * n for m, k, n in shapes)
    for a, b in mats:
        a @ b  # warm-up
    bl.sync(dev)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for a, b in mats:
            a @ b
        reps += 1
    bl.sync(dev)
    return reps * flops / (time.perf_counter() - t0)


def profile_one(name: str, fn) -> str:
    pr = cProfile.Profile()
    pr.enable()
    fn()
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(15)
    return f"### cProfile: {name}\n```\n{s.getvalue().strip()}\n```"


def tiled(data, n: int):
    reps = -(-n // len(data.train_pixels))
    x = data.train_pixels.repeat(reps, 1, 1, 1)[:n]
    y = data.y_train.repeat(reps)[:n]
    return dataclasses.replace(data, name=f"{data.name}-tiled{n}", train_pixels=x, y_train=y)


# --- torchrun data parallelism ---------------------------------------------------------------------
def nproc_run(nproc: int, threads: int, epochs: int, batch_size: int, n_train: int, seed: int, device: str) -> dict:
    """`torchrun --nproc_per_node N -m vae_core train` on mnist-5k (the core model, fresh cache),
    `threads` torch threads in each process; images/s from the checkpoint's history (epoch loops
    only, as rank 0 timed them)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as cache:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(nproc),
            "-m",
            "vae_core",
            "train",
            "--dataset",
            "mnist-5k",
            "--hidden",
            str(HIDDEN),
            "--latent-dim",
            str(LATENT),
            "--binarize",
            "none",
            "--epochs",
            str(epochs),
            "--batch-size",
            str(batch_size),
            "--max-train",
            str(n_train),
            "--seed",
            str(seed),
            "--device",
            device,
            "--cache-dir",
            cache,
            "--final-iw-samples",
            "0",
            "--quiet",
        ]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise SystemExit(f"error: torchrun with {nproc} processes failed:\n{r.stderr[-2000:]}")
        out = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("{")][-1])
        from vae_core.checkpoints import read_metadata

        hist = read_metadata(out["checkpoint"])["history"]
    seconds = sum(h["seconds"] for h in hist)
    return {
        "images_per_s": n_train * epochs / seconds,
        "seconds": seconds,
        "wall_s": wall,
        "test_elbo": out["test_elbo"],
    }


def nproc_main(a, load_before: str) -> None:
    counts = [int(v) for v in a.nproc.split(",")]
    epochs = a.epochs or (1 if a.smoke else 5)
    bs = a.batch_size or 128
    n_train = a.n_train or (512 if a.smoke else 4000)
    repeats = 1 if a.smoke and a.repeats == 3 else a.repeats
    print(
        f"{bl.machine_line()}\nload {load_before}; torchrun on {a.device}, processes {counts}, {n_train} "
        f"images, {epochs} epochs, global batch {bs}, {repeats} interleaved rounds"
    )
    cores = os.cpu_count() or 1
    # every process count with the cores shared out, plus one process on one thread (under load
    # from other jobs, a process's 2 spinning threads can cost more than they bring)
    shapes = [(n, max(1, cores // n)) for n in counts] + ([(1, 1)] if 1 in counts and cores > 1 else [])
    runs = {
        f"{n} process{'es' if n > 1 else ''}, {t} thread{'s' if t > 1 else ''} each": (
            lambda n=n, t=t: nproc_run(n, t, epochs, bs, n_train, 0, a.device)
        )
        for n, t in shapes
    }
    res = bl.interleave(runs, repeats)
    ips = {name: [r["images_per_s"] for r in rs] for name, rs in res.items()}
    bases = [name for name in res if name.startswith("1 process")]  # ratios against each 1-process row
    rows = [
        [
            name,
            bl.median(ips[name]),
            bl.median([r["seconds"] for r in rs]),
            bl.median([r["wall_s"] for r in rs]),
            *[bl.median_ratio(ips[name], ips[b]) for b in bases],
            statistics.fmean(r["test_elbo"] for r in rs),
        ]
        for name, rs in res.items()
    ]
    body = bl.table(
        [
            "torchrun",
            "images/s (median)",
            "train s",
            "wall s incl. start-up and evaluation",
            *[f"ratio vs {b} (median of pairs)" for b in bases],
            "test ELBO (nats)",
        ],
        rows,
    )
    body += (
        f"\n\n{n_train} mnist-5k images, {epochs} epochs, global batch {bs} (split over the processes), "
        f"seed 0 everywhere (the same training: the test ELBOs agree to float noise); gloo on the CPU. "
        f"images/s counts all processes together, over rank 0's epoch loops."
    )
    print("\n" + body)
    bl.append_results(a.results, "train_throughput --nproc", body, load_before, a.smoke)


def main():
    p = bl.base_parser(__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--epochs", type=int, default=None, help="default 10 (cpu) / 5 (cuda)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds (A, B per round)")
    p.add_argument("--batch-size", type=int, default=None, help="default 128 (cpu) / 1024 (cuda)")
    p.add_argument(
        "--n-train",
        type=int,
        default=None,
        help="training images (default: mnist-5k's 4,000 on cpu, 60,000 tiled on cuda)",
    )
    p.add_argument(
        "--variants",
        default=None,
        help="comma list of resident-loop variants: plain,fused-adam,amp,compile,graphs "
        "(default: all on cuda, plain,fused-adam on cpu)",
    )
    p.add_argument("--profile", action="store_true", help="cProfile one run of each side")
    p.add_argument(
        "--nproc",
        default=None,
        help="comma list of torchrun process counts, e.g. 1,2: "
        "measure data-parallel training instead of the single-process sides",
    )
    a = p.parse_args()
    bl.setup_threads(a.threads)
    load_before = bl.load_avg()
    if a.nproc:
        return nproc_main(a, load_before)
    cuda = a.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print(
            f"no GPU: --device {a.device} asked for but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}); nothing measured"
        )
        bl.append_results(
            a.results,
            "train_throughput",
            f"no GPU: --device {a.device} asked for but CUDA is not available; nothing measured.",
            load_before,
            a.smoke,
        )
        return
    if not cuda:
        print(
            "no GPU: measuring on CPU"
            + ("" if not torch.cuda.is_available() else " (a GPU exists: pass --device cuda)")
        )
    epochs = a.epochs or (1 if a.smoke else 5 if cuda else 10)
    bs = a.batch_size or (1024 if cuda else 128)
    repeats = 1 if a.smoke and a.repeats == 3 else a.repeats
    data = load_dataset("mnist-5k")
    n_train = a.n_train or (512 if a.smoke else 60_000 if cuda else len(data.x_train))
    data = (
        tiled(data, n_train)
        if n_train > len(data.train_pixels)
        else dataclasses.replace(data, train_pixels=data.train_pixels[:n_train], y_train=data.y_train[:n_train])
    )
    x_test = data.x_test[: 200 if a.smoke else None]
    default_variants = "plain,fused-adam,amp,compile,graphs" if cuda else "" if a.smoke else "plain,fused-adam"
    variants = [v for v in (a.variants if a.variants is not None else default_variants).split(",") if v]
    if "graphs" in variants and not cuda:
        raise SystemExit("error: the graphs variant needs --device cuda")
    print(
        f"{bl.machine_line()}\nload {load_before}; {n_train} images, {epochs} epochs, batch {bs}, "
        f"{repeats} interleaved rounds, device {a.device}"
    )

    def elbo(model):  # one function, one test set, for every side
        return evaluate(model, x_test, mc_samples=10, seed=0)["elbo"]

    # round r trains every side with seed r: the ELBO comparison averages over seeds, not one init
    seeds = {}

    def next_seed(side):
        seeds[side] = seeds.get(side, -1) + 1
        return seeds[side]

    def run_ref():
        m, s, n = ref_train(data.x_train, data.y_train, epochs, bs, next_seed("ref"), a.device)
        return {"images_per_s": n / s, "seconds": s, "test_elbo": elbo(ref_as_vae(m))}

    def run_core():
        t0 = time.perf_counter()
        m, s, n = core_train(data, epochs, bs, next_seed("core"), a.device)
        return {"images_per_s": n / s, "seconds": s, "fit_wall_s": time.perf_counter() - t0, "test_elbo": elbo(m)}

    def run_variant(v):
        def run():
            m, s, n, w = variant_train(
                data,
                epochs,
                bs,
                next_seed(v),
                a.device,
                amp=v == "amp",
                compiled=v == "compile",
                graphs=v == "graphs",
                fused=v == "fused-adam",
            )
            return {"images_per_s": n / s, "seconds": s, "warmup_s": w, "test_elbo": elbo(m)}

        return run

    runs = {"reference (pytorch/examples)": run_ref, "vae_core fit": run_core}
    runs.update({f"resident loop: {v}": run_variant(v) for v in variants})
    res = bl.interleave(runs, repeats)

    ref_ips = [r["images_per_s"] for r in res["reference (pytorch/examples)"]]
    rows = []
    for name, rs in res.items():
        ips = [r["images_per_s"] for r in rs]
        rows.append(
            [
                name,
                bl.median(ips),
                bl.median([r["seconds"] for r in rs]),
                bl.median_ratio(ips, ref_ips),
                statistics.fmean(r["test_elbo"] for r in rs),
                bl.median([r["warmup_s"] for r in rs]) if "warmup_s" in rs[0] else "-",
            ]
        )
    body = bl.table(
        [
            "side",
            "images/s (median)",
            "train s",
            "ratio vs reference (median of pairs)",
            "test ELBO (nats, mean over seeds)",
            "warm-up s",
        ],
        rows,
    )
    core_ips = [r["images_per_s"] for r in res["vae_core fit"]]
    ratio = bl.median_ratio(core_ips, ref_ips)
    d_elbo = abs(rows[1][4] - rows[0][4])
    fit_wall = bl.median([r["fit_wall_s"] for r in res["vae_core fit"]])
    body += (
        f"\n\n{n_train} training images, {epochs} epochs, batch {bs}, {repeats} interleaved rounds; "
        f"round r uses seed r on every side; test ELBO on {len(x_test)} grey-level test images, 10 MC "
        f"samples, evaluation seed 0; per-seed ELBO vae_core - reference: "
        + ", ".join(
            f"{c['test_elbo'] - r['test_elbo']:+.2f}"
            for c, r in zip(res["vae_core fit"], res["reference (pytorch/examples)"])
        )
        + ". "
        + f"vae_core fit wall time incl. per-epoch test pass and setup: {fit_wall:.2f} s (median)."
    )

    # compute floor: 6 P FLOPs per image against measured matmul rates
    P = matmul_params(RefVAE())
    fl_shapes = [(bs, 784, HIDDEN), (bs, HIDDEN, 2 * LATENT), (bs, LATENT, HIDDEN), (bs, HIDDEN, 784)]
    r_batch = matmul_rate(a.device, fl_shapes, 0.2 if a.smoke else 1.0)
    big = 512 if a.smoke else (8192 if cuda else 2048)
    r_peak = matmul_rate(a.device, [(big, big, big)], 0.2 if a.smoke else 1.0)
    floor_batch, floor_peak = r_batch / (6 * P), r_peak / (6 * P)
    med_core = bl.median(core_ips)
    body += (
        "\n\nCompute floor: FLOPs/epoch = 3 x 2 x P x N with P = "
        f"{P:,} matmul parameters (784-400-(2x20) encoder, 20-400-784 decoder) = "
        f"{6 * P * n_train / 1e9:.2f} GFLOP per epoch of {n_train}.\n\n"
        + bl.table(
            ["matmul rate measured on", "GFLOP/s", "floor images/s = R / 6P", "vae_core fit / floor", "floor s/epoch"],
            [
                [
                    f"this model's layer shapes at batch {bs}",
                    r_batch / 1e9,
                    floor_batch,
                    med_core / floor_batch,
                    n_train / floor_batch,
                ],
                [f"{big}x{big}x{big} fp32", r_peak / 1e9, floor_peak, med_core / floor_peak, n_train / floor_peak],
            ],
        )
    )
    if not a.smoke:
        ok_ratio = ratio >= 1.0 or cuda
        ok_elbo = d_elbo <= 1.0
        body += (
            f"\n\nTargets: ratio vae_core/reference >= 1.0 on CPU: {ratio:.2f} "
            f"{'PASS' if ok_ratio else 'FAIL'}; |ELBO difference| <= 1 nat: {d_elbo:.2f} "
            f"{'PASS' if ok_elbo else 'FAIL'}."
        )
    if a.profile:
        body += "\n\n" + profile_one("vae_core fit", lambda: core_train(data, epochs, bs, 0, a.device))
        body += "\n\n" + profile_one(
            "reference", lambda: ref_train(data.x_train, data.y_train, epochs, bs, 0, a.device)
        )
    print("\n" + body)
    bl.append_results(a.results, "train_throughput", body, load_before, a.smoke)


if __name__ == "__main__":
    main()
